// Builds the integer program (runtime/int_graph.h) of a quantized graph: the one form the
// integer runtime runs and the `.espdl` writer serialises. From the graph, its calibrated plan
// and the lowered form: shape computations are folded at batch 1, fused Relus become Conv/Gemm
// `activation`s, aligned inputs get RequantizeLinear nodes, float islands get
// Dequantize/QuantizeLinear, single-input int8 activations get their lookup tables, Gemm weights
// become [C, N], and activations move to ESP-DL's channels-last layout (Transpose nodes where an
// op needs the ONNX order back).
#pragma once
#include <ATen/core/Tensor.h>

#include "exec/executor.h"
#include "ir/lowered.h"
#include "runtime/int_graph.h"
#include "runtime/interpreter.h"
#include "target/target.h"

namespace edgequant::deploy {

// Throws Unsupported naming every node the program cannot express. `channels_last` false keeps
// the ONNX layout (for exporters that write ONNX; the runtime's spatial kernels need channels-last).
runtime::IntGraph build_integer_program(const Graph& g, const QuantPlan& plan, const LoweredModel& lowered,
                                        const Target& target, exec::Executor& ex, bool channels_last = true);

// The program's value `v` (program layout, codes) as the source graph's layout, dequantized.
std::vector<float> to_source_layout(const runtime::IntGraph& p, const std::string& value, const runtime::IntTensor& t,
                                    Shape* shape = nullptr);
// Source-layout float32 values as the program's layout (for test inputs).
std::vector<float> to_program_layout(const runtime::IntGraph& p, const std::string& value, const std::vector<float>& v,
                                     const Shape& source_shape, Shape* program_shape = nullptr);

// One sample through the integer runtime, as the chip runs it: float32 inputs in the source
// graph's layout (batch 1, in p.inputs order) are moved to the program's layout and quantized;
// the outputs come back dequantized in the source layout (p.outputs order; shapes when asked).
// `state`: the streaming caches carried from the previous call (runtime::run_program).
std::vector<std::vector<float>> run_source_sample(const runtime::IntGraph& p,
                                                  const std::vector<std::vector<float>>& inputs,
                                                  const std::vector<Shape>& shapes,
                                                  std::vector<Shape>* out_shapes = nullptr,
                                                  runtime::TensorMap* state = nullptr);

// Permutes a row-major tensor: out dim d = in dim perm[d].
template <class T>
std::vector<T> permute(const std::vector<T>& data, const Shape& shape, const std::vector<int64_t>& perm,
                       Shape* out_shape);

}  // namespace edgequant::deploy
