// Calibration (see calibrate.h).
#include "quant/calibrate.h"

#include <ATen/ATen.h>

#include <chrono>

#include "core/progress.h"
#include "edgequant/error.h"
#include "ir/op_traits.h"
#include "quant/simulator.h"

namespace edgequant::quant {

namespace {
double since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}
}  // namespace

CalibAlgorithm calib_algorithm_for(const Setting& s, const Target& t) {
  return s.calib_algorithm ? *s.calib_algorithm : t.default_calib;
}

bool wants_observer(const Value& v, const QuantPlan& plan) {
  const QuantConfig* c = plan.find(v.name);
  return c && !v.is_constant() && c->state == QuantState::Quantized && !c->custom_scale && !c->align_to_large;
}

void calibrate_constants(const Graph& g, exec::Executor& ex, QuantPlan& plan, const Target& t, const Setting& s) {
  for (const auto& v : g.values()) {
    QuantConfig* c = plan.find(v->name);
    if (!v->is_constant() || !c || c->state != QuantState::Quantized || c->custom_scale) continue;
    at::Tensor w = ex.constant(v.get());
    bool mse = s.weight_calib_algorithm ? *s.weight_calib_algorithm == CalibAlgorithm::MSE : c->bits < 8;
    bool weight_mse = c->role == QuantRole::Weight && mse;
    CalibAlgorithm algo = weight_mse ? CalibAlgorithm::MSE : CalibAlgorithm::MinMax;
    set_scale_from_ranges(*c, weight_ranges(w, *c, weight_mse), t.pow2_rule_for(algo));
    c->source = range_source_of(algo);
  }
}

Observations observe_activations(const Graph& g, exec::Executor& ex, const QuantPlan& plan, BatchStream& batches,
                                 const exec::HookList* extra, double batch_percentile) {
  auto start = std::chrono::steady_clock::now();
  Observations obs;
  std::unordered_map<const Value*, HistogramObserver*> observer_of;
  for (const auto& v : g.values())
    if (wants_observer(*v, plan)) {
      observer_of[v.get()] = &obs.by_value[v->name];
      obs.by_value[v->name].track_batch_percentile(batch_percentile);
    }

  exec::HookList hooks;
  if (extra) hooks = *extra;
  exec::ExecHooks observe;
  observe.allow_inplace = true;  // observers reduce each tensor at once
  observe.after_op = [&](const Op& op, std::vector<at::Tensor>& outs) {
    for (size_t i = 0; i < op.outputs.size() && i < outs.size(); ++i) {
      auto it = observer_of.find(op.outputs[i]);
      if (it == observer_of.end()) continue;
      auto t = std::chrono::steady_clock::now();
      it->second->observe(outs[i]);
      obs.observer_seconds += since(t);
    }
  };
  hooks.add(observe);
  Progress progress("calibrating", batches.batches());
  std::vector<at::Tensor> inputs;
  at::NoGradGuard no_grad;
  while (batches.next(inputs)) {
    for (size_t i = 0; i < g.inputs.size() && i < inputs.size(); ++i) {
      auto it = observer_of.find(g.inputs[i]);
      if (it != observer_of.end()) it->second->observe(inputs[i]);
    }
    ex.run(inputs, &hooks);
    ++obs.batches;
    obs.samples += inputs.empty() ? 0 : inputs[0].size(0);
    progress.step();
  }
  progress.finish();
  if (obs.samples == 0) fail(ErrorCode::InvalidInput, "the calibration set is empty");
  obs.seconds = since(start);
  return obs;
}

void apply_calibration(const Graph& g, exec::Executor& ex, QuantPlan& plan, const Target& t, const Setting& s,
                       const Observations& obs) {
  calibrate_constants(g, ex, plan, t, s);
  CalibAlgorithm algo = calib_algorithm_for(s, t);
  Pow2Rule rule = t.pow2_rule_for(algo);
  for (const auto& v : g.values()) {
    if (!wants_observer(*v, plan)) continue;
    auto it = obs.by_value.find(v->name);
    if (it == obs.by_value.end())
      fail(ErrorCode::Internal, "no observation of '" + v->name + "' (the plan changed after calibration's data pass)");
    QuantConfig& c = plan.values.at(v->name);
    set_scale_from_ranges(c, {it->second.finalize(c, algo, s.percentile)}, rule);
    c.source = range_source_of(algo);
  }
  // Align to Large: the output's scale covers the union of its inputs' ranges.
  for (const auto& op : g.ops()) {
    if (op->outputs.empty() || !op->outputs[0]) continue;
    QuantConfig* c = plan.find(op->outputs[0]->name);
    if (!c || !c->align_to_large || c->custom_scale) continue;
    Range u{0, 0};
    for (size_t i : data_inputs(*op)) {
      const QuantConfig* ic = op->input(i) ? plan.effective(op->input(i)->name) : nullptr;
      if (!ic || ic->scales.empty()) continue;
      u.min = std::min(u.min, ic->range_min);
      u.max = std::max(u.max, ic->range_max);
    }
    set_scale_from_ranges(*c, {u}, rule);
    c->source = RangeSource::AlignToLarge;
  }
  // Mixed-precision boundary grids: the source tensor's observation at the consumer's width.
  for (auto& r : plan.requants) {
    if (!r.grid) continue;
    const QuantConfig* src = plan.effective(r.target);
    const Value* v = g.find_value(r.target);
    const Value* owner = v;
    while (owner && plan.find(owner->name) && plan.find(owner->name)->state == QuantState::Passive && owner->producer &&
           owner->producer->input(0))
      owner = owner->producer->input(0);
    auto it = owner ? obs.by_value.find(owner->name) : obs.by_value.end();
    if (it != obs.by_value.end()) set_scale_from_ranges(*r.grid, {it->second.finalize(*r.grid, algo, s.percentile)}, rule);
    else if (src) set_scale_from_ranges(*r.grid, {{src->range_min, src->range_max}}, rule);
    r.grid->source = range_source_of(algo);
  }
  // Passives copy their master's scale so the plan file is self-describing; biases s_in * s_w.
  refresh_derived_scales(plan, g);
}

CalibrationReport calibrate(const Graph& g, exec::Executor& ex, QuantPlan& plan, const Target& t, const Setting& s,
                            BatchStream& batches) {
  auto start = std::chrono::steady_clock::now();
  Observations obs = observe_activations(g, ex, plan, batches, nullptr, s.percentile);
  apply_calibration(g, ex, plan, t, s, obs);
  CalibrationReport r;
  r.algorithm = calib_algorithm_for(s, t);
  r.batches = obs.batches;
  r.samples = obs.samples;
  r.observed_tensors = static_cast<int64_t>(obs.by_value.size());
  r.observer_seconds = obs.observer_seconds;
  r.seconds = since(start);
  return r;
}

}  // namespace edgequant::quant
