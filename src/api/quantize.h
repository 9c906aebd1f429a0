// The PTQ pipeline behind the public API (edgequant/pipeline.h), exposing the QuantContext that
// tests and benchmarks inspect. Everything runs the passes of passes/pipeline.h.
#pragma once
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>
#include <iosfwd>
#include <memory>
#include <string>
#include <vector>

#include "edgequant/pipeline.h"
#include "exec/executor.h"
#include "passes/pipeline.h"

namespace edgequant {

// Loads the model, target and setting (options override the setting), attaches the data.
std::unique_ptr<QuantContext> make_context(const QuantizeOptions& options, std::ostream* log);

// make_context + the setting's pipeline. Writes out_dir/{model.onnx, quant_config.json,
// analysis.json, summary.txt} (each atomically) when out_dir is set; prints the summary to `log`.
std::unique_ptr<QuantContext> run_quantize(const QuantizeOptions& options, std::ostream& log);

// Float accuracy of `graph` and quantized-simulation accuracy of `quantized_graph` (the same
// graph, with trained weights where a pass changed them) over a labeled dataset; the simulation
// computes from the lowered integer form of `plan`.
std::pair<Accuracy, Accuracy> evaluate_accuracy(const Graph& graph, const Graph& quantized_graph, const QuantPlan& plan,
                                                const Dataset& data, int64_t batch_size, int64_t limit = 0);
// Per evaluated sample, in data order: what the tuner's metrics aggregate and resample (paired
// bootstrap). Sums run over every floating-point graph output; `correct` is the quantized top-1
// hit on the first output (labelled data only), `agree` its argmax agreement with the float one.
struct SampleScores {
  std::vector<uint8_t> correct, agree;
  std::vector<double> signal, noise, dot, quant2;  // sum f^2, sum (q-f)^2, sum f q, sum q^2
};

// Accuracy (when labelled) and output metrics of the simulated quantized graph against the float
// graph. `target`: the plan's target (nullptr: found by the plan's target name); `scores`: filled
// per sample when given.
EvaluateReport evaluate_models(const Graph& graph, const Graph& quantized_graph, const QuantPlan& plan,
                               const Dataset& data, int64_t batch_size, int64_t limit = 0,
                               const Target* target = nullptr, SampleScores* scores = nullptr);

// The same comparison for any second model: `run_other` maps a batch of the float graph's inputs
// to its outputs (the simulation, a converted file's executor).
using ModelRun = std::function<std::vector<at::Tensor>(const std::vector<at::Tensor>&)>;
EvaluateReport compare_models(const Graph& graph, exec::Executor& executor, const ModelRun& run_other,
                              const Dataset& data, int64_t batch_size, int64_t limit = 0,
                              SampleScores* scores = nullptr);

}  // namespace edgequant
