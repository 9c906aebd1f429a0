// Calibration: run the float graph over calibration batches with observers on every tensor
// that owns a scale, then turn ranges into scales (target's power-of-two rule per calibrator),
// resolve Align-to-Large, passives and biases.
#pragma once
#include "exec/executor.h"
#include "ir/quant_config.h"
#include "quant/batches.h"
#include "target/setting.h"
#include "target/target.h"

namespace edgequant::quant {

struct CalibrationReport {
  std::string algorithm;
  int64_t batches = 0, samples = 0, observed_tensors = 0;
  double seconds = 0;
  double observer_seconds = 0;  // of `seconds`, spent inside observers
};

CalibrationReport calibrate(const Graph& graph, exec::Executor& executor, QuantPlan& plan, const Target& target,
                            const Setting& setting, BatchStream& batches);

// Weights, biases and constants only (no data needed); calibrate() calls it.
void calibrate_constants(const Graph& graph, exec::Executor& executor, QuantPlan& plan, const Target& target,
                         const Setting& setting);

}  // namespace edgequant::quant
