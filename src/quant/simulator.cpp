// QuantSimulator implementation.
#include "quant/simulator.h"

#include <ATen/ATen.h>

#include "edgequant/error.h"
#include "quant/fake_quant.h"
#include "quant/quantizer.h"

namespace edgequant::quant {

namespace {
const QuantConfig* usable(const QuantConfig* c) {
  if (!c || c->state == QuantState::Float || c->state == QuantState::Fused) return nullptr;
  if (c->scales.empty()) fail(ErrorCode::Internal, "quantization config without a scale (calibrate first)");
  return c;
}
}  // namespace

void set_bias_scales(QuantPlan& plan, const Graph& g) {
  for (const auto& op : g.ops()) {
    if (!is_compute_op(op->type) || !op->input(2)) continue;
    QuantConfig* bc = plan.find(op->input(2)->name);
    const QuantConfig* wc = op->input(1) ? plan.effective(op->input(1)->name) : nullptr;
    const QuantConfig* ic = op->input(0) ? plan.effective(op->input(0)->name) : nullptr;
    if (!bc || bc->role != "bias" || !wc || !ic || wc->scales.empty() || ic->scales.empty() ||
        ic->state == QuantState::Float)
      continue;
    bc->scales.clear();
    for (double sw : wc->scales) bc->scales.push_back(sw * ic->scales[0]);
    bc->zero_points.assign(bc->scales.size(), 0);
    bc->granularity = bc->scales.size() > 1 ? Granularity::PerChannel : Granularity::PerTensor;
  }
}

QuantSimulator::QuantSimulator(const Graph& g, const QuantPlan& plan, exec::Executor& ex)
    : graph_(g), plan_(plan), executor_(ex) {
  at::NoGradGuard no_grad;
  std::set<const Value*> graph_inputs(g.inputs.begin(), g.inputs.end());
  std::map<std::string, std::vector<std::pair<int, std::string>>> requants;
  for (const auto& r : plan.requants) requants[r.op].push_back({r.index, r.target});
  for (const auto& op_ptr : g.ops()) {
    const Op* op = op_ptr.get();
    OpPlan p;
    for (size_t i = 0; i < op->inputs.size(); ++i) {
      const Value* v = op->inputs[i];
      if (!v) continue;
      const QuantConfig* c = usable(plan.find(v->name));
      if (v->is_constant()) {
        if (!c) continue;
        auto it = constants_.find(v);
        if (it == constants_.end())
          it = constants_.emplace(v, fake_quantize(ex.constant(v).to(at::kFloat), *c).to(ex.constant(v).scalar_type())).first;
        p.constants.push_back({i, it->second});
      } else if (graph_inputs.count(v) && c) {
        p.activations.push_back({i, c});
      }
    }
    for (const auto& [index, target] : requants[op->name]) {
      const QuantConfig* c = usable(plan.effective(target));
      if (!c) continue;
      // A requant replaces the graph-input quantization of the same input, if any.
      auto& acts = p.activations;
      acts.erase(std::remove_if(acts.begin(), acts.end(), [&](const auto& a) { return a.first == size_t(index); }), acts.end());
      acts.push_back({static_cast<size_t>(index), c});
    }
    for (size_t i = 0; i < op->outputs.size(); ++i) {
      const Value* v = op->outputs[i];
      if (!v) continue;
      const QuantConfig* c = plan.find(v->name);
      // Passive outputs are already on their master's grid; only owners are re-quantized.
      if (c && c->state == QuantState::Quantized) p.outputs.push_back({i, usable(c)});
    }
    if (!p.constants.empty() || !p.activations.empty() || !p.outputs.empty()) ops_[op] = std::move(p);
  }
}

void QuantSimulator::before_op(const Op& op, std::vector<at::Tensor>& in, const std::set<const Op*>* only) const {
  if (only && !only->count(&op)) return;
  auto it = ops_.find(&op);
  if (it == ops_.end()) return;
  for (const auto& [i, t] : it->second.constants) in[i] = t;
  for (const auto& [i, c] : it->second.activations) in[i] = fake_quantize(in[i], *c);
}

void QuantSimulator::after_op(const Op& op, std::vector<at::Tensor>& out, const std::set<const Op*>* only) const {
  if (only && !only->count(&op)) return;
  auto it = ops_.find(&op);
  if (it == ops_.end()) return;
  for (const auto& [i, c] : it->second.outputs)
    if (i < out.size()) out[i] = fake_quantize(out[i], *c);
}

exec::ExecHooks QuantSimulator::hooks(const std::set<const Op*>* only) const {
  exec::ExecHooks h;
  h.before_op = [this, only](const Op& op, std::vector<at::Tensor>& in) { before_op(op, in, only); };
  h.after_op = [this, only](const Op& op, std::vector<at::Tensor>& out) { after_op(op, out, only); };
  return h;
}

std::vector<at::Tensor> QuantSimulator::run(const std::vector<at::Tensor>& inputs) {
  exec::ExecHooks h = hooks();
  return executor_.run(inputs, &h);
}

at::Tensor QuantSimulator::quantized_constant(const Value* v) const {
  auto it = constants_.find(v);
  if (it == constants_.end()) fail(ErrorCode::Internal, "'" + v->name + "' is not a quantized constant");
  return it->second;
}

}  // namespace edgequant::quant
