// calib_algorithm: auto. Every calibrator's clip is computed from the same histogram, so choosing
// per tensor costs no calibration pass: the candidates (minmax, percentile, KL, MSE and, on
// power-of-two grids, each one's neighbours 2^(e-1) and 2^(e+1)) are scored by how much
// quantizing that tensor alone changes the float outputs of the ops that consume it, on the
// selection samples (the first calibration samples, kept by observe_activations). Measuring at
// the consumer is what makes the choice differ from MSE: a ReLU or Sigmoid consumer ignores
// errors in the range it flattens, a Softmax or GAP weighs outliers differently from the tensor.
#pragma once
#include <string>
#include <unordered_map>

#include "quant/calibrate.h"

namespace edgequant::quant {

struct AutoChoice {
  QuantConfig config;  // the tensor's config with the chosen scale
  CalibAlgorithm from = CalibAlgorithm::MinMax;
  int exponent_step = 0;  // power-of-two neighbour taken: -1, 0 or +1
  // Consumer-output noise:signal summed over consumers, chosen and per calibrator (no neighbour).
  double error = 0;
  double calibrator_error[4] = {0, 0, 0, 0};
};

// The candidates of one tensor, as configs (deduplicated by scale and zero point), with where
// each came from; of_calibrator[a] is the candidate calibrator `a` itself gives.
struct AutoCandidates {
  std::vector<AutoChoice> list;
  int of_calibrator[4] = {0, 0, 0, 0};
};
AutoCandidates auto_candidates(const QuantConfig& config, const HistogramObserver& observer, const Target& target,
                               double percentile);

// The choice for every observed tensor of `plan` (throws Internal when `observations` lacks the
// selection samples).
std::unordered_map<std::string, AutoChoice> choose_clips(const Graph& graph, exec::Executor& executor,
                                                         const QuantPlan& plan, const Target& target,
                                                         const Setting& setting, const Observations& observations);

}  // namespace edgequant::quant
