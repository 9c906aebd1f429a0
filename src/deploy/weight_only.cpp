// Weight-only quantization: each selected op's constant weight is stored as int8/int4 codes and
// read through a DequantizeLinear, the compute stays float (what ONNX Runtime's MatMulNBits and
// DQ-MatMul fusions serve for MatMul/Gemm-heavy models). One scale per output channel (axis,
// opset 13) or blocks along the reduction axis (block_size, opset 21; int4 needs 21 too).
#include <algorithm>

#include "deploy/convert.h"
#include "edgequant/error.h"

namespace edgequant::deploy {

namespace {

// The weight input and its output-channel / reduction axes, or -1 when the op is left.
struct WeightAxes {
  int64_t out_axis = -1, reduce_axis = -1;
};

WeightAxes weight_axes(const Op& op, std::string& why) {
  const Value* w = op.input(1);
  if (!w || !w->is_constant()) return why = "its weight is not a constant", WeightAxes{};
  if (w->data->dtype() != DType::Float32) return why = "its weight is not float32", WeightAxes{};
  const size_t rank = w->data->shape().size();
  if (op.type == "Conv") return rank >= 3 ? WeightAxes{0, 1} : (why = "its weight is not a filter", WeightAxes{});
  if (rank != 2) return why = "its constant operand is not 2-D", WeightAxes{};
  if (op.type == "Gemm" && op.attr_int("transB", 0) != 0) return {0, 1};  // B is [N, K]
  return {1, 0};                                                          // B is [K, N]
}

}  // namespace

ConvertResult convert_weight_only(Graph& graph, const ConvertSettings& s) {
  if (s.bits != 8 && s.bits != 4)
    fail(ErrorCode::InvalidInput, "weight-only quantization: " + std::to_string(s.bits) + " bits (8 or 4)");
  if (s.block_size < 0 || (s.block_size > 0 && s.block_size < 2))
    fail(ErrorCode::InvalidInput,
         "weight-only quantization: block size " + std::to_string(s.block_size) + " (0 = per channel, or 2 and more)");
  const bool symmetric = s.symmetric >= 0 ? s.symmetric == 1 : s.bits == 8;
  ConvertResult r;
  // Blocks and 4-bit codes exist from opset 21 on; per-channel 8-bit from 13 (DequantizeLinear's axis).
  const int64_t need = (s.block_size > 0 || s.bits == 4) ? 21 : 13;
  if (graph.opset < need) {
    for (std::string& line : upgrade_opset(graph, need)) r.notes.push_back(std::move(line));
    r.notes.push_back(
        "opset raised to " + std::to_string(need) +
        (need == 21 ? " (DequantizeLinear with block_size / 4-bit codes)" : " (DequantizeLinear's axis)"));
  }
  if (need == 21) graph.ir_version = std::max<int64_t>(graph.ir_version, 10);
  const int64_t qmax = s.bits == 8 ? 127 : 7;
  std::vector<Op*> targets;
  for (const auto& op : graph.ops())
    if (op->domain.empty() && std::find(s.op_types.begin(), s.op_types.end(), op->type) != s.op_types.end())
      targets.push_back(op.get());
  for (Op* op : targets) {
    std::string why;
    if (op->type != "Conv" && op->type != "MatMul" && op->type != "Gemm")
      why = "weight-only rewrites MatMul, Gemm, Conv";
    WeightAxes axes = why.empty() ? weight_axes(*op, why) : WeightAxes{};
    if (!why.empty()) {
      ++r.kept;
      r.notes.push_back(op->describe() + " left in float: " + why);
      continue;
    }
    Value* w = op->input(1);
    // A reduction axis no longer than one block (a depthwise filter's 1, a short K) gains nothing
    // from blocks over one scale per output channel, which pools the other dims too.
    const int64_t block =
        s.block_size > 0 && w->data->shape()[size_t(axes.reduce_axis)] > s.block_size ? s.block_size : 0;
    const int64_t axis = block > 0 ? axes.reduce_axis : axes.out_axis;
    WeightCodes c = quantize_weight(*w->data, axis, block, s.bits, symmetric, qmax);
    const std::string base = w->name;
    std::vector<Value*> dq_inputs = {graph.add_constant(graph.unique_name(base + "_quantized"), std::move(c.codes)),
                                     graph.add_constant(graph.unique_name(base + "_scale"), std::move(c.scales))};
    if (!symmetric)
      dq_inputs.push_back(graph.add_constant(graph.unique_name(base + "_zero_point"), std::move(c.zero_points)));
    Value* wf = add_typed_value(graph, base + "_dequantized", DType::Float32, w->data->shape());
    Op* dq = graph.add_op("DequantizeLinear", graph.unique_name(base + "_DequantizeLinear"), dq_inputs, {wf});
    dq->attrs["axis"] = axis;
    if (block > 0) dq->attrs["block_size"] = block;
    graph.set_input(op, 1, wf);
    ++r.converted;
  }
  graph.topo_sort();
  graph.remove_dead();
  return r;
}

}  // namespace edgequant::deploy
