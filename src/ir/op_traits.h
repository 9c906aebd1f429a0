// Op traits: what an op type is to quantization, the integer runtime and the exporters, in one
// table (op_traits.def) below every stage that asks. Targets decide which traits they use
// (targets/*.yaml: fused_activations, lut_activations, float_ops).
#pragma once
#include <cstddef>
#include <string>
#include <vector>

#include "ir/graph.h"

namespace edgequant {

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
  kFusable = 1u << 0,    // a Conv/Gemm can apply it in its epilogue (ReLU-like)
  kUnary = 1u << 1,      // one data input, elementwise: replaceable by a lookup table
  kFloatOnly = 1u << 2,  // has no integer form; the output stays float
};

struct OpTraits {
  OpClass op_class = OpClass::Other;
  unsigned flags = 0;
  bool has(OpFlag f) const { return (flags & f) != 0; }
};

const OpTraits& op_traits(const std::string& type);

bool is_compute_op(const std::string& type);
// Data movement; Resize/Upsample only in nearest mode (linear interpolation makes new values).
bool is_passive_op(const Op& op);
bool is_aligned_op(const std::string& type);
// A single-input elementwise op a chip may run as a lookup table.
bool is_unary_activation(const std::string& type);
// Inputs carrying tensor data (not shapes, axes, scales or pads).
std::vector<size_t> data_inputs(const Op& op);

}  // namespace edgequant
