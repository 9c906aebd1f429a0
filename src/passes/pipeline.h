// The quantization context and the pipeline over it. One QuantContext holds everything a pass
// may need: the graph, target, typed setting, executor, calibration and validation data, the
// plan, trainable parameters, and the cached analyses (observations, error report, lowered
// form). The pipeline is an ordered list of pass names built from the setting:
//   prepare -> assign -> calibrate -> [optimisation passes] -> analyse -> lower -> export
// and can resume from any pass on a context whose plan was cloned or changed (a calib_algorithm
// sweep reruns "calibrate" from cached observations: no data pass). The CLI, the C++ API, the
// benchmarks and the tests all run this path.
#pragma once
#include <iosfwd>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "analysis/error_analysis.h"
#include "data/dataset.h"
#include "exec/executor.h"
#include "ir/lowered.h"
#include "ir/quant_config.h"
#include "passes/pass.h"
#include "quant/batches.h"
#include "quant/calibrate.h"
#include "quant/parameter_store.h"
#include "quant/simulator.h"
#include "target/setting.h"
#include "target/target.h"

namespace edgequant {

// A span of a dataset: samples [begin, end).
struct DataSpan {
  std::shared_ptr<const Dataset> data;
  int64_t begin = 0, end = 0;
  std::string description;  // for the summary: which samples, from where
  int64_t size() const { return end - begin; }
};

struct PipelineStats {
  int graph_walks = 0;  // walks over the graph's ops/values or the plan's configs
  int data_passes = 0;  // forward passes over a dataset span (calibration, analysis)
  std::vector<std::pair<std::string, double>> pass_seconds;
};

class QuantContext {
 public:
  QuantContext(std::unique_ptr<Graph> graph, Target target, Setting setting);
  ~QuantContext();

  std::unique_ptr<Graph> graph;
  std::string model_path;  // for reports and error context
  Target target;
  Setting setting;
  DataSpan calibration, validation;
  QuantPlan plan;
  quant::ParameterStore parameters;
  std::string out_dir;              // export: "" writes nothing
  std::ostream* log = nullptr;      // summary and notes; nullptr: silent
  PipelineStats stats;

  // Cached analyses (see Analysis): filled by passes or on demand, dropped when not preserved.
  std::optional<quant::Observations> observations;
  std::optional<analysis::AnalysisReport> report;
  std::optional<LoweredModel> lowered;
  quant::CalibrationReport calibration_report;
  // Original float tensors of constants a training pass changed: the float reference (error
  // analysis) keeps computing the model as given.
  std::unordered_map<const Value*, at::Tensor> float_constants;
  // Hooks that make a run compute the float reference (original weights); empty list if none.
  exec::HookList float_reference_hooks() const;

  exec::Executor& executor();  // made on first use
  // The lowered form of the current plan (computed on demand, cached).
  const LoweredModel& lowered_form();
  // The simulator over the lowered form (rebuilt when the plan or parameters change).
  quant::QuantSimulator& simulator();
  void invalidate(unsigned preserved);
  void count_walk(int n = 1) { stats.graph_walks += n; }
  // Batches of a span, one tensor per graph input, at the model's batch (model_batch()) when
  // the model cannot take setting.batch_size samples in one run.
  quant::BatchStream batches(const DataSpan& span);
  // How many samples one run of the model takes (probed once on the calibration data; the
  // limit, if any, is logged once).
  const quant::ModelBatch& model_batch();

 private:
  std::optional<quant::ModelBatch> model_batch_;
  std::unique_ptr<exec::Executor> executor_;
  std::unique_ptr<quant::QuantSimulator> simulator_;
};

// Opens the calibration data (and the validation data: a file of its own, the samples beyond
// calib_steps x batch_size, or a held-out tail) into the context's spans.
void attach_data(QuantContext& context, const std::string& calib_path);

// The default pipeline for a setting (setting.passes if given).
std::vector<std::string> pipeline_for(const Setting& setting);

// Runs `names` in order from `from` ("" = the first); errors carry "pass 'name'".
void run_pipeline(QuantContext& context, const std::vector<std::string>& names, const std::string& from = "");

// The pipeline passes (one file each).
#define EQ_DECLARE_PASS(Class, text)                   \
  class Class : public Pass {                          \
   public:                                             \
    const char* name() const override { return text; } \
    PassResult run(QuantContext& context) override;    \
  };
EQ_DECLARE_PASS(PreparePass, "prepare")    // normalise the graph, make the executor
EQ_DECLARE_PASS(LayerSplitPass, "layer-split")  // weight outliers into a parallel op joined by Add
EQ_DECLARE_PASS(EqualizationPass, "equalization")  // cross-layer weight range equalization
EQ_DECLARE_PASS(AssignPass, "assign")      // a QuantConfig for every tensor (quant/quantizer.h)
EQ_DECLARE_PASS(CheckPass, "check")        // deployability of the graph for the export format (deploy/check.h)
EQ_DECLARE_PASS(CalibratePass, "calibrate")  // observe once (cached), scales for the calibrator
EQ_DECLARE_PASS(MixedPrecisionPass, "mixed-precision")  // the K worst units to int16 (or float)
EQ_DECLARE_PASS(BiasCorrectionPass, "bias-correction")  // b += E[y_float - y_quant] per channel
EQ_DECLARE_PASS(LsqPass, "lsq")            // learned float scales (and weights), block by block
EQ_DECLARE_PASS(AdaRoundPass, "adaround")  // learned weight rounding, scales frozen, block by block
EQ_DECLARE_PASS(TqtPass, "tqt")            // trained power-of-two thresholds and weights, block by block
EQ_DECLARE_PASS(AnalysePass, "analyse")    // error analysis on the validation samples
EQ_DECLARE_PASS(LowerPass, "lower")        // the integer form
EQ_DECLARE_PASS(ExportPass, "export")      // model.onnx, quant_config.json, analysis.json, summary
#undef EQ_DECLARE_PASS

}  // namespace edgequant
