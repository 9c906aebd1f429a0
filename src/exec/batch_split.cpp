#include "exec/batch_split.h"

#include <algorithm>
#include <set>
#include <string>

namespace edgequant::exec {

namespace {
// Ops that compute each sample from that sample alone (given the checks below on their
// constant operands and axes).
const std::set<std::string>& per_sample_ops() {
  static const std::set<std::string> ops{
      "Conv", "ConvTranspose", "BatchNormalization", "MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool",
      "Relu", "Clip", "LeakyRelu", "Sigmoid", "Tanh", "HardSigmoid", "HardSwish", "Elu", "Selu", "Softplus", "Erf",
      "Gelu", "Exp", "Log", "Sqrt", "Neg", "Abs", "Identity", "Dropout", "Add", "Sub", "Mul", "Div", "Pow", "Max",
      "Min", "PRelu", "Concat", "Softmax", "LogSoftmax", "Flatten", "Gemm", "MatMul"};
  return ops;
}

int64_t normalized(int64_t axis, size_t rank) { return axis < 0 ? axis + static_cast<int64_t>(rank) : axis; }

bool batched(const Value* v) { return v && !v->is_constant() && v->shape && !v->shape->empty(); }

bool op_is_per_sample(const Op& op) {
  if (!per_sample_ops().count(op.type) || !op.subgraphs.empty()) return false;
  for (const Value* out : op.outputs)
    if (out && !batched(out)) return false;
  const Value* out = op.outputs.empty() ? nullptr : op.outputs[0];
  if (!out) return false;
  size_t rank = out->shape->size();
  const Value* x = op.input(0);
  if (!batched(x)) return false;
  if (op.type == "Conv" || op.type == "ConvTranspose" || op.type == "BatchNormalization" || op.type == "Clip") {
    for (size_t i = 1; i < op.inputs.size(); ++i)
      if (op.inputs[i] && !op.inputs[i]->is_constant()) return false;
    return op.type != "BatchNormalization" || op.attr_int("training_mode", 0) == 0;
  }
  if (op.type == "Concat") return normalized(op.attr_int("axis", 0), rank) != 0;
  if (op.type == "Softmax" || op.type == "LogSoftmax") return normalized(op.attr_int("axis", -1), rank) != 0;
  if (op.type == "Flatten") return normalized(op.attr_int("axis", 1), x->shape->size()) >= 1;
  if (op.type == "Gemm") {
    if (op.attr_int("transA", 0) != 0) return false;
    for (size_t i = 1; i < op.inputs.size(); ++i)
      if (op.inputs[i] && !op.inputs[i]->is_constant()) return false;
    return true;
  }
  // MatMul: a constant B of rank > 2 would broadcast its own leading dims in front of the batch.
  if (op.type == "MatMul")
    return x->shape->size() >= 2 && op.input(1) && op.input(1)->is_constant() && op.input(1)->data->shape().size() <= 2;
  // Elementwise (PRelu's slope included): a batched operand has the output's rank (so its dim 0 is
  // the batch); a constant one broadcasts over the batch.
  for (const Value* in : op.inputs) {
    if (!in) continue;
    if (in->is_constant()) {
      const Shape& s = in->data->shape();
      if (s.size() == rank && s[0] != 1) return false;
    } else if (!batched(in) || in->shape->size() != rank || (*in->shape)[0] != (*out->shape)[0]) {
      return false;
    }
  }
  return true;
}
}  // namespace

int64_t batch_chunk_size(const Graph& graph, size_t budget_bytes) {
  if (budget_bytes == 0 || graph.inputs.empty()) return 0;
  for (const Value* v : graph.inputs)
    if (!batched(v)) return 0;
  for (const Value* v : graph.outputs)
    if (!batched(v)) return 0;
  size_t largest = 0;
  for (const auto& op : graph.ops()) {
    if (!op_is_per_sample(*op)) return 0;
    for (const Value* out : op->outputs) {
      size_t bytes = 4;
      for (size_t d = 1; d < out->shape->size(); ++d) {
        if ((*out->shape)[d] < 0) return 0;
        bytes *= static_cast<size_t>((*out->shape)[d]);
      }
      largest = std::max(largest, bytes);
    }
  }
  return largest == 0 ? 0 : std::max<int64_t>(1, static_cast<int64_t>(budget_bytes / largest));
}

}  // namespace edgequant::exec
