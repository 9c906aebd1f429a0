// FusePadPass: a zero constant Pad on the spatial dims that feeds only a Conv or an AveragePool
// becomes that op's pads (onnx-simplifier's fuse_pad_into_conv; ESP-PPQ's exporter does the same).
// Causal temporal convolutions are written this way (F.pad(x, (d*(k-1), 0)) then Conv1d), and
// ESP-DL has no Pad before a Conv. An AveragePool takes count_include_pad = 1: the zeros the Pad
// wrote were counted. MaxPool pads with -inf, not zeros: never fused.
#include "ir/op_traits.h"
#include "passes/graph_passes.h"

namespace edgequant {

std::vector<int64_t> constant_pads(const Op& pad) {
  if (pad.has_attr("pads")) return pad.attr_ints("pads");  // opset < 11
  const Value* v = pad.input(1);                           // the importer made Constant nodes initializers
  if (!v || !v->data) return {};
  std::vector<int64_t> out;
  for (double d : v->data->to_doubles()) out.push_back(int64_t(d));
  return out;
}

namespace {
bool zero_fill(const Op& pad) {
  if (pad.attr_string("mode", "constant") != "constant") return false;
  if (pad.has_attr("value")) return pad.attr_float("value", 0.f) == 0.f;
  const Value* c = pad.inputs.size() > 2 ? pad.input(2) : nullptr;
  if (!c) return true;
  if (!c->data) return false;
  for (double d : c->data->to_doubles())
    if (d != 0) return false;
  return true;
}
}  // namespace

PassResult FusePadPass::run(Graph& graph, PassContext&) {
  PassResult result;
  std::vector<Op*> pads;
  for (const auto& op : graph.ops())
    if (op->is(OpType::Pad)) pads.push_back(op.get());
  for (Op* pad : pads) {
    Value* out = pad->outputs.empty() ? nullptr : pad->outputs[0];
    Value* in = pad->input(0);
    if (!out || !in || out->consumers.size() != 1 || is_graph_output(graph, out)) continue;
    if (pad->inputs.size() > 3 && pad->input(3)) continue;  // opset 18 axes: left alone
    Op* next = out->consumers[0];
    bool conv = next->is(OpType::Conv), avg = next->is(OpType::AveragePool);
    if ((!conv && !avg) || next->input(0) != out || next->attr_string("auto_pad", "NOTSET") != "NOTSET") continue;
    if (!zero_fill(*pad)) continue;
    std::vector<int64_t> p = constant_pads(*pad);
    size_t rank = p.size() / 2;
    if (rank < 3 || p.size() != 2 * rank) continue;
    bool ok = p[0] == 0 && p[1] == 0 && p[rank] == 0 && p[rank + 1] == 0;  // batch and channels
    for (int64_t v : p) ok = ok && v >= 0;
    if (!ok) continue;
    size_t spatial = rank - 2;
    std::vector<int64_t> own = next->attr_ints("pads");
    if (own.empty()) own.assign(2 * spatial, 0);
    if (own.size() != 2 * spatial) continue;
    for (size_t i = 0; i < spatial; ++i) {
      own[i] += p[2 + i];
      own[spatial + i] += p[rank + 2 + i];
    }
    next->attrs["pads"] = own;
    if (avg) next->attrs["count_include_pad"] = int64_t(1);
    graph.replace_uses(out, in);
    graph.remove_op(pad);
    ++result.rewrites;
  }
  result.changed = result.rewrites > 0;
  return result;
}

}  // namespace edgequant
