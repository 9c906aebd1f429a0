// The tuner's metrics over per-sample scores, and their noise: a paired bootstrap over the
// evaluation samples (the same resampled samples for the candidate and the incumbent).
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace edgequant::tuning {

enum class MetricKind { Top1, Agreement, Sqnr, Cosine, Command };

MetricKind parse_metric(const std::string& name);  // throws InvalidInput listing the names
const char* metric_name(MetricKind kind);
const char* metric_unit(MetricKind kind);

// One trial's per-sample scores (scores.json), or none (Command: one number).
struct Scores {
  std::vector<double> correct, agree, signal, noise, dot, quant2;
  size_t size() const;
  nlohmann::json to_json() const;
  static Scores from_json(const nlohmann::json& j);
};

// The metric over the samples `index` (all when empty); higher is better for every built-in.
double aggregate(MetricKind kind, const Scores& s, const std::vector<uint32_t>& index = {});

// Standard deviation of metric(candidate) - metric(incumbent) over `resamples` paired bootstrap
// resamples with a fixed seed (deterministic). 0 when either has no samples.
double paired_noise(MetricKind kind, const Scores& candidate, const Scores& incumbent, int resamples = 200);

}  // namespace edgequant::tuning
