// Output metrics accumulation (see output_metrics.h).
#include "analysis/output_metrics.h"

#include <ATen/ATen.h>

#include <cmath>
#include <limits>
#include <sstream>

namespace edgequant::analysis {

void OutputMetricsAccumulator::add(const at::Tensor& f_in, const at::Tensor& q_in) {
  at::Tensor f = f_in.to(at::kDouble).contiguous(), q = q_in.to(at::kDouble).contiguous().reshape(f.sizes());
  at::Tensor d = q - f;
  signal2_ += (f * f).sum().item<double>();
  noise2_ += (d * d).sum().item<double>();
  dot_ += (f * q).sum().item<double>();
  quant2_ += (q * q).sum().item<double>();
  if (d.numel()) max_abs_diff_ = std::max(max_abs_diff_, d.abs().max().item<double>());
  int64_t n = f.dim() > 0 ? f.size(0) : 1;
  samples_ += n;
  classifier_ = classifier_ && f.dim() == 2 && f.size(1) >= 2;
  if (classifier_) agree_ += f.argmax(1).eq(q.argmax(1)).sum().item<int64_t>();
}

OutputMetrics OutputMetricsAccumulator::result() const {
  OutputMetrics m;
  m.name = name_;
  m.samples = samples_;
  m.sqnr_db = noise2_ > 0 ? 10.0 * std::log10(signal2_ / noise2_) : std::numeric_limits<double>::infinity();
  m.cosine = signal2_ > 0 && quant2_ > 0 ? dot_ / std::sqrt(signal2_ * quant2_) : (signal2_ == quant2_ ? 1.0 : 0.0);
  m.max_abs_diff = max_abs_diff_;
  m.top1_agreement = classifier_ && samples_ > 0 ? 100.0 * double(agree_) / double(samples_) : -1;
  return m;
}

nlohmann::json OutputMetricsAccumulator::to_json() const {
  OutputMetrics m = result();
  nlohmann::json j = {{"name", m.name}, {"samples", m.samples}, {"cosine", m.cosine}, {"max_abs_diff", m.max_abs_diff}};
  j["sqnr_db"] = std::isinf(m.sqnr_db) ? nlohmann::json("inf") : nlohmann::json(m.sqnr_db);
  if (m.top1_agreement >= 0) j["top1_agreement_percent"] = m.top1_agreement;
  return j;
}

}  // namespace edgequant::analysis

namespace edgequant {

std::string OutputMetrics::line() const {
  std::ostringstream s;
  s.setf(std::ios::fixed);
  s.precision(2);
  s << "output '" << name << "': SQNR ";
  if (std::isinf(sqnr_db))
    s << "inf";
  else
    s << sqnr_db;
  s << " dB, cosine ";
  s.precision(5);
  s << cosine << ", max |diff| ";
  s.unsetf(std::ios::fixed);
  s.precision(4);
  s << max_abs_diff;
  if (top1_agreement >= 0) {
    s.setf(std::ios::fixed);
    s.precision(2);
    s << ", top-1 agreement " << top1_agreement << "%";
  }
  s << " (" << samples << " samples)";
  return s.str();
}

}  // namespace edgequant
