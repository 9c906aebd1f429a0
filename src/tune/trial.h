// One tuning trial: a setting run through the quantize pipeline into DIR/out (the deployable and
// its reports), then scored on the evaluation data. The driver writes DIR/trial.json and
// DIR/setting.yaml; the worker (`edgequant tune-trial DIR`, run_tune_trial) writes
// DIR/metrics.json and DIR/scores.json, each atomically, so a trial either finished or did not.
#pragma once
#include <nlohmann/json.hpp>
#include <string>

#include "tune/metric.h"

namespace edgequant::tuning {

struct TrialSpec {
  std::string model, target, calib, eval;
  int64_t eval_limit = 0;
  std::string metric;  // metric_name
  std::string eval_cmd;
  double eval_cmd_timeout_s = 0;
  int threads = 0;  // intra-op threads the launcher gave it (EDGEQUANT_THREADS; a record)
  nlohmann::json to_json() const;
  static TrialSpec from_json(const nlohmann::json& j);
};

// What a finished trial measured (metrics.json).
struct TrialMetrics {
  bool ok = false;
  std::string reason;  // why it failed
  double value = 0, float_value = 0;
  double output_noise_ratio = -1;  // the pipeline's validation proxy
  double seconds = 0;
  std::string calib_algorithm, deployable;
  int wide_units = 0;  // units above 8 bits or float (mixed precision's cost)
  int64_t weight_bytes = 0;
  nlohmann::json to_json() const;
  static TrialMetrics from_json(const nlohmann::json& j);
};

}  // namespace edgequant::tuning
