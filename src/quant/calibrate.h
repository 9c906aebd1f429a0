// Calibration in two steps. observe_activations() is the data pass: it runs the float graph
// over calibration batches with one histogram observer on every tensor that owns a scale.
// apply_calibration() turns those observations into scales for the setting's calibrator (the
// target's power-of-two rule per calibrator), computes weight/bias/constant scales and resolves
// Align-to-Large, passives and biases: no data pass, so another calibrator on a cloned plan is
// cheap.
#pragma once
#include <string>
#include <unordered_map>
#include <vector>

#include "exec/executor.h"
#include "ir/quant_config.h"
#include "quant/batches.h"
#include "quant/observer.h"
#include "target/setting.h"
#include "target/target.h"

namespace edgequant::quant {

struct Observations {
  std::unordered_map<std::string, HistogramObserver> by_value;
  int64_t batches = 0, samples = 0;
  double seconds = 0;
  double observer_seconds = 0;  // of `seconds`, spent inside observers
  // About kSelectionSamples calibration samples, the first few of every batch: what
  // calib_algorithm auto scores its candidates on.
  static constexpr int64_t kSelectionSamples = 64;
  std::vector<std::vector<at::Tensor>> selection;
  bool selection_whole = false;  // the model has a fixed batch: selection batches are run whole
};

struct CalibrationReport {
  CalibAlgorithm algorithm = CalibAlgorithm::MinMax;
  std::string chosen;  // apply_calibration's account of the choice
  int64_t batches = 0, samples = 0, observed_tensors = 0;
  double seconds = 0;
  double observer_seconds = 0;
};

// The setting's calibrator, else the target's default.
CalibAlgorithm calib_algorithm_for(const Setting& setting, const Target& target);

// The tensors calibration observes: quantized, not constant, no custom scale, not Align-to-Large.
bool wants_observer(const Value& value, const QuantPlan& plan);
// The tensors the data pass observes: those, and float tensors a quantized op reads through a
// boundary grid of its own (the output of a float op; the grid is calibrated on it).
bool observed_in_calibration(const Value& value, const QuantPlan& plan);

// The data pass. `extra` hooks run before the observers (e.g. a simulator, to observe the
// quantized graph). `batch_percentile` > 0: the observers also keep each batch's quantiles at
// that percentile (ESP-PPQ's percentile semantics, HistogramObserver::track_batch_percentile).
Observations observe_activations(const Graph& graph, exec::Executor& executor, const QuantPlan& plan,
                                 BatchStream& batches, const exec::HookList* extra = nullptr,
                                 double batch_percentile = 0);

// Scales from observations (every Quantized config gets one); throws Internal if an observed
// tensor is missing from `observations`. Returns what chose the scales ("kl"; under auto, e.g.
// "auto (per tensor: kl 3 mse 12)" or "auto (mse for every tensor)").
std::string apply_calibration(const Graph& graph, exec::Executor& executor, QuantPlan& plan, const Target& target,
                              const Setting& setting, const Observations& observations);

// Both steps.
CalibrationReport calibrate(const Graph& graph, exec::Executor& executor, QuantPlan& plan, const Target& target,
                            const Setting& setting, BatchStream& batches);

// Weights, biases and constants only (no data needed); apply_calibration() calls it.
void calibrate_constants(const Graph& graph, exec::Executor& executor, QuantPlan& plan, const Target& target,
                         const Setting& setting);

}  // namespace edgequant::quant
