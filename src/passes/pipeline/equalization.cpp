// equalization: layerwise (cross-layer) equalization, Nagel et al. 2019. For a Conv/Gemm A whose
// output reaches a Conv/Gemm B only through ops that commute with a positive per-channel scale
// (ReLU, LeakyReLU, PRelu, max/average pooling, Identity), output channel i of A (weights and
// bias) is divided by s_i = sqrt(r1_i / r2_i) and input channel i of B multiplied by s_i, where
// r1_i and r2_i are the channels' weight ranges; repeated `iterations` times. The float function
// is unchanged (up to rounding) while per-tensor weight ranges even out. Runs before assign:
// it rewrites the model's weights. relu6_to_relu first replaces Clip(0, 6) by Relu (a model
// change the user opts into) so that MobileNet-style blocks qualify.
#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <ostream>
#include <set>
#include <sstream>

#include "edgequant/error.h"
#include "exec/kernel.h"
#include "ir/op_traits.h"
#include "passes/pipeline.h"

namespace edgequant {

namespace {
const std::set<std::string> kCommuting = {"Relu", "LeakyRelu", "PRelu", "MaxPool", "GlobalMaxPool", "AveragePool",
                                          "GlobalAveragePool", "Identity"};

bool float_constant(const Value* v) { return v && v->is_constant() && v->data->dtype() == DType::Float32; }

// Output-channel axis of A's weight and input-channel axis of B's weight, or -1 when the op
// does not fit (ConvTranspose, grouped but not depthwise convs, MatMul).
int64_t out_axis(const Op& op) {
  if (op.type == "Conv") return 0;
  if (op.type == "Gemm") return op.attr_int("transB", 0) ? 0 : 1;
  return -1;
}
int64_t in_axis(const Op& op, int64_t channels) {
  if (op.type == "Gemm") return op.attr_int("transB", 0) ? 1 : 0;
  if (op.type != "Conv") return -1;
  int64_t group = op.attr_int("group", 1);
  if (group == 1) return 1;
  if (group == channels && op.input(1)->data->shape()[1] == 1) return 0;  // depthwise: channel i -> output i
  return -1;
}

struct Pair {
  Op* a;
  Op* b;
  int64_t a_axis, b_axis;
};

// Per-channel max |w| along `axis`.
at::Tensor channel_range(const at::Tensor& w, int64_t axis) {
  return w.movedim(axis, 0).reshape({w.size(axis), -1}).abs().amax(1);
}

void set_constant(Value* v, const at::Tensor& t) { v->data = std::make_shared<const Tensor>(exec::to_ir_tensor(t.contiguous())); }
}  // namespace

PassResult EqualizationPass::run(QuantContext& ctx) {
  const EqualizationSetting& es = ctx.setting.equalization_setting;
  Graph& g = *ctx.graph;
  auto say = [&](const std::string& line) {
    if (ctx.log) *ctx.log << "equalization: " << line << "\n";
  };
  PassResult result;
  if (es.relu6_to_relu) {
    for (const auto& op : g.ops()) {
      if (op->type != "Clip") continue;
      std::vector<float> lo, hi;
      if (op->input(1) && float_constant(op->input(1))) lo = {static_cast<float>(op->input(1)->data->to_doubles()[0])};
      if (op->input(2) && float_constant(op->input(2))) hi = {static_cast<float>(op->input(2)->data->to_doubles()[0])};
      if (op->has_attr("min")) lo = {op->attr_float("min", 0)};
      if (op->has_attr("max")) hi = {op->attr_float("max", 0)};
      if (lo.size() != 1 || hi.size() != 1 || lo[0] != 0.0f || hi[0] != 6.0f) continue;
      op->type = "Relu";
      op->attrs.clear();
      while (op->inputs.size() > 1) g.set_input(op.get(), op->inputs.size() - 1, nullptr), op->inputs.pop_back();
      ++result.rewrites;
    }
    if (result.rewrites) say(std::to_string(result.rewrites) + " Clip(0, 6) replaced by Relu (the float model changes)");
  }
  std::set<std::string> interested(es.interested_layers.begin(), es.interested_layers.end());
  std::vector<Pair> pairs;
  for (const auto& op : g.ops()) {
    Op* a = op.get();
    int64_t ax = out_axis(*a);
    if (ax < 0 || !float_constant(a->input(1)) || (a->input(2) && !float_constant(a->input(2)))) continue;
    if (!interested.empty() && !interested.count(a->name)) continue;
    // Follow the single consumer chain through commuting ops to the next computing op.
    const Value* v = a->outputs.empty() ? nullptr : a->outputs[0];
    Op* b = nullptr;
    while (v) {
      Op* c = sole_consumer(g, v);
      if (!c || std::find(g.outputs.begin(), g.outputs.end(), v) != g.outputs.end()) break;
      if (kCommuting.count(c->type)) {
        if (c->type == "PRelu" && c->input(1) && c->input(1)->data && c->input(1)->data->numel() > 1 &&
            c->input(1)->consumers.size() > 1)
          break;
        v = c->outputs.empty() ? nullptr : c->outputs[0];
        continue;
      }
      if (c->input(0) == v && (c->type == "Conv" || c->type == "Gemm")) b = c;
      break;
    }
    if (!b || !float_constant(b->input(1)) || b->input(1)->consumers.size() != 1 || a->input(1)->consumers.size() != 1)
      continue;
    int64_t channels = a->input(1)->data->shape()[static_cast<size_t>(ax)];
    int64_t bx = in_axis(*b, channels);
    if (bx < 0 || b->input(1)->data->shape()[static_cast<size_t>(bx)] != channels) continue;
    pairs.push_back({a, b, ax, bx});
  }
  if (pairs.empty()) {
    say("skipped: no Conv/Gemm pair joined by ReLU-like or pooling ops");
    if (result.rewrites) result.preserved = 0;
    result.changed = result.rewrites > 0;
    return result;
  }
  at::NoGradGuard no_grad;
  double spread_before = 0, spread_after = 0;
  auto spread = [](const at::Tensor& r) { return (r.max() / r.clamp_min(1e-12).min()).item<double>(); };
  for (const Pair& p : pairs) spread_before += spread(channel_range(exec::view_tensor(*p.a->input(1)->data), p.a_axis));
  for (int it = 0; it < es.iterations; ++it)
    for (const Pair& p : pairs) {
      at::Tensor w1 = exec::view_tensor(*p.a->input(1)->data).to(at::kDouble);
      at::Tensor w2 = exec::view_tensor(*p.b->input(1)->data).to(at::kDouble);
      at::Tensor r1 = channel_range(w1, p.a_axis), r2 = channel_range(w2, p.b_axis);
      at::Tensor s = at::sqrt(r1 / r2.clamp_min(1e-12));
      s = at::where((r1 > 0) & (r2 > 0), s, at::ones_like(s)).clamp(es.value_threshold, 1.0 / es.value_threshold);
      auto shaped = [](const at::Tensor& v, int64_t axis, int64_t rank) {
        std::vector<int64_t> shape(static_cast<size_t>(rank), 1);
        shape[static_cast<size_t>(axis)] = v.numel();
        return v.reshape(shape);
      };
      set_constant(p.a->input(1), (w1 / shaped(s, p.a_axis, w1.dim())).to(at::kFloat));
      if (p.a->input(2)) set_constant(p.a->input(2), (exec::view_tensor(*p.a->input(2)->data).to(at::kDouble) / s).to(at::kFloat));
      set_constant(p.b->input(1), (w2 * shaped(s, p.b_axis, w2.dim())).to(at::kFloat));
    }
  for (const Pair& p : pairs) spread_after += spread(channel_range(exec::view_tensor(*p.a->input(1)->data), p.a_axis));
  std::ostringstream line;
  line.precision(3);
  line << pairs.size() << " pairs, " << es.iterations << " iterations; mean max/min channel range of the first weights "
       << spread_before / pairs.size() << " -> " << spread_after / pairs.size();
  say(line.str());
  ctx.count_walk(1 + es.iterations);
  result.changed = true;
  result.rewrites += static_cast<int>(pairs.size());
  result.preserved = 0;  // weights changed: the executor, observations and every analysis are stale
  return result;
}

}  // namespace edgequant
