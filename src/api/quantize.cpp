// PTQ pipeline and accuracy evaluation.
#include "api/quantize.h"

#include <ATen/ATen.h>

#include <filesystem>
#include <iostream>
#include <optional>

#include "analysis/output_metrics.h"
#include "api/load.h"
#include "core/progress.h"
#include "deploy/check.h"
#include "deploy/deployable.h"
#include "edgequant/error.h"
#include "quant/lower.h"
#include "quant/plan_io.h"
#include "target/ti_config.h"

namespace edgequant {

namespace {
// The TI config's mapping into the setting (the command line's own QAT options still win), printed.
void apply_ti_config(const TiConfig& c, const QuantizeOptions& o, Setting& s, std::ostream* log) {
  s.weight_bits = c.weight_bits;
  s.activation_bits = c.activation_bits;
  QatSetting& q = s.qat_setting;
  if (c.epochs > 0) q.epochs = c.epochs;
  if (c.batch_size > 0) q.batch_size = c.batch_size;
  if (c.lr > 0) q.lr = c.lr;
  if (c.weight_decay >= 0) q.weight_decay = c.weight_decay;
  if (c.momentum >= 0) q.momentum = c.momentum;
  if (!c.optimizer.empty()) q.optimizer = parse_qat_optimizer(c.optimizer);
  if (c.qat && o.qat.train_data.empty())
    fail(ErrorCode::InvalidSetting, o.ti_config +
                                        ": quantization_method QAT needs a training set (edgequant train "
                                        "--ti-config ... --train DATA)");
  if (log) {
    *log << "TI config " << o.ti_config << ":\n";
    for (const auto& m : c.mapped) *log << "  " << m << "\n";
    for (const auto& u : c.unused) *log << "  not used: " << u << "\n";
    if (!c.qat && !o.qat.train_data.empty()) *log << "  quantization_method PTQ: the training set is not used\n";
  }
}
}  // namespace

std::unique_ptr<QuantContext> make_context(const QuantizeOptions& o, std::ostream* log) {
  std::optional<TiConfig> ti;
  if (!o.ti_config.empty()) ti = read_ti_config(o.ti_config);
  if (ti && !o.target.empty() && o.target != ti->target)
    fail(ErrorCode::InvalidSetting,
         o.ti_config + ": the TI config maps to target " + ti->target + ", but --target " + o.target + " was given");
  Target target = load_target(ti ? ti->target : o.target);
  Setting s = o.setting_file.empty() ? Setting{} : load_setting(o.setting_file);
  if (ti) apply_ti_config(*ti, o, s, log);
  if (o.calib_steps > 0) s.calib_steps = o.calib_steps;
  if (o.batch_size > 0) s.batch_size = o.batch_size;
  if (!o.calib_algorithm.empty()) s.calib_algorithm = parse_calib_algorithm(o.calib_algorithm);
  if (!o.format.empty()) s.export_setting.format = parse_export_format(o.format);
  if (o.no_test_values && o.always_test_values)
    fail(ErrorCode::InvalidInput, "--no-export-test-values and --export-test-values contradict each other");
  if (o.no_test_values) s.export_setting.test_values = TestValues::Never;
  if (o.always_test_values) s.export_setting.test_values = TestValues::Always;
  const QuantizeOptions::Qat& q = o.qat;
  QatSetting& qs = s.qat_setting;
  if (!q.train_data.empty() && (!ti || ti->qat)) {
    s.qat = true;
    qs.train_data = q.train_data;
  }
  if (!q.val_data.empty()) qs.val_data = q.val_data;
  if (!q.loss.empty()) qs.loss = parse_qat_loss(q.loss);
  if (!q.optimizer.empty()) qs.optimizer = parse_qat_optimizer(q.optimizer);
  if (q.epochs > 0) qs.epochs = q.epochs;
  if (q.batch_size > 0) qs.batch_size = q.batch_size;
  if (q.freeze_scales_epoch >= 0) qs.freeze_scales_epoch = q.freeze_scales_epoch;
  if (q.lr > 0) qs.lr = q.lr;
  if (q.scale_lr > 0) qs.scale_lr = q.scale_lr;
  if (q.warmup_epochs >= 0) qs.warmup_epochs = q.warmup_epochs;
  if (q.limit >= 0) qs.limit = q.limit;
  if (q.val_limit >= 0) qs.val_limit = q.val_limit;
  qs.resume = q.resume;
  auto ctx = std::make_unique<QuantContext>(load_model(o.model), std::move(target), std::move(s));
  ctx->model_path = o.model;
  ctx->out_dir = o.out_dir;
  ctx->log = log;
  if (!o.calib.empty()) attach_data(*ctx, o.calib);
  return ctx;
}

CheckReport check(const QuantizeOptions& o) {
  auto ctx = make_context(o, nullptr);
  run_pipeline(*ctx, {"prepare", "assign"});
  CheckReport r;
  ExportFormat f = deploy::resolve_format(ctx->setting().export_setting.format, ctx->target, &ctx->plan);
  r.format = export_format_name(f);
  if (f != ExportFormat::None)
    for (const deploy::Finding& x : deploy::check_deployable(*ctx->graph, ctx->plan, ctx->target, f))
      r.findings.push_back(x.line());
  r.notes = ctx->plan.notes;
  r.ops = ctx->graph->ops().size();
  return r;
}

std::unique_ptr<QuantContext> run_quantize(const QuantizeOptions& o, std::ostream& log) {
  auto ctx = make_context(o, &log);
  run_pipeline(*ctx, pipeline_for(ctx->setting()));
  return ctx;
}

QuantizeSummary quantize(const QuantizeOptions& options, std::ostream& log) {
  auto ctx = run_quantize(options, log);
  QuantizeSummary s;
  s.calib_algorithm = calib_algorithm_name(ctx->calibration_report.algorithm);
  s.calib_samples = ctx->calibration_report.samples;
  if (ctx->report) {
    s.output_noise_ratio = ctx->report->output_noise_ratio;
    s.analysed_units = ctx->report->units.size();
  }
  s.pass_seconds = ctx->stats.pass_seconds;
  for (const auto& [name, secs] : ctx->stats.pass_seconds) {
    if (name == "prepare")
      s.import_s += secs;
    else if (name == "calibrate")
      s.calibration_s += secs;
    else if (name == "analyse")
      s.analysis_s += secs;
    else if (name == "export" || name == "lower")
      s.export_s += secs;
  }
  s.graph_walks = ctx->stats.graph_walks;
  s.notes = ctx->plan.notes;
  return s;
}

EvaluateReport evaluate_report(const EvaluateOptions& o) {
  auto g = load_model(o.model);
  // The quantized graph is the directory's model.onnx: training passes (TQT) change its weights.
  std::string qmodel = o.quantized_dir + "/model.onnx";
  auto qg = std::filesystem::exists(qmodel) ? load_model(qmodel) : load_model(o.model);
  QuantPlan plan = quant::read_plan(o.quantized_dir + "/quant_config.json");
  try {
    plan.verify(*g, ErrorCode::InvalidInput);
    plan.verify(*qg, ErrorCode::InvalidInput);
  } catch (Error& e) {
    throw e.add_context(o.quantized_dir + "/quant_config.json (quantized from a different model than " + o.model +
                        "?)");
  }
  std::string sf = o.setting_file;
  if (sf.empty() && std::filesystem::exists(o.quantized_dir + "/setting.yaml")) sf = o.quantized_dir + "/setting.yaml";
  Setting s = sf.empty() ? Setting{} : load_setting(sf);
  auto ds = open_dataset(o.data, s.preprocess);
  Target target = load_directory_target(o.quantized_dir, plan);
  return evaluate_models(*g, *qg, plan, *ds, o.batch_size, o.limit, &target);
}

std::pair<Accuracy, Accuracy> evaluate(const EvaluateOptions& o) {
  EvaluateReport r = evaluate_report(o);
  if (!r.labelled)
    fail(ErrorCode::InvalidInput,
         o.data + ": evaluation of accuracy needs labeled data (ImageFolder, IDX labels or an .npz with 'labels')");
  return {r.float_accuracy, r.quantized_accuracy};
}

std::pair<Accuracy, Accuracy> evaluate_accuracy(const Graph& g, const Graph& qg, const QuantPlan& plan,
                                                const Dataset& data, int64_t batch_size, int64_t limit) {
  if (!data.has_labels())
    fail(ErrorCode::InvalidInput, "evaluation needs labeled data (ImageFolder, IDX labels or an .npz with 'labels')");
  EvaluateReport r = evaluate_models(g, qg, plan, data, batch_size, limit);
  return {r.float_accuracy, r.quantized_accuracy};
}

namespace {

// Per-sample sums over the floating outputs (double, like OutputMetricsAccumulator) and the
// first output's argmax agreement.
void add_sample_scores(const std::vector<at::Tensor>& yf, const std::vector<at::Tensor>& yq, SampleScores& s) {
  int64_t n = yf.empty() ? 0 : yf[0].size(0);
  at::Tensor signal = at::zeros({n}, at::kDouble), noise = signal.clone(), dot = signal.clone(), q2 = signal.clone();
  for (size_t i = 0; i < yf.size() && i < yq.size(); ++i) {
    if (!at::isFloatingType(yf[i].scalar_type()) || yf[i].dim() == 0 || yf[i].size(0) != n) continue;
    at::Tensor f = yf[i].to(at::kDouble).reshape({n, -1}), q = yq[i].to(at::kDouble).reshape({n, -1});
    signal += (f * f).sum(1);
    noise += ((q - f) * (q - f)).sum(1);
    dot += (f * q).sum(1);
    q2 += (q * q).sum(1);
  }
  auto append = [n](std::vector<double>& to, const at::Tensor& t) {
    const double* p = t.contiguous().data_ptr<double>();
    to.insert(to.end(), p, p + n);
  };
  append(s.signal, signal);
  append(s.noise, noise);
  append(s.dot, dot);
  append(s.quant2, q2);
  if (n > 0) {
    at::Tensor agree = yf[0].reshape({n, -1}).argmax(1).eq(yq[0].reshape({n, -1}).argmax(1)).to(at::kByte).contiguous();
    s.agree.insert(s.agree.end(), agree.data_ptr<uint8_t>(), agree.data_ptr<uint8_t>() + n);
  }
}

}  // namespace

EvaluateReport evaluate_models(const Graph& g, const Graph& qg, const QuantPlan& plan, const Dataset& data,
                               int64_t batch_size, int64_t limit, const Target* target, SampleScores* scores) {
  exec::Executor ex(g);
  exec::Executor qex(qg);
  LoweredModel lowered = quant::lower(qg, plan, target ? *target : load_target(plan.target_name), qex);
  quant::QuantSimulator sim(qg, plan, qex, &lowered);
  return compare_models(
      g, ex, [&sim](const std::vector<at::Tensor>& x) { return sim.run(x); }, data, batch_size, limit, scores);
}

EvaluateReport compare_models(const Graph& g, exec::Executor& ex, const ModelRun& run_other, const Dataset& data,
                              int64_t batch_size, int64_t limit, SampleScores* scores) {
  int64_t n = limit > 0 ? std::min(limit, data.size()) : data.size();
  EvaluateReport r;
  quant::ModelBatch mb = quant::probe_model_batch(g, ex, data, 0);
  int64_t bs = mb.run_size(batch_size);
  if (mb.limit() > 0 && mb.limit() != batch_size)
    r.notes.push_back(mb.why + ": evaluated " + std::to_string(bs) + " sample" + (bs == 1 ? "" : "s") + " at a time");
  if (mb.exact() && n % bs != 0)
    r.notes.push_back("the last " + std::to_string(n % bs) + " sample(s) do not fill a batch of " + std::to_string(bs) +
                      " and are left out");
  quant::BatchStream stream(data, bs, (n + bs - 1) / bs, 0, n, &g.inputs, mb.exact());
  r.labelled = data.has_labels();
  Accuracy& f = r.float_accuracy;
  Accuracy& q = r.quantized_accuracy;
  std::vector<analysis::OutputMetricsAccumulator> metrics;
  for (const Value* o : g.outputs) metrics.emplace_back(o->name);
  std::vector<at::Tensor> batch;
  int64_t offset = 0;
  Progress progress("evaluating", stream.batches());
  at::NoGradGuard no_grad;
  auto score = [&](const at::Tensor& logits, Accuracy& acc, const at::Tensor& labels) {
    at::Tensor flat = logits.reshape({logits.size(0), -1});
    int64_t k = std::min<int64_t>(5, flat.size(1));
    at::Tensor top = std::get<1>(flat.topk(k, 1));
    at::Tensor hit = top.eq(labels.unsqueeze(1));
    // Top-1 by argmax (the first of equal maxima, as numpy and the tests do): coarse outputs
    // (2-bit weights) tie often, and topk orders ties differently (TI ResNet W2A8: 80.28 vs 80.55).
    acc.top1 += flat.argmax(1).eq(labels).sum().item<double>();
    acc.top5 += hit.any(1).sum().item<double>();
    acc.samples += flat.size(0);
  };
  while (stream.next(batch)) {
    int64_t bn = batch[0].size(0);
    std::vector<at::Tensor> yf = ex.run(batch), yq = run_other(batch);
    for (size_t i = 0; i < yf.size() && i < metrics.size(); ++i)
      if (at::isFloatingType(yf[i].scalar_type())) metrics[i].add(yf[i], yq[i]);
    if (scores) add_sample_scores(yf, yq, *scores);
    if (r.labelled) {
      std::vector<int64_t> l(static_cast<size_t>(bn));
      for (int64_t i = 0; i < bn; ++i) l[size_t(i)] = data.label(offset + i);
      at::Tensor labels = at::tensor(l, at::kLong);
      score(yf[0], f, labels);
      score(yq[0], q, labels);
      if (scores) {
        at::Tensor hit = yq[0].reshape({bn, -1}).argmax(1).eq(labels).to(at::kByte).contiguous();
        scores->correct.insert(scores->correct.end(), hit.data_ptr<uint8_t>(), hit.data_ptr<uint8_t>() + bn);
      }
    }
    offset += bn;
    progress.step();
  }
  for (Accuracy* a : {&f, &q}) {
    a->top1 = 100.0 * a->top1 / std::max<int64_t>(1, a->samples);
    a->top5 = 100.0 * a->top5 / std::max<int64_t>(1, a->samples);
  }
  for (const auto& m : metrics) r.outputs.push_back(m.result());
  return r;
}

}  // namespace edgequant
