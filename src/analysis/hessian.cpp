// Hutchinson's Gauss-Newton Hessian trace per weight tensor (see hessian.h).
#include "analysis/hessian.h"

#include <ATen/ATen.h>

#include <cmath>
#include <random>

#include "core/progress.h"
#include "edgequant/error.h"

namespace edgequant::analysis {

namespace {
// +-1 entries from a fixed generator: the same probes on every machine.
at::Tensor rademacher(const at::Tensor& like, std::mt19937_64& rng) {
  std::vector<float> v(static_cast<size_t>(like.numel()));
  for (size_t i = 0; i < v.size(); i += 64) {
    uint64_t bits = rng();
    for (size_t j = 0; j < 64 && i + j < v.size(); ++j) v[i + j] = (bits >> j) & 1 ? 1.0f : -1.0f;
  }
  return at::from_blob(v.data(), like.sizes(), at::kFloat).clone().to(like.device());
}
}  // namespace

std::vector<HessianTrace> hutchinson_traces(exec::Executor& ex, const std::vector<const Value*>& weights,
                                            const std::vector<std::vector<at::Tensor>>& batches, HessianLoss loss,
                                            const HessianOptions& o) {
  if (o.probes < 2) fail(ErrorCode::InvalidSetting, "hessian: at least 2 probes are needed (a standard error)");
  at::NoGradGuard ng;
  int64_t total = 0;
  for (const auto& b : batches) total += b.empty() ? 0 : b[0].size(0);
  if (total == 0) fail(ErrorCode::InvalidInput, "hessian: no samples");
  // The perturbed weight, swapped in before every op that reads it.
  const Value* current = nullptr;
  at::Tensor point;
  exec::ExecHooks h;
  h.before_op = [&](const Op& op, std::vector<at::Tensor>& in) {
    for (size_t i = 0; i < op.inputs.size(); ++i)
      if (op.inputs[i] == current) in[i] = point;
  };
  exec::HookList hooks(std::move(h));
  // Softmax of the unperturbed logits (cross-entropy's A = diag(p) - pp' depends on them only).
  std::vector<at::Tensor> probs;
  if (loss == HessianLoss::CrossEntropy)
    for (const auto& b : batches) {
      at::Tensor z = ex.run(b, static_cast<exec::HookList*>(nullptr))[0];
      probs.push_back(at::softmax(z.reshape({z.size(0), -1}).to(at::kDouble), 1));
    }
  std::vector<HessianTrace> out(weights.size());
  std::mt19937_64 rng(o.seed);
  Progress progress("hessian probes", static_cast<int64_t>(weights.size()) * o.probes);
  for (size_t i = 0; i < weights.size(); ++i) {
    if (!weights[i] || !weights[i]->is_constant()) fail(ErrorCode::Internal, "hessian: a weight is not a constant");
    at::Tensor w = ex.constant(weights[i]).to(at::kFloat);
    double rms = std::sqrt(w.to(at::kDouble).pow(2).mean().item<double>());
    double e = o.relative_step * (rms > 0 ? rms : 1.0);
    current = weights[i];
    std::vector<double> samples;
    for (int k = 0; k < o.probes; ++k) {
      at::Tensor v = rademacher(w, rng);
      double q = 0;
      for (size_t b = 0; b < batches.size(); ++b) {
        point = w + e * v;
        std::vector<at::Tensor> plus = ex.run(batches[b], &hooks);
        point = w - e * v;
        std::vector<at::Tensor> minus = ex.run(batches[b], &hooks);
        if (loss == HessianLoss::CrossEntropy) {
          const at::Tensor& p = probs[b];
          at::Tensor d = ((plus[0].to(at::kDouble) - minus[0].to(at::kDouble)) / (2 * e)).reshape({p.size(0), -1});
          q += ((p * d * d).sum(1) - (p * d).sum(1).pow(2)).sum().item<double>();  // d'(diag p - pp')d
        } else {
          for (size_t j = 0; j < plus.size(); ++j)
            if (at::isFloatingType(plus[j].scalar_type()))
              q += 2 * ((plus[j].to(at::kDouble) - minus[j].to(at::kDouble)) / (2 * e)).pow(2).sum().item<double>();
        }
      }
      samples.push_back(q / static_cast<double>(total));
      progress.step();
    }
    double m = 0, s2 = 0;
    for (double x : samples) m += x;
    m /= static_cast<double>(samples.size());
    for (double x : samples) s2 += (x - m) * (x - m);
    out[i].trace = m;
    out[i].std_error = std::sqrt(s2 / static_cast<double>(samples.size() - 1) / static_cast<double>(samples.size()));
    out[i].numel = w.numel();
    if (!std::isfinite(m))
      fail(ErrorCode::InvalidInput, "hessian: the trace of '" + weights[i]->name + "' is not finite");
  }
  progress.finish();
  return out;
}

}  // namespace edgequant::analysis
