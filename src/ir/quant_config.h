// QuantConfig: how one tensor is quantized (bits, sign, symmetry, granularity, scale kind,
// rounding, range, scales/zero points) and its state. A QuantPlan holds the config of every
// quantized Value plus per-use requantization (an Add/Concat input aligned to another scale).
#pragma once
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/intmath.h"
#include "edgequant/error.h"
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

// What a tensor is to the op that reads it.
enum class QuantRole {
  Input,       // a graph input
  Activation,  // an op output
  Weight,      // the weight of a computing op (Conv/Gemm/MatMul input 1)
  Bias,        // the bias of a computing op (scale s_in * s_w)
  Constant,    // another float constant read as data (an Add operand, a PRelu slope)
};
const char* quant_role_name(QuantRole r);
QuantRole parse_quant_role(const std::string& s);

// Calibration algorithms for activations (and, minmax/mse, for weights).
// Auto chooses among the other four per tensor (quant/auto_calib.h); it is never a range source.
enum class CalibAlgorithm { MinMax, Percentile, KL, MSE, Auto };
CalibAlgorithm parse_calib_algorithm(const std::string& name);  // throws InvalidSetting
const char* calib_algorithm_name(CalibAlgorithm a);

// Where a config's range came from.
enum class RangeSource {
  None,  // not yet calibrated
  MinMax,
  Percentile,
  KL,
  MSE,           // an observer (the calibrator's name)
  AlignToLarge,  // the union of an aligned op's input ranges
  Custom,        // fixed by the setting (custom_scales) or the target (fixed_output_grids)
  Trained,       // written back by a training pass (TQT, LSQ)
};
const char* range_source_name(RangeSource s);
RangeSource parse_range_source(const std::string& s);
RangeSource range_source_of(CalibAlgorithm a);

enum class ScaleKind { Float, PowerOfTwo };
enum class Granularity { PerTensor, PerChannel };

struct QuantConfig {
  QuantState state = QuantState::Quantized;
  QuantRole role = QuantRole::Activation;
  int bits = 8;
  bool is_signed = true;
  bool symmetric = true;
  Granularity granularity = Granularity::PerTensor;
  int64_t axis = 0;  // channel axis when per-channel
  ScaleKind scale_kind = ScaleKind::PowerOfTwo;
  RoundingMode rounding = RoundingMode::HalfEven;
  int64_t quant_min = -128, quant_max = 127;
  std::vector<double> scales;        // one per tensor, or one per channel
  std::vector<int64_t> zero_points;  // same length as scales
  std::string master;                // Passive: the value whose config this one follows
  std::string fused_into;            // Fused: the activation op that consumes it on the chip
  RangeSource source = RangeSource::None;
  bool align_to_large = false;          // Aligned op output: scale covers the union of inputs
  double range_min = 0, range_max = 0;  // the observed (clipped) range the scale encodes
  bool custom_scale = false;            // fixed by the setting; calibration leaves it alone

  bool has_scale() const { return !scales.empty(); }
  // Exponent e of s = 2^e (power-of-two configs only), per scale.
  std::vector<int> exponents() const;
  void set_range(int bits_, bool is_signed_, bool narrow_range);  // quant_min/max from bits
};

// Per-use requantization: input `index` of `op` is requantized to the config of `target` (an
// aligned op's output), or, with `grid`, to a grid of its own calibrated from the input value
// `target` itself (a mixed-precision boundary: an int8 op reading an int16 tensor, as ESP-DL's
// RequantizeLinear does).
// The config puts the value on an integer grid the chip stores: scales known, and the value
// quantized itself or following its master (passive). Fused and float values have none.
bool has_integer_grid(const QuantConfig* c);

struct InputRequant {
  std::string op;
  int index;
  std::string target;
  std::optional<QuantConfig> grid;
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
  // The grid a requantization lands on.
  const QuantConfig* requant_config(const InputRequant& requant) const;
  // The grid input `index` of `op` is read on: its requantization if any, else the value's own.
  const QuantConfig* input_config(const Op& op, size_t index) const;
  // Throws (`code`, naming the first problem) unless every config, master, fused activation and
  // requant refers to a value or op of `graph`: a pass that renamed values must update the plan.
  void verify(const Graph& graph, ErrorCode code = ErrorCode::Internal) const;
};

}  // namespace edgequant
