// ExplicitPadsPass: Conv and pooling windows with auto_pad (SAME_UPPER, SAME_LOWER, VALID) get the
// pads it stands for, computed from the static input shape as ONNX defines them, and auto_pad
// NOTSET. ESP-DL (and ESP-PPQ's exporter) take explicit pads only; TensorFlow-converted models
// use SAME everywhere. A window whose spatial input dims are unknown keeps auto_pad (`check`
// names it).
#include "exec/kernel.h"
#include "ir/op_traits.h"
#include "passes/graph_passes.h"

namespace edgequant {

PassResult ExplicitPadsPass::run(Graph& graph, PassContext&) {
  PassResult result;
  for (const auto& op : graph.ops()) {
    if (!op->is(OpType::Conv) && !op->is(OpType::MaxPool) && !op->is(OpType::AveragePool)) continue;
    std::string mode = op->attr_string("auto_pad", "NOTSET");
    if (mode == "NOTSET") continue;
    if (mode != "VALID" && mode != "SAME_UPPER" && mode != "SAME_LOWER") continue;  // the kernel refuses it
    const Value* x = op->input(0);
    const Value* w = op->is(OpType::Conv) ? op->input(1) : nullptr;
    if (!x || !x->shape || x->shape->size() < 3) continue;
    Shape spatial(x->shape->begin() + 2, x->shape->end());
    bool known = true;
    for (int64_t d : spatial) known = known && d > 0;
    std::vector<int64_t> kernel = op->attr_ints("kernel_shape");
    if (kernel.empty() && w && w->shape && w->shape->size() == spatial.size() + 2)
      kernel.assign(w->shape->begin() + 2, w->shape->end());
    if (!known || kernel.size() != spatial.size()) continue;
    for (int64_t k : kernel) known = known && k > 0;
    if (!known) continue;
    std::vector<int64_t> strides = exec::or_ones(op->attr_ints("strides"), spatial.size());
    std::vector<int64_t> dil = exec::or_ones(op->attr_ints("dilations"), spatial.size());
    op->attrs["pads"] = exec::resolve_pads(mode, {}, spatial, kernel, strides, dil);
    op->attrs.erase("auto_pad");
    ++result.rewrites;
  }
  result.changed = result.rewrites > 0;
  return result;
}

}  // namespace edgequant
