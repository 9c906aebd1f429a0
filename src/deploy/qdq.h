// ONNX QDQ export: the float graph with QuantizeLinear/DequantizeLinear pairs where the plan
// quantizes (int8/uint8 activations, per-axis weight codes, int32 bias codes through
// DequantizeLinear, aligned inputs requantized per use), opset 13 or higher. Every runtime that
// reads QDQ (ONNX Runtime, TensorRT, TFLite converters) computes the simulation's grid; ties
// round half to even there (QuantizeLinear's rule), so half-up targets may differ by 1 LSB.
#pragma once
#include <memory>
#include <string>

#include "ir/graph.h"
#include "ir/lowered.h"

namespace edgequant::deploy {

// The QDQ graph (throws Unsupported for grids QDQ at opset 13 cannot express: > 8-bit activations).
std::unique_ptr<Graph> qdq_graph(const Graph& g, const QuantPlan& plan, const LoweredModel& lowered);
void write_qdq(const Graph& g, const QuantPlan& plan, const LoweredModel& lowered, const std::string& path);

}  // namespace edgequant::deploy
