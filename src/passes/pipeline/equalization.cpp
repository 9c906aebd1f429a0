// equalization: layerwise (cross-layer) equalization, Nagel et al. 2019. For a Conv/Gemm A whose
// output reaches a Conv/Gemm B only through ops that commute with a positive per-channel scale
// (ReLU, LeakyReLU, PRelu, max/average pooling, Identity), output channel i of A (weights and
// bias) is divided by s_i = sqrt(r1_i / r2_i) and input channel i of B multiplied by s_i, where
// r1_i and r2_i are the channels' weight ranges; repeated `iterations` times. opt_level 2 also
// crosses Add: every op writing into an Add chain (a residual stream) and every op reading it
// form one group sharing s_i, with r the largest range on each side. The float function
// is unchanged (up to rounding) while per-tensor weight ranges even out. Runs before assign:
// it rewrites the model's weights. relu6_to_relu first replaces Clip(0, 6) by Relu (a model
// change the user opts into) so that MobileNet-style blocks qualify.
#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <optional>
#include <ostream>
#include <set>
#include <sstream>

#include "edgequant/error.h"
#include "exec/kernel.h"
#include "ir/op_traits.h"
#include "passes/pipeline.h"

namespace edgequant {

namespace {
bool float_constant(const Value* v) { return v && v->is_constant() && v->data->dtype() == DType::Float32; }

// Output-channel axis of A's weight and input-channel axis of B's weight, or -1 when the op
// does not fit (ConvTranspose, grouped but not depthwise convs, MatMul).
int64_t out_axis(const Op& op) {
  if (op.is(OpType::Conv)) return 0;
  if (op.is(OpType::Gemm)) return op.attr_int("transB", 0) ? 0 : 1;
  return -1;
}
int64_t in_axis(const Op& op, int64_t channels) {
  if (op.is(OpType::Gemm)) return op.attr_int("transB", 0) ? 1 : 0;
  if (!op.is(OpType::Conv)) return -1;
  int64_t group = op.attr_int("group", 1);
  if (group == 1) return 1;
  if (group == channels && op.input(1)->data->shape()[1] == 1) return 0;  // depthwise: channel i -> output i
  return -1;
}

// Ops whose weights share one channel scaling: `up` produce the channels (divided by s_i),
// `down` read them (multiplied by s_i). Level 1: one producer and one reader. Level 2 also
// crosses Add: every producer feeding the Add chain and every reader of its output join.
struct Group {
  std::vector<std::pair<Op*, int64_t>> up, down;  // op and its weight's channel axis
};

bool weight_ok(const Op* op) {
  return float_constant(op->input(1)) && op->input(1)->consumers.size() == 1 &&
         (!op->input(2) || (float_constant(op->input(2)) && op->input(2)->consumers.size() == 1));
}

// The group that starts at `a`, or nothing when some path leaves the equalizable ops.
std::optional<Group> find_group(const Graph& g, Op* a, int level, const std::set<const Op*>& taken) {
  int64_t ax = out_axis(*a);
  if (ax < 0 || !weight_ok(a) || taken.count(a)) return std::nullopt;
  int64_t channels = a->input(1)->data->shape()[static_cast<size_t>(ax)];
  Group grp;
  grp.up.push_back({a, ax});
  std::set<const Op*> ups = {a}, downs;
  std::set<const Value*> seen;
  std::vector<const Value*> todo = {a->outputs[0]};
  auto add_up = [&](Op* p) {
    int64_t px = out_axis(*p);
    if (px < 0 || !weight_ok(p) || taken.count(p) || p->input(1)->data->shape()[static_cast<size_t>(px)] != channels)
      return false;
    if (ups.insert(p).second) {
      grp.up.push_back({p, px});
      todo.push_back(p->outputs[0]);
    }
    return true;
  };
  while (!todo.empty()) {
    const Value* v = todo.back();
    todo.pop_back();
    if (!v || !seen.insert(v).second) continue;
    if (is_graph_output(g, v) || v->consumers.empty()) return std::nullopt;
    if (level == 1 && v->consumers.size() != 1) return std::nullopt;
    for (Op* c : v->consumers) {
      bool flatten_1x1 = c->is(OpType::Flatten) && v->shape && v->shape->size() == 4 && (*v->shape)[2] == 1 &&
                         (*v->shape)[3] == 1 && c->attr_int("axis", 1) == 1;
      if (op_has(c->type, kCommutesWithScale) || flatten_1x1) {
        if (c->is(OpType::PRelu) && c->input(1) == v) return std::nullopt;
        todo.push_back(c->outputs[0]);
      } else if (level >= 2 && c->is(OpType::Add) && c->inputs.size() == 2 && c->input(0) && c->input(1) &&
                 c->input(0)->shape && c->input(1)->shape && *c->input(0)->shape == *c->input(1)->shape) {
        // The other operand carries the same channels: its producer (through commuting ops) joins.
        for (Value* in : c->inputs) {
          if (in == v || seen.count(in)) continue;
          const Value* u = in;
          while (u && u->producer && op_has(u->producer->type, kCommutesWithScale) && u->consumers.size() == 1)
            u = u->producer->input(0);
          if (!u || !u->producer || !add_up(u->producer)) return std::nullopt;
          // Intermediate values of that chain are reached forward from the producer.
        }
        todo.push_back(c->outputs[0]);
      } else if ((c->is(OpType::Conv) || c->is(OpType::Gemm)) && c->input(0) == v && weight_ok(c)) {
        int64_t bx = in_axis(*c, channels);
        if (bx < 0 || c->input(1)->data->shape()[static_cast<size_t>(bx)] != channels) return std::nullopt;
        if (downs.insert(c).second) grp.down.push_back({c, bx});
      } else {
        return std::nullopt;
      }
    }
  }
  if (grp.down.empty()) return std::nullopt;
  return grp;
}

// Per-channel max |w| along `axis`.
at::Tensor channel_range(const at::Tensor& w, int64_t axis) {
  return w.movedim(axis, 0).reshape({w.size(axis), -1}).abs().amax(1);
}

void set_constant(Value* v, const at::Tensor& t) {
  v->data = std::make_shared<const Tensor>(exec::to_ir_tensor(t.contiguous()));
}
}  // namespace

PassResult EqualizationPass::run(QuantContext& ctx) {
  const EqualizationSetting& es = options(ctx);
  Graph& g = *ctx.graph;
  auto say = [&](const std::string& line) {
    if (ctx.log) *ctx.log << "equalization: " << line << "\n";
  };
  PassResult result;
  if (es.relu6_to_relu) {
    for (const auto& op : g.ops()) {
      if (!op->is(OpType::Clip)) continue;
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
    if (result.rewrites)
      say(std::to_string(result.rewrites) + " Clip(0, 6) replaced by Relu (the float model changes)");
  }
  std::set<std::string> interested(es.interested_layers.begin(), es.interested_layers.end());
  std::vector<Group> groups;
  std::set<const Op*> taken;  // an op produces channels for one group only
  for (const auto& op : g.ops()) {
    if (!interested.empty() && !interested.count(op->name)) continue;
    std::optional<Group> grp = find_group(g, op.get(), es.opt_level, taken);
    if (!grp) continue;
    for (const auto& [u, ax] : grp->up) taken.insert(u);
    groups.push_back(std::move(*grp));
  }
  if (groups.empty()) {
    say("skipped: no Conv/Gemm pair joined by ReLU-like or pooling ops" +
        std::string(es.opt_level >= 2 ? " or Add" : ""));
    result.changed = result.rewrites > 0;
    return result;
  }
  at::NoGradGuard no_grad;
  auto weight = [](const Op* op) { return exec::view_tensor(*op->input(1)->data).to(at::kDouble); };
  // Per-channel range over a side of the group (elementwise max over its ops).
  auto side_range = [&](const std::vector<std::pair<Op*, int64_t>>& side) {
    at::Tensor r;
    for (const auto& [op, axis] : side) {
      at::Tensor c = channel_range(weight(op), axis);
      r = r.defined() ? at::maximum(r, c) : c;
    }
    return r;
  };
  auto shaped = [](const at::Tensor& v, int64_t axis, int64_t rank) {
    std::vector<int64_t> shape(static_cast<size_t>(rank), 1);
    shape[static_cast<size_t>(axis)] = v.numel();
    return v.reshape(shape);
  };
  auto imbalance = [&](const Group& grp) {
    return (side_range(grp.up) / side_range(grp.down).clamp_min(1e-12)).log().abs().max().item<double>();
  };
  double before = 0, after = 0;
  size_t ops = 0;
  for (const Group& grp : groups) {
    before += imbalance(grp);
    ops += grp.up.size() + grp.down.size();
  }
  for (int it = 0; it < es.iterations; ++it)
    for (const Group& grp : groups) {
      at::Tensor r1 = side_range(grp.up), r2 = side_range(grp.down);
      at::Tensor s = at::sqrt(r1 / r2.clamp_min(1e-12));
      s = at::where((r1 > 0) & (r2 > 0), s, at::ones_like(s)).clamp(es.value_threshold, 1.0 / es.value_threshold);
      for (const auto& [op, axis] : grp.up) {
        at::Tensor w = weight(op);
        set_constant(op->input(1), (w / shaped(s, axis, w.dim())).to(at::kFloat));
        if (op->input(2))
          set_constant(op->input(2), (exec::view_tensor(*op->input(2)->data).to(at::kDouble) / s).to(at::kFloat));
      }
      for (const auto& [op, axis] : grp.down) {
        at::Tensor w = weight(op);
        set_constant(op->input(1), (w * shaped(s, axis, w.dim())).to(at::kFloat));
      }
    }
  for (const Group& grp : groups) after += imbalance(grp);
  std::ostringstream line;
  line.precision(3);
  line << groups.size() << (es.opt_level >= 2 ? " groups (" : " pairs (") << ops << " ops), " << es.iterations
       << " iterations; mean max |log(r_up / r_down)| " << before / groups.size() << " -> " << after / groups.size();
  say(line.str());
  ctx.count_walk(1 + es.iterations);
  result.changed = true;
  result.rewrites += static_cast<int>(groups.size());
  return result;
}

}  // namespace edgequant
