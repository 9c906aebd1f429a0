// Calibration (see calibrate.h).
#include "quant/calibrate.h"

#include <ATen/ATen.h>

#include <chrono>
#include <limits>
#include <map>
#include <optional>

#include "core/progress.h"
#include "edgequant/error.h"
#include "ir/op_traits.h"
#include "quant/auto_calib.h"
#include "quant/simulator.h"

namespace edgequant::quant {

namespace {
double since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}
// The selection samples: the first `per_batch` samples of every batch, so they spread over the
// calibration set (scoring clips on one batch favours clips fitted to an average batch).
// Tensors whose leading dim is not the batch's sample count are shared inputs, kept whole.
// `whole`: a model with a fixed batch takes whole batches.
void take_selection(const std::vector<at::Tensor>& inputs, int64_t per_batch, bool whole,
                    std::vector<std::vector<at::Tensor>>& pieces) {
  if (inputs.empty() || inputs[0].dim() == 0) return;
  int64_t n = inputs[0].size(0), take = whole ? n : std::min(n, per_batch);
  std::vector<at::Tensor> piece;
  for (const at::Tensor& x : inputs) piece.push_back(x.dim() > 0 && x.size(0) == n ? x.narrow(0, 0, take).clone() : x);
  pieces.push_back(std::move(piece));
}

// Pieces joined into batches of up to 8 samples (and never more than a calibration batch, the
// most the model takes in one run): fewer runs than one per piece, and the simulated passes that
// score candidate plans stay cache-sized (32 samples of 224x224 made 150 MB intermediates whose
// fresh pages the kernel zeroed).
std::vector<std::vector<at::Tensor>> merge_selection(const std::vector<std::vector<at::Tensor>>& pieces,
                                                     int64_t max_run) {
  std::vector<std::vector<at::Tensor>> out;
  size_t i = 0;
  while (i < pieces.size()) {
    int64_t n0 = pieces[i][0].size(0), n = 0;
    std::vector<std::vector<at::Tensor>> group;
    while (i < pieces.size() && n < 8 && (group.empty() || n + pieces[i][0].size(0) <= max_run)) {
      n += pieces[i][0].size(0);
      group.push_back(pieces[i++]);
    }
    std::vector<at::Tensor> batch;
    for (size_t k = 0; k < group[0].size(); ++k) {
      bool batched = group[0][k].dim() > 0 && group[0][k].size(0) == n0;
      std::vector<at::Tensor> parts;
      for (const auto& p : group) parts.push_back(p[k]);
      batch.push_back(batched && group.size() > 1 ? at::cat(parts, 0) : group[0][k]);
    }
    out.push_back(std::move(batch));
  }
  return out;
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

bool observed_in_calibration(const Value& v, const QuantPlan& plan) {
  if (wants_observer(v, plan)) return true;
  const QuantConfig* c = plan.effective(v.name);
  if (v.is_constant() || !c || c->state != QuantState::Float) return false;  // (passives: their master is observed)
  for (const auto& r : plan.requants)
    if (r.grid && r.target == v.name && !r.grid->custom_scale) return true;
  return false;
}

Observations observe_activations(const Graph& g, exec::Executor& ex, const QuantPlan& plan, BatchStream& batches,
                                 const exec::HookList* extra, double batch_percentile) {
  auto start = std::chrono::steady_clock::now();
  Observations obs;
  std::unordered_map<const Value*, HistogramObserver*> observer_of;
  for (const auto& v : g.values())
    if (observed_in_calibration(*v, plan)) {
      observer_of[v.get()] = &obs.by_value[v->name];
      obs.by_value[v->name].track_batch_percentile(batch_percentile);
    }

  exec::HookList hooks;
  if (extra) hooks = *extra;
  exec::ExecHooks observe;
  observe.allow_inplace = true;  // observers reduce each tensor at once
  // Read-only: the executor may fuse pairs whose inner value is not observed and run a batch in
  // cache-sized chunks; each chunk is accumulated, the batch closed after the run.
  observe.watches = [&](const Value& v) { return observer_of.count(&v) > 0; };
  observe.after_op = [&](const Op& op, std::vector<at::Tensor>& outs) {
    for (size_t i = 0; i < op.outputs.size() && i < outs.size(); ++i) {
      auto it = observer_of.find(op.outputs[i]);
      if (it == observer_of.end()) continue;
      auto t = std::chrono::steady_clock::now();
      it->second->accumulate(outs[i]);
      obs.observer_seconds += since(t);
    }
  };
  observe.after_run = [&] {
    auto t = std::chrono::steady_clock::now();
    for (auto& [value, observer] : observer_of) observer->end_batch();
    obs.observer_seconds += since(t);
  };
  hooks.add(observe);
  Progress progress("calibrating", batches.batches());
  const int64_t nb = std::max<int64_t>(1, batches.batches());
  int64_t per_batch = std::max<int64_t>(1, (Observations::kSelectionSamples + nb - 1) / nb);
  // More batches than selection samples (a model that runs one sample at a time takes
  // calib-steps x batch-size runs): every `every`-th batch gives its piece, so the selection
  // stays about kSelectionSamples instead of one piece per run.
  const int64_t piece = batches.exact() ? batches.batch_size() : 1;
  const int64_t every = std::max<int64_t>(1, nb * piece / Observations::kSelectionSamples);
  std::vector<std::vector<at::Tensor>> pieces;
  std::vector<at::Tensor> inputs;
  at::NoGradGuard no_grad;
  while (batches.next(inputs)) {
    for (size_t i = 0; i < g.inputs.size() && i < inputs.size(); ++i) {
      auto it = observer_of.find(g.inputs[i]);
      if (it != observer_of.end()) it->second->observe(inputs[i]);
    }
    if (obs.batches % every == 0) take_selection(inputs, per_batch, batches.exact(), pieces);
    ex.run(inputs, &hooks);
    ++obs.batches;
    obs.samples += inputs.empty() ? 0 : inputs[0].size(0);
    progress.step();
  }
  progress.finish();
  if (obs.samples == 0) fail(ErrorCode::InvalidInput, "the calibration set is empty");
  obs.selection = merge_selection(pieces, batches.batch_size());
  obs.selection_whole = batches.exact();
  obs.seconds = since(start);
  return obs;
}

namespace {

// The target's input_grid_ops: the output on its input's grid, pinned (custom_scale) so that
// training moves neither apart from the other's calibration. In graph order, so chains follow.
void tie_input_grids(const Graph& g, const Target& t, QuantPlan& plan) {
  if (t.input_grid_ops.empty()) return;
  for (const auto& op : g.ops()) {
    if (!t.input_grid_ops.count(op->type) || op->outputs.empty() || !op->outputs[0]) continue;
    QuantConfig* oc = plan.find(op->outputs[0]->name);
    const QuantConfig* ic = plan.input_config(*op, 0);
    if (!oc || oc->state != QuantState::Quantized || !ic || !ic->has_scale() || ic->bits != oc->bits ||
        ic->scales.size() != 1)
      continue;
    oc->scales = ic->scales;
    oc->zero_points = ic->zero_points;
    oc->range_min = ic->range_min;
    oc->range_max = ic->range_max;
    oc->custom_scale = true;
  }
}

// Scales of the observed tensors (each tensor's `chosen` config, else `algo`'s range), then the
// tensors whose scales follow from them: Align-to-Large outputs, mixed-precision boundary grids,
// passives and biases.
void apply_observed(const Graph& g, QuantPlan& plan, const Target& t, const Setting& s, const Observations& obs,
                    CalibAlgorithm algo, const std::unordered_map<std::string, AutoChoice>* chosen) {
  for (const auto& v : g.values()) {
    if (!wants_observer(*v, plan)) continue;
    QuantConfig& c = plan.values.at(v->name);
    if (chosen) {
      c = chosen->at(v->name).config;
      continue;
    }
    auto it = obs.by_value.find(v->name);
    if (it == obs.by_value.end())
      fail(ErrorCode::Internal, "no observation of '" + v->name + "' (the plan changed after calibration's data pass)");
    set_scale_from_ranges(c, {it->second.finalize(c, algo, s.percentile)}, t.pow2_rule_for(algo));
    c.source = range_source_of(algo);
  }
  Pow2Rule rule = t.pow2_rule_for(algo);
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
  // Mixed-precision boundary grids: the source tensor's observation at the consumer's width,
  // by the calibrator that set the source.
  for (auto& r : plan.requants) {
    if (!r.grid) continue;
    const QuantConfig* src = plan.effective(r.target);
    const Value* v = g.find_value(r.target);
    const Value* owner = v;
    while (owner && plan.find(owner->name) && plan.find(owner->name)->state == QuantState::Passive && owner->producer &&
           owner->producer->input(0))
      owner = owner->producer->input(0);
    auto it = owner ? obs.by_value.find(owner->name) : obs.by_value.end();
    CalibAlgorithm grid_algo = algo;
    if (owner && chosen && chosen->count(owner->name)) grid_algo = chosen->at(owner->name).from;
    if (it != obs.by_value.end())
      set_scale_from_ranges(*r.grid, {it->second.finalize(*r.grid, grid_algo, s.percentile)},
                            t.pow2_rule_for(grid_algo));
    else if (src)
      set_scale_from_ranges(*r.grid, {{src->range_min, src->range_max}}, rule);
    r.grid->source = range_source_of(grid_algo);
  }
  tie_input_grids(g, t, plan);
  // Passives copy their master's scale so the plan file is self-describing; biases s_in * s_w.
  refresh_derived_scales(plan, g);
}

// Sum of squared output error / sum of squared float output of `plan` on the selection samples
// (`reference`: the float outputs per selection batch, computed once for every candidate plan).
double output_noise_ratio(const Graph& g, exec::Executor& ex, const QuantPlan& plan, const Observations& obs,
                          const std::vector<std::vector<at::Tensor>>& reference) {
  QuantSimulator sim(g, plan, ex);
  double noise = 0, signal = 0;
  at::NoGradGuard no_grad;
  for (size_t b = 0; b < obs.selection.size(); ++b) {
    const std::vector<at::Tensor>& yf = reference[b];
    std::vector<at::Tensor> yq = sim.run(obs.selection[b]);
    for (size_t i = 0; i < yf.size() && i < yq.size(); ++i) {
      if (!at::isFloatingType(yf[i].scalar_type())) continue;
      noise += (yq[i].to(at::kDouble) - yf[i].to(at::kDouble)).pow(2).sum().item<double>();
      signal += yf[i].to(at::kDouble).pow(2).sum().item<double>();
    }
  }
  return signal > 0 ? noise / signal : noise;
}

}  // namespace

std::string apply_calibration(const Graph& g, exec::Executor& ex, QuantPlan& plan, const Target& t, const Setting& s,
                              const Observations& obs) {
  calibrate_constants(g, ex, plan, t, s);
  CalibAlgorithm algo = calib_algorithm_for(s, t);
  if (algo != CalibAlgorithm::Auto) {
    apply_observed(g, plan, t, s, obs, algo, nullptr);
    return calib_algorithm_name(algo);
  }
  // Auto: the per-tensor choice and every single calibrator, each as a whole plan, scored by the
  // graph outputs' noise:signal on the selection samples; the per-tensor choice wins ties.
  std::unordered_map<std::string, AutoChoice> chosen = choose_clips(g, ex, plan, t, s, obs);
  std::vector<std::vector<at::Tensor>> reference;
  {
    at::NoGradGuard no_grad;
    for (const auto& inputs : obs.selection) reference.push_back(ex.run(inputs));
  }
  std::optional<QuantPlan> best;
  double best_error = std::numeric_limits<double>::infinity();
  std::string best_name;
  for (int k = -1; k < 4; ++k) {
    QuantPlan candidate = plan;
    CalibAlgorithm a = k < 0 ? CalibAlgorithm::MSE : static_cast<CalibAlgorithm>(k);
    apply_observed(g, candidate, t, s, obs, a, k < 0 ? &chosen : nullptr);
    double e = output_noise_ratio(g, ex, candidate, obs, reference);
    if (e < best_error) {
      best_error = e;
      best = std::move(candidate);
      best_name = k < 0 ? "per tensor" : calib_algorithm_name(a);
    }
  }
  plan = std::move(*best);
  if (best_name != "per tensor") return "auto (" + best_name + " for every tensor)";
  std::map<std::string, int> count;
  for (const auto& [name, c] : chosen) ++count[calib_algorithm_name(c.from)];
  std::string out = "auto (per tensor:";
  for (const auto& [name, n] : count) out += " " + name + " " + std::to_string(n);
  return out + ")";
}

CalibrationReport calibrate(const Graph& g, exec::Executor& ex, QuantPlan& plan, const Target& t, const Setting& s,
                            BatchStream& batches) {
  auto start = std::chrono::steady_clock::now();
  Observations obs = observe_activations(g, ex, plan, batches, nullptr, s.percentile);
  std::string chosen = apply_calibration(g, ex, plan, t, s, obs);
  CalibrationReport r;
  r.chosen = chosen;
  r.algorithm = calib_algorithm_for(s, t);
  r.batches = obs.batches;
  r.samples = obs.samples;
  r.observed_tensors = static_cast<int64_t>(obs.by_value.size());
  r.observer_seconds = obs.observer_seconds;
  r.seconds = since(start);
  return r;
}

}  // namespace edgequant::quant
