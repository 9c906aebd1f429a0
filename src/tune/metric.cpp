#include "tune/metric.h"

#include <cmath>
#include <numeric>
#include <random>

#include "edgequant/error.h"

namespace edgequant::tuning {

MetricKind parse_metric(const std::string& name) {
  if (name == "top1") return MetricKind::Top1;
  if (name == "agreement") return MetricKind::Agreement;
  if (name == "sqnr") return MetricKind::Sqnr;
  if (name == "cosine") return MetricKind::Cosine;
  if (name == "cmd") return MetricKind::Command;
  fail(ErrorCode::InvalidInput, "metric '" + name + "' is not one of top1, agreement, sqnr, cosine, cmd");
}

const char* metric_name(MetricKind kind) {
  switch (kind) {
    case MetricKind::Top1:
      return "top1";
    case MetricKind::Agreement:
      return "agreement";
    case MetricKind::Sqnr:
      return "sqnr";
    case MetricKind::Cosine:
      return "cosine";
    case MetricKind::Command:
      return "cmd";
  }
  return "?";
}

const char* metric_unit(MetricKind kind) {
  switch (kind) {
    case MetricKind::Top1:
    case MetricKind::Agreement:
      return "%";
    case MetricKind::Sqnr:
      return " dB";
    default:
      return "";
  }
}

size_t Scores::size() const { return std::max({correct.size(), agree.size(), signal.size()}); }

nlohmann::json Scores::to_json() const {
  return {{"correct", correct}, {"agree", agree}, {"signal", signal},
          {"noise", noise},     {"dot", dot},     {"quant2", quant2}};
}

Scores Scores::from_json(const nlohmann::json& j) {
  Scores s;
  auto get = [&j](const char* key, std::vector<double>& to) {
    if (j.contains(key)) to = j.at(key).get<std::vector<double>>();
  };
  get("correct", s.correct);
  get("agree", s.agree);
  get("signal", s.signal);
  get("noise", s.noise);
  get("dot", s.dot);
  get("quant2", s.quant2);
  return s;
}

namespace {
double sum(const std::vector<double>& v, const std::vector<uint32_t>& index) {
  double s = 0;
  if (index.empty()) return std::accumulate(v.begin(), v.end(), 0.0);
  for (uint32_t i : index) s += v[i];
  return s;
}
double count(const std::vector<double>& v, const std::vector<uint32_t>& index) {
  return static_cast<double>(index.empty() ? v.size() : index.size());
}
}  // namespace

double aggregate(MetricKind kind, const Scores& s, const std::vector<uint32_t>& index) {
  switch (kind) {
    case MetricKind::Top1:
      return s.correct.empty() ? 0 : 100.0 * sum(s.correct, index) / count(s.correct, index);
    case MetricKind::Agreement:
      return s.agree.empty() ? 0 : 100.0 * sum(s.agree, index) / count(s.agree, index);
    case MetricKind::Sqnr: {
      double noise = sum(s.noise, index), signal = sum(s.signal, index);
      // An exact model: capped so that differences stay finite.
      return noise <= 0 ? 200.0 : std::min(200.0, 10.0 * std::log10(signal / noise));
    }
    case MetricKind::Cosine: {
      double d = std::sqrt(sum(s.signal, index) * sum(s.quant2, index));
      return d > 0 ? sum(s.dot, index) / d : 0;
    }
    case MetricKind::Command:
      return 0;
  }
  return 0;
}

double paired_noise(MetricKind kind, const Scores& candidate, const Scores& incumbent, int resamples) {
  size_t n = candidate.size();
  if (kind == MetricKind::Command || n == 0 || incumbent.size() != n || resamples < 2) return 0;
  std::mt19937_64 rng(20261207);
  std::uniform_int_distribution<uint32_t> pick(0, static_cast<uint32_t>(n - 1));
  std::vector<uint32_t> index(n);
  double mean = 0, m2 = 0;
  for (int r = 0; r < resamples; ++r) {
    for (auto& i : index) i = pick(rng);
    double d = aggregate(kind, candidate, index) - aggregate(kind, incumbent, index);
    double delta = d - mean;  // Welford
    mean += delta / (r + 1);
    m2 += delta * (d - mean);
  }
  return std::sqrt(m2 / (resamples - 1));
}

}  // namespace edgequant::tuning
