#include "exec/batch_split.h"

#include <algorithm>
#include <set>
#include <string>

#include "ir/op_traits.h"

namespace edgequant::exec {

namespace {
int64_t normalized(int64_t axis, size_t rank) { return axis < 0 ? axis + static_cast<int64_t>(rank) : axis; }

bool batched(const Value* v) { return v && !v->is_constant() && v->shape && !v->shape->empty(); }

bool op_is_per_sample(const Op& op) {
  if (!op_has(op.type, kPerSample) || !op.subgraphs.empty()) return false;
  for (const Value* out : op.outputs)
    if (out && !batched(out)) return false;
  const Value* out = op.outputs.empty() ? nullptr : op.outputs[0];
  if (!out) return false;
  size_t rank = out->shape->size();
  const Value* x = op.input(0);
  if (!batched(x)) return false;
  if (op.is(OpType::Conv) || op.is(OpType::ConvTranspose) || op.is(OpType::BatchNormalization) || op.is(OpType::Clip)) {
    for (size_t i = 1; i < op.inputs.size(); ++i)
      if (op.inputs[i] && !op.inputs[i]->is_constant()) return false;
    return !op.is(OpType::BatchNormalization) || op.attr_int("training_mode", 0) == 0;
  }
  if (op.is(OpType::Concat)) return normalized(op.attr_int("axis", 0), rank) != 0;
  if (op.is(OpType::Softmax) || op.is(OpType::LogSoftmax)) return normalized(op.attr_int("axis", -1), rank) != 0;
  if (op.is(OpType::Flatten)) return normalized(op.attr_int("axis", 1), x->shape->size()) >= 1;
  if (op.is(OpType::Gemm)) {
    if (op.attr_int("transA", 0) != 0) return false;
    for (size_t i = 1; i < op.inputs.size(); ++i)
      if (op.inputs[i] && !op.inputs[i]->is_constant()) return false;
    return true;
  }
  // MatMul: a constant B of rank > 2 would broadcast its own leading dims in front of the batch.
  if (op.is(OpType::MatMul))
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
