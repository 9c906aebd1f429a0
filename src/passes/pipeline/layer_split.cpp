// layer-split: horizontal layer split for weight outliers (ESP-PPQ's HorizontalLayerSplitPass). A
// Conv or Gemm whose weight holds values beyond +-value_threshold becomes two ops of the same
// kind on the same input, joined by an Add: W = clip(W, -t, t) + (W - clip(W, -t, t)). The first
// keeps the bias; the second holds only the outliers (zeros elsewhere), so each gets a scale
// that suits it instead of one scale stretched by a few large weights. Runs before assign.
#include <ATen/ATen.h>

#include <ostream>
#include <set>

#include "edgequant/error.h"
#include "exec/kernel.h"
#include "ir/op_traits.h"
#include "passes/pipeline.h"

namespace edgequant {

PassResult LayerSplitPass::run(QuantContext& ctx) {
  const LayerSplitSetting& ls = options(ctx);
  Graph& g = *ctx.graph;
  auto say = [&](const std::string& line) {
    if (ctx.log) *ctx.log << "layer-split: " << line << "\n";
  };
  std::set<std::string> interested(ls.interested_layers.begin(), ls.interested_layers.end());
  for (const auto& name : interested) {
    const Op* op = g.find_op(name);
    if (!op || (!op->is(OpType::Conv) && !op->is(OpType::Gemm)))
      fail(ErrorCode::InvalidSetting, "layer_split_setting.interested_layers: '" + name + "' is not a Conv or Gemm");
  }
  std::vector<Op*> targets;
  for (const auto& op : g.ops()) {
    if ((!op->is(OpType::Conv) && !op->is(OpType::Gemm)) || (!interested.empty() && !interested.count(op->name)))
      continue;
    const Value* w = op->input(1);
    if (!w || !w->is_constant() || w->data->dtype() != DType::Float32 || w->consumers.size() != 1) continue;
    if (exec::view_tensor(*w->data).abs().max().item<double>() > ls.value_threshold) targets.push_back(op.get());
  }
  PassResult r;
  if (targets.empty()) {
    say("skipped: no Conv/Gemm weight beyond +-" + std::to_string(ls.value_threshold));
    return r;
  }
  at::NoGradGuard no_grad;
  for (Op* op : targets) {
    Value* w = op->input(1);
    at::Tensor full = exec::view_tensor(*w->data);
    at::Tensor inner = full.clamp(-ls.value_threshold, ls.value_threshold);
    at::Tensor outliers = full - inner;  // exact: zero wherever |w| <= t
    Value* inner_w = g.add_constant(g.unique_name(w->name + "_split_inner"), exec::to_ir_tensor(inner.contiguous()));
    Value* outlier_w =
        g.add_constant(g.unique_name(w->name + "_split_outliers"), exec::to_ir_tensor(outliers.contiguous()));
    Value* y = op->outputs[0];
    Value* y_inner = g.add_value(g.unique_name(y->name + "_split_inner"));
    Value* y_outliers = g.add_value(g.unique_name(y->name + "_split_outliers"));
    y_inner->dtype = y_outliers->dtype = y->dtype;
    y_inner->shape = y_outliers->shape = y->shape;
    std::vector<Value*> inputs = {op->input(0), outlier_w};
    Op* twin = g.add_op(op->type, g.unique_name(op->name + "_split_outliers"), inputs, {y_outliers});
    twin->attrs = op->attrs;
    if (op->is(OpType::Gemm)) twin->attrs.erase("beta");  // no bias on the twin
    g.set_input(op, 1, inner_w);
    op->outputs[0] = y_inner;
    y_inner->producer = op;
    y->producer = nullptr;  // the Add takes over the original output
    g.add_op("Add", g.unique_name(op->name + "_split_add"), {y_inner, y_outliers}, {y});
    ++r.rewrites;
    say(op->describe() + ": " + std::to_string(outliers.ne(0).sum().item<int64_t>()) + " of " +
        std::to_string(full.numel()) + " weights beyond +-" + std::to_string(ls.value_threshold) +
        " moved to a twin op");
  }
  g.topo_sort();
  g.remove_dead();  // the original weights
  g.verify();
  ctx.count_walk(2);
  r.changed = true;
  return r;
}

}  // namespace edgequant
