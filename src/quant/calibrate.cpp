// Calibration (see calibrate.h).
#include "quant/calibrate.h"

#include <ATen/ATen.h>

#include <chrono>
#include <unordered_map>

#include "core/progress.h"
#include "edgequant/error.h"
#include "quant/observer.h"
#include "quant/quantizer.h"
#include "quant/simulator.h"

namespace edgequant::quant {

void calibrate_constants(const Graph& g, exec::Executor& ex, QuantPlan& plan, const Target& t, const Setting& s) {
  bool mse = s.weight_calib_algorithm == "mse";
  for (const auto& v : g.values()) {
    QuantConfig* c = plan.find(v->name);
    if (!v->is_constant() || !c || c->state != QuantState::Quantized || c->custom_scale) continue;
    at::Tensor w = ex.constant(v.get());
    bool is_weight = c->role == "weight";
    std::vector<Range> ranges = weight_ranges(w, *c, is_weight && mse);
    set_scale_from_ranges(*c, ranges, t.pow2_rule_for(is_weight && mse ? "mse" : "minmax"));
    c->observer = is_weight && mse ? "mse" : "minmax";
  }
}

CalibrationReport calibrate(const Graph& g, exec::Executor& ex, QuantPlan& plan, const Target& t, const Setting& s,
                            BatchStream& batches) {
  auto start = std::chrono::steady_clock::now();
  CalibrationReport report;
  std::string algo_name = s.calib_algorithm.empty() ? t.default_calib : s.calib_algorithm;
  CalibAlgorithm algo = parse_calib_algorithm(algo_name);
  report.algorithm = algo_name;
  calibrate_constants(g, ex, plan, t, s);

  // Observers for every non-constant value that owns its scale.
  std::unordered_map<const Value*, std::unique_ptr<Observer>> observers;
  auto wants_observer = [&](const Value* v) {
    const QuantConfig* c = v ? plan.find(v->name) : nullptr;
    return c && !v->is_constant() && c->state == QuantState::Quantized && !c->custom_scale && c->observer != "align_to_large";
  };
  for (const auto& v : g.values())
    if (wants_observer(v.get())) observers[v.get()] = make_observer(algo, s.percentile);
  report.observed_tensors = static_cast<int64_t>(observers.size());

  exec::ExecHooks hooks;
  hooks.allow_inplace = true;  // observers reduce each tensor immediately
  hooks.after_op = [&](const Op& op, std::vector<at::Tensor>& outs) {
    for (size_t i = 0; i < op.outputs.size() && i < outs.size(); ++i) {
      auto it = observers.find(op.outputs[i]);
      if (it == observers.end()) continue;
      auto t = std::chrono::steady_clock::now();
      it->second->observe(outs[i]);
      report.observer_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
    }
  };
  Progress progress("calibrating (" + algo_name + ")", batches.batches());
  at::Tensor batch;
  at::NoGradGuard no_grad;
  while (batches.next(batch)) {
    for (const Value* in : g.inputs) {
      auto it = observers.find(in);
      if (it != observers.end()) it->second->observe(batch);
    }
    ex.run({batch}, &hooks);
    ++report.batches;
    report.samples += batch.size(0);
    progress.step();
  }
  progress.finish();
  if (report.samples == 0) fail(ErrorCode::InvalidInput, "the calibration set is empty");

  Pow2Rule rule = t.pow2_rule_for(algo_name);
  std::unordered_map<std::string, Range> ranges;
  for (auto& [v, obs] : observers) {
    QuantConfig& c = plan.values.at(v->name);
    Range r = obs->finalize(c);
    ranges[v->name] = r;
    set_scale_from_ranges(c, {r}, rule);
    c.observer = algo_name;
  }
  // Align to Large: the output's scale covers the union of its inputs' ranges.
  for (const auto& op : g.ops()) {
    if (op->outputs.empty() || !op->outputs[0]) continue;
    QuantConfig* c = plan.find(op->outputs[0]->name);
    if (!c || c->observer != "align_to_large") continue;
    Range u{0, 0};
    for (size_t i : data_inputs(*op)) {
      const QuantConfig* ic = op->input(i) ? plan.effective(op->input(i)->name) : nullptr;
      if (!ic || ic->scales.empty()) continue;
      u.min = std::min(u.min, ic->range_min);
      u.max = std::max(u.max, ic->range_max);
    }
    set_scale_from_ranges(*c, {u}, rule);
  }
  // Passives copy their master's scale so the plan file is self-describing.
  for (auto& [name, c] : plan.values) {
    if (c.state != QuantState::Passive || c.master.empty()) continue;
    if (const QuantConfig* m = plan.effective(name)) {
      c.scales = m->scales;
      c.zero_points = m->zero_points;
      c.range_min = m->range_min;
      c.range_max = m->range_max;
    }
  }
  set_bias_scales(plan, g);
  report.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return report;
}

}  // namespace edgequant::quant
