// Error analysis: where does quantization lose accuracy, and why?
//  * graphwise: everything quantized; noise:signal power ratio at each quantized unit's output
//    (per sample sum((q - f)^2) / sum(f^2), averaged over samples);
//  * layerwise: one unit quantized at a time, measured at the graph outputs; reuses the cached
//    float activations and runs only the ops downstream of the unit;
//  * per-tensor statistics: float/quantized/noise mean, std, skewness, kurtosis, min, max, a
//    32-bin histogram of the float values.
// A unit is an op with quantized weights or a quantized output; a Conv/Gemm and its fused
// activation form one unit measured at the activation's output.
#pragma once
#include <ATen/core/Tensor.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "analysis/output_metrics.h"
#include "exec/executor.h"
#include "ir/quant_config.h"
#include "quant/simulator.h"

namespace edgequant::analysis {

struct Moments {
  double count = 0, sum = 0, sum2 = 0, sum3 = 0, sum4 = 0;
  double min = 0, max = 0;
  void add(const at::Tensor& x);
  double mean() const;
  double std() const;
  double skewness() const;
  double kurtosis() const;  // excess kurtosis is kurtosis - 3; this is the plain (Pearson) one
  nlohmann::json to_json() const;
};

struct UnitReport {
  std::string op, type, value;  // value: the output the unit is measured at
  std::vector<const Op*> ops;   // the ops quantized together
  int bits = 8;
  double graphwise = -1, layerwise = -1;  // noise:signal; -1 when not computed
  Moments float_stats, quant_stats, noise_stats;
  std::vector<double> histogram;  // 32 bins of float values over [hist_min, hist_max]
  double hist_min = 0, hist_max = 0;
};

struct AnalysisReport {
  std::vector<UnitReport> units;
  int64_t samples = 0;
  double graphwise_seconds = 0, layerwise_seconds = 0;
  double float_seconds = 0;                       // the one float pass over the batches (shared by both analyses)
  double output_noise_ratio = -1;                 // graph outputs, everything quantized
  std::vector<OutputMetricsAccumulator> outputs;  // per graph output: SQNR, cosine, max |diff|, top-1 agreement
  std::string samples_description;                // which samples were used (validation, not calibration)
  nlohmann::json to_json() const;
  std::string table(size_t max_rows = 30) const;  // ranked worst first
};

std::vector<UnitReport> analysis_units(const Graph& graph, const QuantPlan& plan);

// One batch: a tensor per graph input.
using Batch = std::vector<at::Tensor>;

// One float pass per batch (every activation kept for that batch), then the quantized pass
// (graphwise) and the downstream re-runs (layerwise) against it.
// `float_hooks` (optional) make the float pass compute the reference model (original weights
// where a training pass changed them).
AnalysisReport analyse(const Graph& graph, exec::Executor& executor, const quant::QuantSimulator& simulator,
                       const QuantPlan& plan, const std::vector<Batch>& batches, bool graphwise, bool layerwise,
                       const exec::HookList* float_hooks = nullptr);

// Mean over samples of sum((q-f)^2)/sum(f^2) for a batch (dim 0 = sample); adds to acc/count.
void accumulate_noise_ratio(const at::Tensor& f, const at::Tensor& q, double& acc, int64_t& count);

}  // namespace edgequant::analysis
