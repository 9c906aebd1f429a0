// TI integer ONNX (ti-npu): the integer program written with ONNX float ops that hold integer
// values, no dequantization inside. Each Conv/Gemm ends in TI's BNORM sequence
// Add(bias codes + half-divisor offset) -> Mul(scale) -> Div(2^shift) -> Floor -> Clip, with the
// fused activation in the Clip bounds (ReLU6's upper bound as a code, not the float 6); aligned
// inputs (residual Adds with unequal scales) are requantized with the same Add -> Div -> Floor
// -> Clip steps; the graph input is quantized (Mul -> Add 0.5 -> Floor -> Clip) and the outputs
// are integer codes (their exponents in quantization_config.yaml).
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "ir/graph.h"
#include "runtime/int_graph.h"

namespace edgequant::deploy {

// `program` must be in the ONNX layout (build_integer_program(..., channels_last = false)).
std::unique_ptr<Graph> ti_integer_graph(const runtime::IntGraph& program, int64_t opset);
// TI's quantization_config.yaml: bits, method, per-layer scheme, NPU-rule violations (notes).
std::string ti_quantization_config(const runtime::IntGraph& program, const std::string& method,
                                   const std::vector<std::string>& notes);

}  // namespace edgequant::deploy
