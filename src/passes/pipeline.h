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
  // The user's setting. Passes read it; only the caller changes it, between pipeline runs (a
  // sweep over calib_algorithm): edit_setting() inside a pass is an internal error.
  const Setting& setting() const { return setting_; }
  Setting& edit_setting();
  DataSpan calibration, validation;
  QuantPlan plan;
  quant::ParameterStore parameters;
  std::string out_dir;          // export: "" writes nothing
  std::ostream* log = nullptr;  // summary and notes; nullptr: silent
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
  bool has_executor() const { return executor_ != nullptr; }
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

  // Verify mode (see PassDecl): unset = on in debug builds and when EDGEQUANT_VERIFY_PASSES=1
  // (the tests set it), off otherwise.
  std::optional<bool> verify_passes;
  bool verifying() const;
  const char* running_pass() const { return running_pass_; }

 private:
  friend void run_pass(QuantContext&, Pass&);
  Setting setting_;
  const char* running_pass_ = nullptr;
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
// Runs one pass under the manager: times it (stats.pass_seconds), drops every cached analysis
// it does not declare preserved, and in verify mode checks its declaration and the graph and
// plan afterwards. Passes never call it (nor run_pipeline): they ask the context for analyses.
void run_pass(QuantContext& context, Pass& pass);

// Shared by passes that need the same step (no pass reruns another): the plan's assignment
// (assign, mixed-precision), the observations and the calibrator's scales (calibrate,
// mixed-precision), the error analysis on the validation samples (analyse, mixed-precision).
void calibrate_plan(QuantContext& context);
// A fresh plan for `setting` (the user's, or mixed precision's copy with promotions); empties
// the parameter store.
void assign_plan(QuantContext& context, const Setting& setting);
analysis::AnalysisReport analyse_validation(QuantContext& context, bool graphwise, bool layerwise);

// The pipeline passes (one file each), with what each may change and the analyses it keeps.
#define EQ_DECLARE_PASS(Class, text, writes_, preserves_)                                                              \
  class Class : public Pass {                                                                                          \
   public:                                                                                                             \
    const char* name() const override { return text; }                                                                 \
    PassDecl declared() const override { return {static_cast<unsigned>(writes_), static_cast<unsigned>(preserves_)}; } \
    PassResult run(QuantContext& context) override;                                                                    \
  };
constexpr unsigned kNothing = 0;
constexpr unsigned kKernels = static_cast<unsigned>(Analysis::FloatOutputs);
constexpr unsigned kDataKept = Analysis::Observations | Analysis::FloatOutputs;  // observations and kernels
// A pass with typed options (its setting's struct): built bare it reads them from the user's
// setting (`member`); a caller such as the tuner or a test may give its own, and the setting
// stays as the user gave it.
#define EQ_DECLARE_PASS_WITH_OPTIONS(Class, text, writes_, preserves_, Options, member)                                \
  class Class : public Pass {                                                                                          \
   public:                                                                                                             \
    Class() = default;                                                                                                 \
    explicit Class(Options options) : options_(std::move(options)) {}                                                  \
    const char* name() const override { return text; }                                                                 \
    PassDecl declared() const override { return {static_cast<unsigned>(writes_), static_cast<unsigned>(preserves_)}; } \
    PassResult run(QuantContext& context) override;                                                                    \
    const Options& options(const QuantContext& context) const {                                                        \
      return options_ ? *options_ : context.setting().member;                                                          \
    }                                                                                                                  \
                                                                                                                       \
   private:                                                                                                            \
    std::optional<Options> options_;                                                                                   \
  };
// normalise the graph (idempotent on a loaded model), make the executor; drops all when it changed
EQ_DECLARE_PASS(PreparePass, "prepare", Part::Graph | Part::Constants, kAllAnalyses)
// weight outliers into a parallel op joined by Add
EQ_DECLARE_PASS_WITH_OPTIONS(LayerSplitPass, "layer-split", Part::Graph | Part::Constants | Part::Plan, kNothing,
                             LayerSplitSetting, layer_split_setting)
// cross-layer weight range equalization
EQ_DECLARE_PASS_WITH_OPTIONS(EqualizationPass, "equalization", Part::Graph | Part::Constants, kNothing,
                             EqualizationSetting, equalization_setting)
// a QuantConfig for every tensor (quant/quantizer.h); empties the parameter store
EQ_DECLARE_PASS(AssignPass, "assign", Part::Plan | Part::Parameters, kDataKept)
// deployability of the graph for the export format (deploy/check.h)
EQ_DECLARE_PASS(CheckPass, "check", kNothing, kAllAnalyses)
// observe once (cached), scales for the calibrator
EQ_DECLARE_PASS(CalibratePass, "calibrate", Part::Plan, kDataKept)
// the K worst units to int16 (or float), reassigned and recalibrated
EQ_DECLARE_PASS_WITH_OPTIONS(MixedPrecisionPass, "mixed-precision", Part::Plan | Part::Parameters, kDataKept,
                             MixedPrecisionSetting, mixed_precision)
// b += E[y_float - y_quant] per channel (biases baked into graph and executor)
EQ_DECLARE_PASS_WITH_OPTIONS(BiasCorrectionPass, "bias-correction", Part::Constants | Part::Plan | Part::Parameters,
                             kKernels, BiasCorrectionSetting, bias_correction_setting)
// learned float scales (and weights), block by block (baked into graph and executor)
EQ_DECLARE_PASS_WITH_OPTIONS(LsqPass, "lsq", Part::Constants | Part::Plan | Part::Parameters, kKernels, TqtSetting, lsq)
// learned weight rounding, scales frozen, block by block
EQ_DECLARE_PASS_WITH_OPTIONS(AdaRoundPass, "adaround", Part::Constants | Part::Plan | Part::Parameters, kKernels,
                             TqtSetting, adaround)
// trained power-of-two thresholds and weights, block by block
EQ_DECLARE_PASS_WITH_OPTIONS(TqtPass, "tqt", Part::Constants | Part::Plan | Part::Parameters, kKernels, TqtSetting, tqt)
// quantization-aware training of the whole model on the task loss (qat.cpp)
EQ_DECLARE_PASS_WITH_OPTIONS(QatPass, "qat", Part::Constants | Part::Plan | Part::Parameters, kKernels, QatSetting,
                             qat_setting)
// error analysis on the validation samples (keeps everything: it adds the report)
EQ_DECLARE_PASS_WITH_OPTIONS(AnalysePass, "analyse", kNothing, kAllAnalyses, AnalysisSetting, analysis)
// the integer form
EQ_DECLARE_PASS(LowerPass, "lower", kNothing, kAllAnalyses)
// model.onnx, quant_config.json, analysis.json, summary
EQ_DECLARE_PASS(ExportPass, "export", kNothing, kAllAnalyses)
#undef EQ_DECLARE_PASS
#undef EQ_DECLARE_PASS_WITH_OPTIONS

}  // namespace edgequant
