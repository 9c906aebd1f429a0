// RemoveIdentityPass: bypass Identity, Dropout and a Pad that pads nothing (torch.onnx writes
// AvgPool1d as an all-zero Pad before the AveragePool).
#include <algorithm>

#include "ir/op_traits.h"
#include "passes/graph_passes.h"

namespace edgequant {

namespace {
bool pads_nothing(const Op& op) {
  std::vector<int64_t> pads = constant_pads(op);
  return !pads.empty() && std::all_of(pads.begin(), pads.end(), [](int64_t p) { return p == 0; });
}
}  // namespace

PassResult RemoveIdentityPass::run(Graph& graph, PassContext&) {
  PassResult result;
  std::vector<Op*> candidates;
  for (const auto& op : graph.ops())
    if (op->is(OpType::Identity) || op->is(OpType::Dropout) || (op->is(OpType::Pad) && pads_nothing(*op)))
      candidates.push_back(op.get());
  for (Op* op : candidates) {
    Value* in = op->input(0);
    Value* out = op->outputs.empty() ? nullptr : op->outputs[0];
    bool mask_used = op->outputs.size() > 1 && op->outputs[1] &&
                     (!op->outputs[1]->consumers.empty() || is_graph_output(graph, op->outputs[1]));
    // Keeping graph-output names stable matters more than one less op.
    if (!in || !out || mask_used || is_graph_output(graph, out)) continue;
    graph.replace_uses(out, in);
    graph.remove_op(op);
    ++result.rewrites;
  }
  result.changed = result.rewrites > 0;
  return result;
}

}  // namespace edgequant
