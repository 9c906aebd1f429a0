// calib_algorithm: auto (see auto_calib.h).
#include "quant/auto_calib.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <set>
#include <tuple>
#include <utility>
#include <vector>

#include "edgequant/error.h"
#include "quant/fake_quant.h"

namespace edgequant::quant {

namespace {

constexpr CalibAlgorithm kCalibrators[] = {CalibAlgorithm::MinMax, CalibAlgorithm::Percentile, CalibAlgorithm::KL,
                                           CalibAlgorithm::MSE};

bool same_grid(const QuantConfig& a, const QuantConfig& b) {
  return a.scales == b.scales && a.zero_points == b.zero_points;
}

// Two sums over i < n of `term(i, sum0, sum1)`, accumulated in double per block of 64 Ki
// values and the blocks added in order: one pass, no temporaries, and the same result whatever
// the thread count. (The per-tensor scores compare candidates on sums over millions of values;
// building double copies of each tensor for them took three quarters of the choice's time.)
template <class Term>
std::pair<double, double> block_sums(int64_t n, const Term& term) {
  constexpr int64_t kBlock = int64_t{1} << 16;
  const int64_t blocks = (n + kBlock - 1) / kBlock;
  std::vector<std::pair<double, double>> partial(static_cast<size_t>(blocks));
  at::parallel_for(0, blocks, 1, [&](int64_t begin, int64_t end) {
    for (int64_t b = begin; b < end; ++b) {
      double s0 = 0, s1 = 0;
      for (int64_t i = b * kBlock, e = std::min(n, i + kBlock); i < e; ++i) term(i, s0, s1);
      partial[static_cast<size_t>(b)] = {s0, s1};
    }
  });
  std::pair<double, double> total{0, 0};
  for (const auto& [s0, s1] : partial) {
    total.first += s0;
    total.second += s1;
  }
  return total;
}

// ||a - b||^2 / ||b||^2 over float outputs (0 / 0 -> 0: an all-zero output no choice can change).
double noise_to_signal(const at::Tensor& quantized, const at::Tensor& reference) {
  if (!quantized.defined() || !reference.defined() || !reference.is_floating_point()) return 0;
  double noise = 0, signal = 0;
  if (quantized.scalar_type() == at::kFloat && reference.scalar_type() == at::kFloat &&
      quantized.sizes() == reference.sizes()) {
    at::Tensor q = quantized.contiguous(), r = reference.contiguous();
    const float *a = q.data_ptr<float>(), *b = r.data_ptr<float>();
    std::tie(noise, signal) = block_sums(q.numel(), [&](int64_t i, double& n, double& s) {
      double d = double(a[i]) - double(b[i]);
      n += d * d;
      s += double(b[i]) * double(b[i]);
    });
  } else {
    noise = (quantized.to(at::kDouble) - reference.to(at::kDouble)).pow(2).sum().item<double>();
    signal = reference.to(at::kDouble).pow(2).sum().item<double>();
  }
  if (signal <= 0) return noise > 0 ? noise : 0;
  return noise / signal;
}

// The clip a config quantizes to: [(qmin - z) s, (qmax - z) s].
std::pair<double, double> clip_of(const QuantConfig& c) {
  double sc = c.scales.at(0), z = static_cast<double>(c.zero_points.at(0));
  return {(c.quant_min - z) * sc, (c.quant_max - z) * sc};
}

// Expected squared quantization error per value under the usual model: uniform rounding noise
// s^2/12 inside the clip, the distance to the clip beyond it. Over the whole calibration set
// (the histogram, bin centres) or over one tensor.
double modeled_error(const HistogramObserver& h, const QuantConfig& c) {
  auto [lo, hi] = clip_of(c);
  double s = c.scales.at(0), rounding = s * s / 12, w = h.bin_width(), err = 0, n = 0;
  for (int i = 0; i < HistogramObserver::kBins; ++i) {
    double x = (i + 0.5) * w, p = h.positive()[size_t(i)], q = h.negative()[size_t(i)];
    err += p * (x > hi ? (x - hi) * (x - hi) : rounding) + q * (-x < lo ? (lo + x) * (lo + x) : rounding);
    n += p + q;
  }
  return n > 0 ? err / n : 0;
}
double modeled_error(const at::Tensor& x, const QuantConfig& c) {
  auto [lo, hi] = clip_of(c);
  double s = c.scales.at(0);
  at::Tensor xf = x.to(at::kFloat).contiguous();
  const float* p = xf.data_ptr<float>();
  auto [outside, inside] = block_sums(xf.numel(), [&](int64_t i, double& out, double& in) {
    double v = p[i], d = v - std::min(std::max(v, lo), hi);
    out += d * d;
    in += d == 0;
  });
  return (outside + inside * s * s / 12) / std::max<double>(1, double(x.numel()));
}

// The per-tensor scores run every candidate through its consumers: on at most
// kScoringSamples of the selection (the whole-plan check that follows uses all of it).
constexpr int64_t kScoringSamples = 16;
std::vector<std::vector<at::Tensor>> scoring_batches(const Observations& obs) {
  std::vector<std::vector<at::Tensor>> out;
  int64_t left = kScoringSamples;
  for (const auto& batch : obs.selection) {
    if (left <= 0 || batch.empty() || batch[0].dim() == 0) break;
    int64_t n = batch[0].size(0), take = obs.selection_whole ? n : std::min(n, left);
    std::vector<at::Tensor> b;
    for (const at::Tensor& x : batch) b.push_back(x.dim() > 0 && x.size(0) == n ? x.narrow(0, 0, take) : x);
    out.push_back(std::move(b));
    left -= take;
  }
  return out;
}

}  // namespace

AutoCandidates auto_candidates(const QuantConfig& c, const HistogramObserver& obs, const Target& t, double percentile) {
  AutoCandidates result;
  std::vector<AutoChoice>& out = result.list;
  auto add = [&](const QuantConfig& cfg, CalibAlgorithm from, int step) {
    for (size_t k = 0; k < out.size(); ++k)
      if (same_grid(out[k].config, cfg)) return static_cast<int>(k);
    AutoChoice a;
    a.config = cfg;
    a.from = from;
    a.exponent_step = step;
    out.push_back(a);
    return static_cast<int>(out.size() - 1);
  };
  // The calibrators' own clips first, so a tie keeps the calibrator (not a neighbour).
  std::vector<QuantConfig> own;
  for (CalibAlgorithm a : kCalibrators) {
    QuantConfig cfg = c;
    set_scale_from_ranges(cfg, {obs.finalize(c, a, percentile)}, t.pow2_rule_for(a));
    cfg.source = range_source_of(a);
    result.of_calibrator[static_cast<int>(a)] = add(cfg, a, 0);
    own.push_back(cfg);
  }
  if (c.scale_kind != ScaleKind::PowerOfTwo) return result;
  for (size_t k = 0; k < own.size(); ++k)
    for (int step : {-1, 1}) {
      QuantConfig cfg = own[k];
      for (double& s : cfg.scales) s = std::ldexp(s, step);
      if (!cfg.symmetric) continue;  // an asymmetric zero point would move with the scale
      add(cfg, kCalibrators[k], step);
    }
  return result;
}

std::unordered_map<std::string, AutoChoice> choose_clips(const Graph& g, exec::Executor& ex, const QuantPlan& plan,
                                                         const Target& t, const Setting& s, const Observations& obs) {
  if (obs.selection.empty())
    fail(ErrorCode::Internal, "calib_algorithm auto needs the selection samples of the calibration pass");
  // Candidates and scores per observed tensor.
  std::unordered_map<const Value*, AutoCandidates> candidates;
  std::unordered_map<const Value*, std::vector<double>> scores, selection_model;
  for (const auto& v : g.values()) {
    if (!wants_observer(*v, plan)) continue;
    auto it = obs.by_value.find(v->name);
    if (it == obs.by_value.end())
      fail(ErrorCode::Internal, "no observation of '" + v->name + "' (the plan changed after calibration's data pass)");
    candidates[v.get()] = auto_candidates(plan.values.at(v->name), it->second, t, s.percentile);
    scores[v.get()] = std::vector<double>(candidates[v.get()].list.size(), 0.0);
    selection_model[v.get()] = scores[v.get()];
  }
  // The selection samples may not reach the extremes the whole calibration set holds (a clip
  // fitted to the average batch maximum clips nothing on one batch): each candidate's measured
  // error is scaled by modeled error over every calibration sample / modeled error over the
  // selection samples.
  auto model_selection = [&](const Value* v, const at::Tensor& x) {
    auto& cands = candidates.at(v).list;
    for (size_t k = 0; k < cands.size(); ++k) selection_model.at(v)[k] += modeled_error(x, cands[k].config);
  };
  auto score_tensor = [&](const Value* v, const at::Tensor& x, const std::function<double(const at::Tensor&)>& error) {
    auto& cands = candidates.at(v).list;
    auto& sc = scores.at(v);
    for (size_t k = 0; k < cands.size(); ++k) sc[k] += error(fake_quantize(x, cands[k].config));
  };

  // Remaining reads per value, to drop tensors once every consumer has run.
  std::unordered_map<const Value*, int> reads;
  for (const auto& op : g.ops())
    for (const Value* in : std::set<const Value*>(op->inputs.begin(), op->inputs.end()))
      if (in) ++reads[in];
  exec::ExecHooks no_inplace;  // candidates re-read the consumer's float inputs after it ran
  at::NoGradGuard no_grad;
  const std::vector<std::vector<at::Tensor>> scoring = scoring_batches(obs);
  for (const std::vector<at::Tensor>& inputs : scoring) {
    exec::ValueTensors env;
    for (size_t i = 0; i < g.inputs.size() && i < inputs.size(); ++i) {
      env[g.inputs[i]] = inputs[i];
      if (candidates.count(g.inputs[i])) model_selection(g.inputs[i], inputs[i]);
    }
    auto left = reads;
    for (const auto& op : g.ops()) {
      ex.run_ops({op.get()}, env, &no_inplace);
      for (const Value* o : op->outputs)
        if (o && candidates.count(o) && env.count(o)) model_selection(o, env.at(o));
      std::set<const Value*> ins(op->inputs.begin(), op->inputs.end());
      for (const Value* v : ins) {
        if (!v || !candidates.count(v)) continue;
        exec::ValueTensors local;
        for (const Value* u : ins)
          if (u && env.count(u)) local[u] = env.at(u);
        score_tensor(v, env.at(v), [&](const at::Tensor& xq) {
          local[v] = xq;
          ex.run_ops({op.get()}, local, &no_inplace);
          double e = 0;
          for (const Value* o : op->outputs)
            if (o && local.count(o) && env.count(o)) e += noise_to_signal(local.at(o), env.at(o));
          return e;
        });
      }
      for (const Value* v : ins)
        if (v && --left[v] == 0 && std::find(g.outputs.begin(), g.outputs.end(), v) == g.outputs.end()) env.erase(v);
    }
    // Graph outputs: their own error (nothing consumes them inside the graph).
    for (const Value* o : g.outputs)
      if (o && candidates.count(o) && env.count(o))
        score_tensor(o, env.at(o), [&](const at::Tensor& xq) { return noise_to_signal(xq, env.at(o)); });
  }

  std::unordered_map<std::string, AutoChoice> out;
  for (auto& [v, cand] : candidates) {
    const auto& cands = cand.list;
    std::vector<double> sc = scores.at(v);
    const HistogramObserver& h = obs.by_value.at(v->name);
    for (size_t k = 0; k < cands.size(); ++k) {
      double sel = selection_model.at(v)[k] / double(scoring.size());
      if (sel > 0) sc[k] *= modeled_error(h, cands[k].config) / sel;
    }
    size_t best = 0;
    for (size_t k = 1; k < cands.size(); ++k)
      if (sc[k] < sc[best]) best = k;
    AutoChoice choice = cands[best];
    choice.error = sc[best];
    for (int a = 0; a < 4; ++a) choice.calibrator_error[a] = sc[cand.of_calibrator[a]];
    out.emplace(v->name, choice);
  }
  return out;
}

}  // namespace edgequant::quant
