// The PTQ pipeline behind the public API (edgequant/pipeline.h), with the internals (graph,
// plan) that tests and benchmarks inspect: load, assign, calibrate, analyse, write DIR/.
#pragma once
#include <iosfwd>
#include <memory>
#include <string>

#include "data/dataset.h"
#include "edgequant/pipeline.h"
#include "ir/graph.h"
#include "ir/quant_config.h"
#include "target/setting.h"

namespace edgequant {


struct QuantizeResult {
  std::unique_ptr<Graph> graph;
  QuantPlan plan;
  Setting setting;
  std::string calib_algorithm;
  int64_t calib_samples = 0;
  double output_noise_ratio = -1;
  double import_s = 0, calibration_s = 0, analysis_s = 0, export_s = 0;
  double graphwise_s = 0, layerwise_s = 0;
  size_t analysed_units = 0;
};

// Writes out_dir/{model.onnx, quant_config.json, analysis.json, summary.txt} (each atomically)
// when out_dir is set; prints the summary to `log`.
QuantizeResult run_quantize(const QuantizeOptions& options, std::ostream& log);


// Float and quantized-simulation accuracy over a labeled dataset.
std::pair<Accuracy, Accuracy> evaluate_accuracy(const Graph& graph, const QuantPlan& plan, const Dataset& data,
                                                int64_t batch_size, int64_t limit = 0);

}  // namespace edgequant
