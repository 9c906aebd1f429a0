// QuantContext, data spans and the pipeline runner (see pipeline.h).
#include "passes/pipeline.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <ostream>

#include "edgequant/error.h"
#include "quant/lower.h"

namespace edgequant {

QuantContext::QuantContext(std::unique_ptr<Graph> g, Target t, Setting s)
    : graph(std::move(g)), target(std::move(t)), setting_(std::move(s)) {}

QuantContext::~QuantContext() = default;

exec::Executor& QuantContext::executor() {
  if (!executor_) executor_ = std::make_unique<exec::Executor>(*graph);
  return *executor_;
}

const LoweredModel& QuantContext::lowered_form() {
  if (!lowered) {
    count_walk(2);  // configs, then ops
    lowered = quant::lower(*graph, plan, target, executor());
  }
  return *lowered;
}

quant::QuantSimulator& QuantContext::simulator() {
  if (!simulator_ || !lowered) {
    const LoweredModel& l = lowered_form();
    count_walk();
    simulator_ = std::make_unique<quant::QuantSimulator>(*graph, plan, executor(), &l);
  }
  simulator_->set_parameters(parameters.empty() ? nullptr : &parameters);
  return *simulator_;
}

exec::HookList QuantContext::float_reference_hooks() const {
  exec::HookList list;
  if (float_constants.empty()) return list;
  exec::ExecHooks h;
  h.allow_inplace = true;
  h.before_op = [this](const Op& op, std::vector<at::Tensor>& in) {
    for (size_t i = 0; i < op.inputs.size() && i < in.size(); ++i) {
      auto it = op.inputs[i] ? float_constants.find(op.inputs[i]) : float_constants.end();
      if (it != float_constants.end()) in[i] = it->second;
    }
  };
  return list.add(std::move(h));
}

void QuantContext::invalidate(unsigned preserved) {
  auto keep = [&](Analysis a) { return (preserved & static_cast<unsigned>(a)) != 0; };
  if (!keep(Analysis::Observations)) observations.reset();
  if (!keep(Analysis::ErrorReport)) report.reset();
  if (!keep(Analysis::LoweredForm)) {
    simulator_.reset();
    lowered.reset();
  }
  if (!keep(Analysis::FloatOutputs)) {  // the graph changed: kernels are stale
    simulator_.reset();
    lowered.reset();
    executor_.reset();
  }
}

const quant::ModelBatch& QuantContext::model_batch() {
  if (model_batch_) return *model_batch_;
  const DataSpan& span = calibration.data ? calibration : validation;
  if (!span.data) fail(ErrorCode::Internal, "no data attached to the quantization context");
  model_batch_ = quant::probe_model_batch(*graph, executor(), *span.data, span.begin);
  if (log && model_batch_->limit() > 0 && model_batch_->limit() != setting_.batch_size)
    *log << "note: " << model_batch_->why << ": every pass runs " << model_batch_->limit() << " sample"
         << (model_batch_->limit() == 1 ? "" : "s") << " at a time (batch-size " << setting_.batch_size << " asked)\n";
  return *model_batch_;
}

quant::BatchStream QuantContext::batches(const DataSpan& span) {
  if (!span.data) fail(ErrorCode::Internal, "no data attached to the quantization context");
  const quant::ModelBatch& mb = model_batch();
  int64_t bs = mb.run_size(setting_.batch_size);
  if (mb.exact() && span.size() < bs)
    fail(ErrorCode::InvalidInput, span.description + ": " + std::to_string(span.size()) + " sample(s), but " + mb.why +
                                      ": a run needs " + std::to_string(bs));
  return quant::BatchStream(*span.data, bs, (span.size() + bs - 1) / bs, span.begin, span.end, &graph->inputs,
                            mb.exact());
}

void attach_data(QuantContext& ctx, const std::string& calib_path) {
  std::vector<std::string> input_names;
  for (const Value* v : ctx.graph->inputs) input_names.push_back(v->name);
  std::shared_ptr<const Dataset> data = open_dataset(calib_path, ctx.setting().preprocess, input_names);
  if (data->size() == 0) fail(ErrorCode::InvalidInput, calib_path + ": the calibration set is empty");
  const Setting& s = ctx.setting();
  int64_t wanted = int64_t(s.calib_steps) * s.batch_size, n = data->size();
  int64_t samples = s.analysis.samples;
  if (!s.validation.file.empty()) {
    std::shared_ptr<const Dataset> v = open_dataset(s.validation.file, s.preprocess, input_names);
    if (v->size() == 0) fail(ErrorCode::InvalidInput, s.validation.file + ": the validation set is empty");
    int64_t m = std::min(samples, v->size());
    ctx.validation = {v, 0, m, "samples 0-" + std::to_string(m - 1) + " of " + s.validation.file};
    int64_t c = std::min(wanted, n);
    ctx.calibration = {data, 0, c, "samples 0-" + std::to_string(c - 1) + " of " + calib_path};
  } else if (n > wanted) {
    // The samples calibration does not use: error is never measured on the data scales were fitted to.
    int64_t end = std::min(n, wanted + samples);
    ctx.calibration = {data, 0, wanted, "samples 0-" + std::to_string(wanted - 1) + " of " + calib_path};
    ctx.validation = {data, wanted, end,
                      "samples " + std::to_string(wanted) + "-" + std::to_string(end - 1) + " of " + calib_path +
                          " (not used by calibration)"};
  } else {
    // No samples beyond the calibration ones: hold out the tail (validation.holdout of the data).
    int64_t held = n < 2 ? 0 : std::max<int64_t>(1, static_cast<int64_t>(n * s.validation.holdout));
    int64_t c = n - held;
    if (held == 0) {
      ctx.calibration = {data, 0, n, "sample 0 of " + calib_path};
      ctx.validation = {data, 0, n, "sample 0 of " + calib_path + " (one sample: also the calibration sample)"};
    } else {
      int64_t m = std::min(held, samples);
      ctx.calibration = {data, 0, c, "samples 0-" + std::to_string(c - 1) + " of " + calib_path};
      ctx.validation = {data, c, c + m,
                        "samples " + std::to_string(c) + "-" + std::to_string(c + m - 1) + " of " + calib_path +
                            " (held out of calibration: the data has no samples beyond calib_steps x batch_size)"};
    }
    if (ctx.log && n < wanted)
      *ctx.log << "warning: " << calib_path << " has " << n
               << " samples, fewer than calib-steps x batch-size = " << wanted << "; calibrating on "
               << ctx.calibration.size() << ", validating on " << ctx.validation.size() << "\n";
  }
}

std::vector<std::string> pipeline_for(const Setting& s) {
  if (!s.passes.empty()) return s.passes;
  std::vector<std::string> p = {"prepare"};
  if (s.layer_split) p.push_back("layer-split");    // graph surgery: before anything is assigned
  if (s.equalization) p.push_back("equalization");  // changes the float weights: before calibration
  p.push_back("assign");
  p.push_back("check");  // deployability, before any calibration
  p.push_back("calibrate");
  // Optimisation passes in their documented order (README: equalization -> calibration ->
  // bias correction -> TQT/AdaRound).
  if (s.mixed_precision.auto_promote > 0 || s.mixed_precision.method != BitSearch::Off) p.push_back("mixed-precision");
  if (s.bias_correction_enabled()) p.push_back("bias-correction");
  if (s.tqt_optimization) p.push_back("tqt");
  if (s.lsq_optimization) p.push_back("lsq");
  if (s.blockwise_reconstruction) p.push_back("adaround");
  if (s.qat) p.push_back("qat");  // the task loss over the whole model, from the PTQ result
  for (const char* rest : {"analyse", "lower", "export"}) p.push_back(rest);
  return p;
}

}  // namespace edgequant
