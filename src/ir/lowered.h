// The lowered integer form of a quantized graph: what a chip stores and computes. Integer codes
// of weights and biases at the target's widths (int64 where a bias exceeds 32 bits), per-op
// requantization of the accumulator (a shift on power-of-two targets, a 32-bit multiplier and
// shift on float-scale targets), per-use requantization of aligned inputs, lookup tables for
// single-input activations, accumulator widths. Plain data (no LibTorch): the integer runtime and
// the exporters read it; the simulator computes from it (quant/simulator.h).
#pragma once
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/intmath.h"
#include "ir/quant_config.h"
#include "ir/tensor.h"

namespace edgequant {

// The integer grid one value lives on: x = (q - zero_point) * scale, q in [qmin, qmax].
struct LoweredTensor {
  std::string value;
  QuantRole role = QuantRole::Activation;
  DType dtype = DType::Int8;  // storage: Int8/UInt8, Int16, Int32, Int64 by bits
  int bits = 8;
  int64_t qmin = -128, qmax = 127;
  int64_t axis = 0;            // channel axis of per-channel grids
  std::vector<double> scales;  // one, or one per channel
  std::vector<int> exponents;  // power-of-two grids: scales[i] == 2^exponents[i]
  std::vector<int64_t> zero_points;
  Tensor codes;  // constants only: the integer codes, int64 storage
};

// Code -> code: q_out = sat(round(q_in * multiplier * 2^-31 * 2^-shift)) per channel.
// Power-of-two grids use no multiplier (empty): q_out = sat(round(q_in * 2^-shift)); a negative
// shift is a left shift.
struct Requantization {
  std::vector<int> shift;
  std::vector<int32_t> multiplier;
  RoundingMode rounding = RoundingMode::HalfEven;
  bool is_shift() const { return multiplier.empty(); }
};

// A single-input activation as a table: out = table[(q_in - in_min) / step] (step 1 for int8:
// 256 entries; sampled int16 tables have 65536 / step + 1 entries, index rounded).
struct LookupTable {
  int64_t in_min = -128;
  int step = 1;
  std::vector<int32_t> table;
};

struct LoweredOp {
  std::string op, type;
  std::string output;                            // the value this op's integer result lands on
  std::string fused_activation;                  // op name of a fused ReLU-like activation, "" if none
  int accumulator_bits = 0;                      // compute ops
  std::optional<Requantization> output_requant;  // compute ops: accumulator -> output code
  std::map<int, Requantization> input_requants;  // aligned inputs: input code -> output grid
  std::optional<LookupTable> lut;
};

struct LoweredModel {
  std::string target;
  RoundingMode rounding = RoundingMode::HalfEven;          // float -> code
  RoundingMode requant_rounding = RoundingMode::HalfEven;  // code -> code
  std::map<std::string, LoweredTensor> tensors;            // by value name
  std::vector<LoweredOp> ops;                              // graph order, quantized ops only

  const LoweredTensor* tensor(const std::string& value) const;
  const LoweredOp* op(const std::string& name) const;
};

// Storage dtype of a `bits`-wide code.
DType code_dtype(int bits, bool is_signed);
// q31 multiplier and shift with multiplier * 2^-31 * 2^-shift == real (TFLite's QuantizeMultiplier).
void quantize_multiplier(double real, int32_t& multiplier, int& shift);
// Applies a requantization to one code (the integer runtime's definition; tests use it too).
int64_t requantize(int64_t q, const Requantization& r, size_t channel, int64_t qmin, int64_t qmax);

}  // namespace edgequant
