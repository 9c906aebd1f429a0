// The integer program a chip runs: ESP-DL's execution model as plain data (no LibTorch). Nodes
// carry ONNX op types with ESP-DL's integer semantics (../shared/espdl-format.md section 8):
// every tensor is int8/int16 codes with one power-of-two exponent (real = q * 2^e), Conv and Gemm
// shift their int32/int64 accumulator to the output exponent, Add/Concat need equal exponents
// (RequantizeLinear nodes close the gaps), single-input activations read a 256-entry table, and
// spatial ops (Conv, pools, Resize) read and write channels-last activations.
//
// Built from a quantized graph by deploy/integer_program.h, written to and read from `.espdl` by
// deploy/espdl.h, executed by runtime/interpreter.h. Weights keep their ONNX logical order
// (Conv OIHW, Gemm [C, N] with transB = 0); the `.espdl` codec applies the chip's blocked layouts.
//
// Float-scale targets (ONNX Runtime, TFLite) use the same program with TFLite's arithmetic: a
// grid is real = (q - zero_point) * scale, Conv/Gemm/RequantizeLinear carry `requant_multiplier`
// and `requant_shift` (a q31 multiplier and shift per channel), and operands are offset by their
// zero points. Such programs run in the runtime; they are not written as `.espdl`.
#pragma once
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/intmath.h"
#include "ir/graph.h"
#include "ir/op_traits.h"
#include "ir/tensor.h"

namespace edgequant::runtime {

// A value's data: integer codes (any integer dtype, stored as int64) or float32 values.
struct IntTensor {
  DType dtype = DType::Int8;
  Shape shape;
  std::vector<int> exponents;        // one, or one per output channel (per-channel weights and biases)
  std::vector<int64_t> ints;         // integer dtypes
  std::vector<float> floats;         // Float32
  std::string layout;                // weights: the stored layout's name once decoded (informative)
  int bits = 0;                      // code width when narrower than the dtype (4-bit weights in int8), else 0
  std::vector<double> scales;        // float-scale grids (one, or per channel); empty: 2^exponent
  std::vector<int64_t> zero_points;  // float-scale grids; empty: 0

  bool is_float() const { return dtype == DType::Float32; }
  int64_t numel() const { return shape_numel(shape); }
  int exponent() const { return exponents.empty() ? 0 : exponents[0]; }
  double scale(size_t channel = 0) const;  // real = (q - zero_point(c)) * scale(c)
  int64_t zero_point(size_t channel = 0) const;
  bool is_pow2() const { return scales.empty(); }
};

// What the program declares about a non-constant value: dtype, exponent, shape (graph inputs
// need one; other shapes are informative, kernels recompute them), and how its axes are permuted
// relative to the source ONNX graph (channels-last: {0, 2, 3, 1}; empty = ONNX order).
struct ValueInfo {
  DType dtype = DType::Int8;
  int exponent = 0;
  double scale = 0;  // float-scale grid (0: the grid is 2^exponent)
  int64_t zero_point = 0;
  Shape shape;
  std::vector<int64_t> perm;
};

struct IntNode {
  std::string name, op_type;
  std::vector<std::string> inputs;  // "" marks an omitted optional input
  std::vector<std::string> outputs;
  std::map<std::string, Attribute> attrs;

  bool is(OpType t) const { return op_type == op_type_name(t); }
  int64_t attr_int(const std::string& key, int64_t fallback) const;
  float attr_float(const std::string& key, float fallback) const;
  std::string attr_string(const std::string& key, const std::string& fallback) const;
  std::vector<int64_t> attr_ints(const std::string& key, const std::vector<int64_t>& fallback = {}) const;
};

struct IntGraph {
  std::string name = "edgequant";
  std::string target;                            // the target file's name ("" when a file names none)
  RoundingMode rounding = RoundingMode::HalfUp;  // shift_and_round and float -> int
  bool rounding_assumed = false;                 // not from a target file: inferred or assumed (rounding_basis says)
  std::string rounding_basis;                    // why this rounding, when rounding_assumed
  std::map<int, int> filter_blocks;  // weight bits -> b of the (N/b)HWCb filter layout stored (the target's)
  std::vector<IntNode> nodes;        // execution order
  std::map<std::string, IntTensor> initializers;  // weights, biases, tables, shapes
  std::map<std::string, ValueInfo> values;        // every non-constant value
  std::vector<std::string> inputs, outputs;
  std::map<std::string, std::string> metadata;
  // Test values embedded in `.espdl` files (Model::test()): codes in the program's layout.
  std::map<std::string, IntTensor> test_inputs, test_outputs;

  const IntTensor* initializer(const std::string& name) const;
  const ValueInfo& value(const std::string& name) const;  // throws Internal when missing
};

// Storage dtype of a code width (8 -> Int8, 16 -> Int16, <= 32 -> Int32, else Int64).
DType int_dtype(int bits);
// The [min, max] range of an integer dtype.
int64_t dtype_min(DType d);
int64_t dtype_max(DType d);

}  // namespace edgequant::runtime
