// Op traits: what an op type is to quantization, the integer runtime and the exporters, in one
// table (ops.def, the op registry) below every stage that asks. Targets decide which traits they use
// (targets/*.yaml: fused_activations, lut_activations, float_ops).
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "ir/graph.h"

namespace edgequant {

// Every op type EdgeQuant knows, one per ops.def line (Unknown: any other type string).
enum class OpType : uint16_t {
  Unknown,
#define EQ_OP(type, cls, float_kernel, int_kernel, flags) type,
#include "ir/ops.def"
#undef EQ_OP
};
OpType op_type_of(const std::string& type);
const char* op_type_name(OpType type);  // "" for Unknown

enum class OpClass {
  Compute,        // weights and an accumulator: Conv, ConvTranspose, Gemm, MatMul
  DataMovement,   // outputs are a subset of input 0's values (passive: same scale)
  Aligned,        // Add, Sub, Concat, Max, Min, Sum: inputs share the output's scale
  Elementwise,    // other pointwise arithmetic and activations
  Reduction,      // pooling and reductions that make new values
  Normalization,  // Softmax, LayerNorm, BatchNorm
  NonNumeric,     // shapes, indices, booleans: never quantized
  Other,
};
const char* op_class_name(OpClass c);

enum OpFlag : unsigned {
  kFusable = 1u << 0,            // a Conv/Gemm can apply it in its epilogue (ReLU-like)
  kUnary = 1u << 1,              // one data input, elementwise: replaceable by a lookup table
  kFloatOnly = 1u << 2,          // has no integer form; the output stays float
  kPerSample = 1u << 3,          // each output sample depends on that input sample alone (batch splitting)
  kSpatial = 1u << 4,            // reads spatial dims: runs channels-last in an NHWC integer program
  kLayoutOfInput = 1u << 5,      // output layout is input 0's (pointwise on one data input)
  kBroadcastBinary = 1u << 6,    // two inputs broadcast elementwise
  kCommutesWithScale = 1u << 7,  // f(s x) = s f(x) per channel, s > 0 (cross-layer equalization)
  kFloatTensors = 1u << 8,       // the integer kernel also computes float32 tensors (ESP-DL F32 nodes)
};

struct OpTraits {
  OpClass op_class = OpClass::Other;
  unsigned flags = 0;
  bool has(OpFlag f) const { return (flags & f) != 0; }
};

const OpTraits& op_traits(const std::string& type);
inline bool op_has(const std::string& type, OpFlag f) { return op_traits(type).has(f); }

bool is_compute_op(const std::string& type);
// Data movement; Resize/Upsample only in nearest mode (linear interpolation makes new values).
bool is_passive_op(const Op& op);
bool is_aligned_op(const std::string& type);
// A single-input elementwise op a chip may run as a lookup table.
bool is_unary_activation(const std::string& type);
// The one rule of compute + activation fusion: the activation a computing op (Conv, Gemm, ...) may
// apply in its epilogue is the sole reader of its output 0 (not a graph output), a kFusable op
// reading it as input 0; nullptr otherwise. Each user adds its own limit: the quantizer the
// target's fused_activations (the pair's inner value is Fused, the integer program writes one
// node, error analysis measures one unit), the float executor a Conv with a constant-bound
// Relu/Clip (one oneDNN primitive).
const Op* fusable_activation(const Graph& g, const Op& producer);
// Inputs carrying tensor data (not shapes, axes, scales or pads). A Pow's exponent counts: ESP-DL
// reads both operands of its Pow as codes on their grids.
std::vector<size_t> data_inputs(const Op& op);

}  // namespace edgequant
