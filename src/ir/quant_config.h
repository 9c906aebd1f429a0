// QuantConfig: how one tensor is quantized (bits, sign, symmetry, granularity, scale kind,
// rounding, range, scales/zero points) and its state. A QuantPlan holds the config of every
// quantized Value plus per-use requantization (an Add/Concat input aligned to another scale).
#pragma once
#include <map>
#include <string>
#include <vector>

#include "core/intmath.h"
#include "ir/graph.h"

namespace edgequant {

enum class QuantState {
  Quantized,  // owns its scale (computed by an observer, a custom scale, or training)
  Passive,    // takes its scale from `master` (data movement: MaxPool/Reshape; bias: s_in*s_w)
  Fused,      // not materialised on the chip: a Conv output consumed by its fused activation
  Float,      // left unquantized (Softmax outputs, ops the target keeps in float)
};
const char* quant_state_name(QuantState s);
QuantState parse_quant_state(const std::string& s);

enum class ScaleKind { Float, PowerOfTwo };
enum class Granularity { PerTensor, PerChannel };

struct QuantConfig {
  QuantState state = QuantState::Quantized;
  int bits = 8;
  bool is_signed = true;
  bool symmetric = true;
  Granularity granularity = Granularity::PerTensor;
  int64_t axis = 0;  // channel axis when per-channel
  ScaleKind scale_kind = ScaleKind::PowerOfTwo;
  RoundingMode rounding = RoundingMode::HalfEven;
  int64_t quant_min = -128, quant_max = 127;
  std::vector<double> scales;       // one per tensor, or one per channel
  std::vector<int64_t> zero_points;  // same length as scales
  std::string master;                // Passive: the value whose config this one follows
  std::string role;                  // "activation", "weight", "bias", "input"
  std::string observer;              // which calibrator produced the range
  double range_min = 0, range_max = 0;  // the observed (clipped) range the scale encodes
  bool custom_scale = false;            // fixed by the setting; calibration leaves it alone

  bool has_scale() const { return !scales.empty(); }
  // Exponent e of s = 2^e (power-of-two configs only), per scale.
  std::vector<int> exponents() const;
  void set_range(int bits_, bool is_signed_, bool narrow_range);  // quant_min/max from bits
};

// Per-use requantization: input `index` of `op` is requantized to the config of `target`.
struct InputRequant {
  std::string op;
  int index;
  std::string target;
};

struct QuantPlan {
  std::string target_name;
  std::map<std::string, QuantConfig> values;  // by Value name
  std::vector<InputRequant> requants;
  std::vector<std::string> notes;  // e.g. TI channel-rule CPU fallbacks

  const QuantConfig* find(const std::string& value) const;
  QuantConfig* find(const std::string& value);
  // Resolves Passive chains to the config that owns the scale.
  const QuantConfig* effective(const std::string& value) const;
};

}  // namespace edgequant
