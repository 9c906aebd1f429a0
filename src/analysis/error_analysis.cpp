// Error analysis implementation.
#include "analysis/error_analysis.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <iomanip>
#include <set>
#include <sstream>
#include <unordered_map>

#include "core/progress.h"
#include "exec/kernel.h"
#include "ir/op_traits.h"

namespace edgequant::analysis {

using Clock = std::chrono::steady_clock;

// One pass over the float data with double sums per thread: no double copies of the tensor
// (five temporaries of twice its size each call, whose fresh pages the kernel had to zero).
void Moments::add(const at::Tensor& x_in) {
  if (x_in.numel() == 0) return;
  at::Tensor x = exec::per_sample_view(x_in.to(at::kCPU).to(at::kFloat));
  const float* p = x.data_ptr<float>();
  int64_t n = x.numel();
  struct Partial {
    double s1 = 0, s2 = 0, s3 = 0, s4 = 0;
    float lo = INFINITY, hi = -INFINITY;
    bool nan = false;
  };
  std::vector<Partial> parts(static_cast<size_t>(at::get_num_threads()));
  at::parallel_for(0, n, 1 << 15, [&](int64_t begin, int64_t end) {
    Partial& P = parts[static_cast<size_t>(at::get_thread_num())];
    for (int64_t i = begin; i < end; ++i) {
      double v = p[i], v2 = v * v;
      P.s1 += v;
      P.s2 += v2;
      P.s3 += v2 * v;
      P.s4 += v2 * v2;
      P.lo = std::min(P.lo, p[i]);
      P.hi = std::max(P.hi, p[i]);
      P.nan = P.nan || std::isnan(p[i]);
    }
  });
  Partial all;
  for (const Partial& P : parts) {
    all.s1 += P.s1;
    all.s2 += P.s2;
    all.s3 += P.s3;
    all.s4 += P.s4;
    all.lo = std::min(all.lo, P.lo);
    all.hi = std::max(all.hi, P.hi);
    all.nan = all.nan || P.nan;
  }
  double lo = all.nan ? NAN : all.lo, hi = all.nan ? NAN : all.hi;  // as at::min/max: NaN wins
  min = count == 0 ? lo : std::min(min, lo);
  max = count == 0 ? hi : std::max(max, hi);
  count += static_cast<double>(n);
  sum += all.s1;
  sum2 += all.s2;
  sum3 += all.s3;
  sum4 += all.s4;
}

double Moments::mean() const { return count ? sum / count : 0; }
double Moments::std() const {
  if (!count) return 0;
  double m = mean();
  return std::sqrt(std::max(0.0, sum2 / count - m * m));
}
double Moments::skewness() const {
  double s = std(), m = mean();
  if (s <= 0) return 0;
  double m3 = sum3 / count - 3 * m * sum2 / count + 2 * m * m * m;
  return m3 / (s * s * s);
}
double Moments::kurtosis() const {
  double s = std(), m = mean();
  if (s <= 0) return 0;
  double m4 = sum4 / count - 4 * m * sum3 / count + 6 * m * m * sum2 / count - 3 * m * m * m * m;
  return m4 / (s * s * s * s);
}
nlohmann::json Moments::to_json() const {
  return {{"mean", mean()},         {"std", std()}, {"skewness", skewness()},
          {"kurtosis", kurtosis()}, {"min", min},   {"max", max}};
}

void accumulate_noise_ratio(const at::Tensor& f_in, const at::Tensor& q_in, double& acc, int64_t& count) {
  // Both in the same memory layout, viewed per sample in memory order (no channels_last copies).
  at::Tensor f = f_in.to(at::kFloat), q = q_in.to(at::kFloat);
  if (f.strides() != q.strides()) q = q.contiguous(f.suggest_memory_format());
  at::Tensor fr = exec::per_sample_view(f), qr = exec::per_sample_view(q);
  at::Tensor noise = (qr - fr).pow(2).sum(1).to(at::kDouble), signal = fr.pow(2).sum(1).to(at::kDouble);
  at::Tensor valid = signal > 0;
  acc += (noise / signal.clamp_min(1e-30)).masked_select(valid).sum().item<double>();
  count += valid.sum().item<int64_t>();
}

std::vector<UnitReport> analysis_units(const Graph& g, const QuantPlan& plan) {
  std::vector<UnitReport> units;
  for (const auto& op_ptr : g.ops()) {
    const Op* op = op_ptr.get();
    const Value* out = op->outputs.empty() ? nullptr : op->outputs[0];
    const QuantConfig* oc = out ? plan.find(out->name) : nullptr;
    bool has_weight = is_compute_op(op->type) && op->input(1) && plan.find(op->input(1)->name);
    bool owns_output = oc && oc->state == QuantState::Quantized;
    if (oc && oc->state == QuantState::Passive) continue;
    if (!has_weight && !owns_output && !(oc && oc->state == QuantState::Fused)) continue;
    // A fused activation is measured as part of its producer's unit.
    if (owns_output && op->input(0) && plan.find(op->input(0)->name) &&
        plan.find(op->input(0)->name)->state == QuantState::Fused)
      continue;
    UnitReport u;
    u.op = op->name;
    u.type = op->type;
    u.ops = {op};
    u.value = out ? out->name : "";
    if (oc && oc->state == QuantState::Fused) {
      const Op* act = fusable_activation(g, *op);
      u.ops.push_back(act);
      u.type += "+" + act->type;
      u.value = act->outputs[0]->name;
      oc = plan.find(u.value);
    }
    if (oc) {
      u.bits = oc->bits;
      if (oc->has_scale()) {
        u.hist_min = oc->range_min;
        u.hist_max = oc->range_max;
      }
    }
    units.push_back(u);
  }
  return units;
}

AnalysisReport analyse(const Graph& g, exec::Executor& ex, const quant::QuantSimulator& sim, const QuantPlan& plan,
                       const std::vector<Batch>& batches, bool graphwise, bool layerwise,
                       const exec::HookList* float_hooks) {
  at::NoGradGuard no_grad;
  AnalysisReport report;
  report.units = analysis_units(g, plan);
  std::unordered_map<const Value*, size_t> unit_of_value;
  for (size_t i = 0; i < report.units.size(); ++i)
    if (const Value* v = g.find_value(report.units[i].value)) unit_of_value[v] = i;
  for (const auto& b : batches) report.samples += b.empty() ? 0 : b[0].size(0);
  for (auto& u : report.units) u.histogram.assign(32, 0.0);

  std::vector<const Op*> order;
  for (const auto& op : g.ops()) order.push_back(op.get());

  // Ops downstream of each unit (in graph order): all a unit's quantization can change.
  std::vector<std::vector<const Op*>> downstream(report.units.size());
  std::vector<std::vector<const Value*>> cached_inputs_of_activations(report.units.size());
  if (layerwise) {
    std::unordered_map<const Op*, size_t> position;
    for (size_t i = 0; i < order.size(); ++i) position[order[i]] = i;
    for (size_t u = 0; u < report.units.size(); ++u) {
      std::set<size_t> reach;
      std::vector<const Op*> stack(report.units[u].ops.begin(), report.units[u].ops.end());
      while (!stack.empty()) {
        const Op* op = stack.back();
        stack.pop_back();
        if (!reach.insert(position[op]).second) continue;
        for (const Value* out : op->outputs)
          if (out)
            for (const Op* c : out->consumers) stack.push_back(c);
      }
      for (size_t p : reach) downstream[u].push_back(order[p]);
      for (const Op* op : downstream[u])
        if ((op->is(OpType::Relu) || op->is(OpType::Clip)) && op->input(0) &&
            (!op->input(0)->producer || !reach.count(position[op->input(0)->producer])))
          cached_inputs_of_activations[u].push_back(op->input(0));
    }
  }
  std::vector<double> g_acc(report.units.size(), 0.0), l_acc(report.units.size(), 0.0);
  std::vector<int64_t> g_cnt(report.units.size(), 0), l_cnt(report.units.size(), 0);
  double out_acc = 0;
  int64_t out_cnt = 0;
  double float_s = 0;
  Progress progress("error analysis",
                    static_cast<int64_t>(batches.size() * (1 + (layerwise ? report.units.size() : 0))));
  for (const auto& b : batches) {
    // The one float pass of this batch: every activation, kept for both analyses.
    auto tf = Clock::now();
    exec::ValueTensors cache;
    for (size_t i = 0; i < g.inputs.size() && i < b.size(); ++i) cache[g.inputs[i]] = b[i];
    // No in-place writes: every cached activation stays the op's own output.
    exec::HookList reference = float_hooks ? *float_hooks : exec::HookList{};
    exec::ExecHooks keep;
    reference.add(keep);
    ex.run_ops(order, cache, &reference);
    std::vector<at::Tensor> yf;
    for (const Value* o : g.outputs) yf.push_back(cache.at(o));
    float_s += std::chrono::duration<double>(Clock::now() - tf).count();
    if (graphwise) {
      auto start = Clock::now();
      exec::ExecHooks compare;
      compare.allow_inplace = true;  // statistics are taken at once; nothing keeps a reference
      compare.before_op = [&](const Op& op, std::vector<at::Tensor>& in) { sim.before_op(op, in, nullptr); };
      compare.after_op = [&](const Op& op, std::vector<at::Tensor>& outs) {
        sim.after_op(op, outs, nullptr);
        for (size_t i = 0; i < op.outputs.size() && i < outs.size(); ++i) {
          auto it = unit_of_value.find(op.outputs[i]);
          if (it == unit_of_value.end()) continue;
          UnitReport& u = report.units[it->second];
          const at::Tensor& f = cache.at(op.outputs[i]);
          accumulate_noise_ratio(f, outs[i], g_acc[it->second], g_cnt[it->second]);
          u.float_stats.add(f);
          u.quant_stats.add(outs[i]);
          u.noise_stats.add(outs[i].contiguous(f.suggest_memory_format()) - f);
          if (u.hist_max > u.hist_min) {
            at::Tensor h = at::histc(exec::per_sample_view(f).to(at::kFloat), 32, u.hist_min, u.hist_max);
            for (int k = 0; k < 32; ++k) u.histogram[k] += h[k].item<double>();
          }
        }
      };
      std::vector<at::Tensor> yq = ex.run(b, &compare);
      if (report.outputs.empty())
        for (const Value* o : g.outputs) report.outputs.emplace_back(o->name);
      for (size_t i = 0; i < yf.size(); ++i)
        if (at::isFloatingType(yf[i].scalar_type())) {
          accumulate_noise_ratio(yf[i], yq[i], out_acc, out_cnt);
          report.outputs[i].add(yf[i], yq[i]);
        }
      report.graphwise_seconds += std::chrono::duration<double>(Clock::now() - start).count();
    }
    progress.step();
    if (layerwise) {
      auto start = Clock::now();
      for (size_t u = 0; u < report.units.size(); ++u) {
        std::set<const Op*> only(report.units[u].ops.begin(), report.units[u].ops.end());
        // Float reference everywhere (original weights), then the unit's own quantization.
        exec::HookList hooks = float_hooks ? *float_hooks : exec::HookList{};
        exec::ExecHooks unit = sim.hooks(&only);
        unit.allow_inplace = true;
        hooks.add(unit);
        exec::ValueTensors env = cache;  // tensor handles only; the cache itself is untouched
        // In-place activations may only overwrite tensors this run made, never cached ones.
        for (const Value* v : cached_inputs_of_activations[u]) env[v] = env.at(v).clone();
        ex.run_ops(downstream[u], env, &hooks);
        for (size_t i = 0; i < g.outputs.size(); ++i)
          if (at::isFloatingType(yf[i].scalar_type()))
            accumulate_noise_ratio(yf[i], env.at(g.outputs[i]), l_acc[u], l_cnt[u]);
        progress.step();
      }
      report.layerwise_seconds += std::chrono::duration<double>(Clock::now() - start).count();
    }
  }
  progress.finish();
  report.float_seconds = float_s;
  if (graphwise) {
    for (size_t i = 0; i < g_acc.size(); ++i) report.units[i].graphwise = g_cnt[i] ? g_acc[i] / g_cnt[i] : 0.0;
    report.output_noise_ratio = out_cnt ? out_acc / out_cnt : 0.0;
  }
  if (layerwise)
    for (size_t i = 0; i < l_acc.size(); ++i) report.units[i].layerwise = l_cnt[i] ? l_acc[i] / l_cnt[i] : 0.0;
  return report;
}

nlohmann::json AnalysisReport::to_json() const {
  nlohmann::json j;
  j["samples"] = samples;
  j["samples_used"] = samples_description;
  j["error_measure"] = "noise:signal power ratio, mean over samples of sum((q-f)^2)/sum(f^2); lower is better";
  j["output_noise_ratio"] = output_noise_ratio;
  j["outputs"] = nlohmann::json::array();
  for (const auto& o : outputs) j["outputs"].push_back(o.to_json());
  j["seconds"] = {{"graphwise", graphwise_seconds}, {"layerwise", layerwise_seconds}};
  for (const auto& u : units) {
    nlohmann::json e = {{"op", u.op}, {"type", u.type}, {"value", u.value}, {"bits", u.bits}};
    if (u.graphwise >= 0) e["graphwise"] = u.graphwise;
    if (u.layerwise >= 0) e["layerwise"] = u.layerwise;
    if (u.float_stats.count > 0) {
      e["float"] = u.float_stats.to_json();
      e["quantized"] = u.quant_stats.to_json();
      e["noise"] = u.noise_stats.to_json();
      e["histogram"] = {{"min", u.hist_min}, {"max", u.hist_max}, {"counts", u.histogram}};
    }
    j["units"].push_back(e);
  }
  return j;
}

std::string AnalysisReport::table(size_t max_rows) const {
  std::vector<const UnitReport*> sorted;
  for (const auto& u : units) sorted.push_back(&u);
  std::sort(sorted.begin(), sorted.end(), [](const UnitReport* a, const UnitReport* b) {
    double ka = a->graphwise >= 0 ? a->graphwise : a->layerwise, kb = b->graphwise >= 0 ? b->graphwise : b->layerwise;
    return ka > kb;
  });
  std::ostringstream s;
  s << "rank  " << std::left << std::setw(34) << "op" << std::setw(18) << "type" << std::setw(6) << "bits" << std::right
    << std::setw(12) << "graphwise" << std::setw(12) << "layerwise" << std::setw(10) << "kurtosis"
    << "\n";
  for (size_t i = 0; i < sorted.size() && i < max_rows; ++i) {
    const UnitReport& u = *sorted[i];
    std::string name = u.op.size() > 33 ? u.op.substr(0, 30) + "..." : u.op;
    s << std::left << std::setw(6) << i + 1 << std::setw(34) << name << std::setw(18) << u.type << std::setw(6)
      << u.bits << std::right << std::fixed << std::setprecision(5) << std::setw(12) << u.graphwise << std::setw(12)
      << u.layerwise << std::setprecision(2) << std::setw(10) << u.float_stats.kurtosis() << "\n";
  }
  if (sorted.size() > max_rows) s << "... " << sorted.size() - max_rows << " more in analysis.json\n";
  return s.str();
}

}  // namespace edgequant::analysis
