// PTQ pipeline and accuracy evaluation.
#include "api/quantize.h"

#include <ATen/ATen.h>

#include <chrono>
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <sstream>

#include "analysis/error_analysis.h"
#include "api/load.h"
#include "core/files.h"
#include "core/progress.h"
#include "edgequant/error.h"
#include "exec/executor.h"
#include "onnx/onnx_io.h"
#include "quant/calibrate.h"
#include "quant/plan_io.h"
#include "quant/quantizer.h"
#include "quant/simulator.h"
#include "target/target.h"

namespace edgequant {

namespace {
using Clock = std::chrono::steady_clock;
double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }
}  // namespace

QuantizeResult run_quantize(const QuantizeOptions& o, std::ostream& log) {
  QuantizeResult r;
  auto t0 = Clock::now();
  Target target = load_target(o.target);
  r.setting = o.setting_file.empty() ? Setting{} : load_setting(o.setting_file);
  Setting& s = r.setting;
  if (o.calib_steps > 0) s.calib_steps = o.calib_steps;
  if (o.batch_size > 0) s.batch_size = o.batch_size;
  if (!o.calib_algorithm.empty()) s.calib_algorithm = o.calib_algorithm;
  r.graph = load_model(o.model);
  const Graph& g = *r.graph;
  if (g.inputs.size() != 1)
    fail(ErrorCode::Unsupported, o.model + ": calibration supports single-input models (this one has " +
                                     std::to_string(g.inputs.size()) + ")");
  exec::Executor ex(g);
  r.import_s = since(t0);

  auto data = open_dataset(o.calib, s.preprocess);
  if (data->size() == 0) fail(ErrorCode::InvalidInput, o.calib + ": the calibration set is empty");
  int64_t wanted = int64_t(s.calib_steps) * s.batch_size;
  if (data->size() < wanted)
    log << "warning: " << o.calib << " has " << data->size() << " samples, fewer than calib-steps x batch-size = "
        << wanted << "; using all " << data->size() << "\n";

  auto t1 = Clock::now();
  r.plan = quant::assign_quant_configs(g, target, s);
  quant::BatchStream stream(*data, s.batch_size, s.calib_steps);
  quant::CalibrationReport cal;
  try {
    cal = quant::calibrate(g, ex, r.plan, target, s, stream);
  } catch (Error& e) {
    throw e.add_context(o.calib);
  }
  r.calib_algorithm = cal.algorithm;
  r.calib_samples = cal.samples;
  r.calibration_s = since(t1);

  auto t2 = Clock::now();
  quant::QuantSimulator sim(g, r.plan, ex);
  std::vector<at::Tensor> analysis_batches;
  quant::BatchStream abatch(*data, s.batch_size, (s.analysis.samples + s.batch_size - 1) / s.batch_size);
  at::Tensor b;
  int64_t taken = 0;
  while (taken < s.analysis.samples && abatch.next(b)) {
    int64_t keep = std::min<int64_t>(b.size(0), s.analysis.samples - taken);
    analysis_batches.push_back(b.slice(0, 0, keep));
    taken += keep;
  }
  analysis::AnalysisReport report =
      analysis::analyse(g, ex, sim, r.plan, analysis_batches, s.analysis.graphwise, s.analysis.layerwise);
  r.output_noise_ratio = report.output_noise_ratio;
  r.graphwise_s = report.graphwise_seconds;
  r.layerwise_s = report.layerwise_seconds;
  r.analysed_units = report.units.size();
  r.analysis_s = since(t2);

  std::ostringstream summary;
  summary << "model: " << o.model << "\ntarget: " << target.name << " (" << target.description << ")\n"
          << "calibration: " << cal.algorithm << " over " << cal.samples << " samples (" << cal.batches
          << " batches), " << cal.observed_tensors << " observed tensors\n";
  size_t quantized = 0, passive = 0, fused = 0, fl = 0;
  for (const auto& [n, c] : r.plan.values) {
    quantized += c.state == QuantState::Quantized;
    passive += c.state == QuantState::Passive;
    fused += c.state == QuantState::Fused;
    fl += c.state == QuantState::Float;
  }
  summary << "tensors: " << quantized << " quantized, " << passive << " passive, " << fused << " fused, " << fl
          << " float\n";
  for (const auto& n : r.plan.notes) summary << "note: " << n << "\n";
  summary << "output noise:signal (everything quantized, " << report.samples << " samples): " << std::setprecision(5)
          << report.output_noise_ratio << "\n\n"
          << report.table() << "\n";
  auto t3 = Clock::now();
  if (!o.out_dir.empty()) {
    make_directories(o.out_dir);
    export_onnx(g, o.out_dir + "/model.onnx");
    nlohmann::json pj = quant::plan_to_json(r.plan);
    pj["model"] = "model.onnx";
    pj["calib_algorithm"] = cal.algorithm;
    pj["calib_samples"] = cal.samples;
    write_file_atomic(o.out_dir + "/quant_config.json", pj.dump(1) + "\n");
    write_file_atomic(o.out_dir + "/analysis.json", report.to_json().dump(1) + "\n");
    if (!o.setting_file.empty()) write_file_atomic(o.out_dir + "/setting.yaml", read_file(o.setting_file));
  }
  r.export_s = since(t3);
  summary << std::fixed << std::setprecision(2) << "time: import " << r.import_s << " s, calibration " << r.calibration_s
          << " s, analysis " << r.analysis_s << " s (graphwise " << r.graphwise_s << ", layerwise " << r.layerwise_s
          << "), export " << r.export_s << " s\n";
  if (!o.out_dir.empty()) write_file_atomic(o.out_dir + "/summary.txt", summary.str());
  log << summary.str();
  return r;
}

QuantizeSummary quantize(const QuantizeOptions& options, std::ostream& log) {
  QuantizeResult r = run_quantize(options, log);
  QuantizeSummary s;
  s.calib_algorithm = r.calib_algorithm;
  s.calib_samples = r.calib_samples;
  s.output_noise_ratio = r.output_noise_ratio;
  s.analysed_units = r.analysed_units;
  s.import_s = r.import_s;
  s.calibration_s = r.calibration_s;
  s.analysis_s = r.analysis_s;
  s.export_s = r.export_s;
  s.notes = r.plan.notes;
  return s;
}

std::pair<Accuracy, Accuracy> evaluate(const EvaluateOptions& o) {
  auto g = load_model(o.model);
  QuantPlan plan = quant::read_plan(o.quantized_dir + "/quant_config.json");
  for (const auto& [name, c] : plan.values)
    if (!g->find_value(name))
      fail(ErrorCode::InvalidInput, o.quantized_dir + "/quant_config.json: tensor '" + name + "' is not in " + o.model +
                                        " (quantized from a different model?)");
  std::string sf = o.setting_file;
  if (sf.empty() && std::filesystem::exists(o.quantized_dir + "/setting.yaml")) sf = o.quantized_dir + "/setting.yaml";
  Setting s = sf.empty() ? Setting{} : load_setting(sf);
  auto ds = open_dataset(o.data, s.preprocess);
  return evaluate_accuracy(*g, plan, *ds, o.batch_size, o.limit);
}

std::pair<Accuracy, Accuracy> evaluate_accuracy(const Graph& g, const QuantPlan& plan, const Dataset& data,
                                                int64_t batch_size, int64_t limit) {
  if (!data.has_labels()) fail(ErrorCode::InvalidInput, "evaluation needs labeled data (ImageFolder, IDX labels or an .npz with 'labels')");
  exec::Executor ex(g);
  quant::QuantSimulator sim(g, plan, ex);
  int64_t n = limit > 0 ? std::min(limit, data.size()) : data.size();
  quant::BatchStream stream(data, batch_size, (n + batch_size - 1) / batch_size);
  Accuracy f, q;
  at::Tensor batch;
  int64_t offset = 0;
  Progress progress("evaluating", stream.batches());
  at::NoGradGuard no_grad;
  auto score = [&](const at::Tensor& logits, Accuracy& acc, const at::Tensor& labels) {
    at::Tensor flat = logits.reshape({logits.size(0), -1});
    int64_t k = std::min<int64_t>(5, flat.size(1));
    at::Tensor top = std::get<1>(flat.topk(k, 1));
    at::Tensor hit = top.eq(labels.unsqueeze(1));
    acc.top1 += hit.select(1, 0).sum().item<double>();
    acc.top5 += hit.any(1).sum().item<double>();
    acc.samples += flat.size(0);
  };
  while (stream.next(batch)) {
    std::vector<int64_t> l(static_cast<size_t>(batch.size(0)));
    for (int64_t i = 0; i < batch.size(0); ++i) l[i] = data.label(offset + i);
    offset += batch.size(0);
    at::Tensor labels = at::tensor(l, at::kLong);
    score(ex.run({batch})[0], f, labels);
    score(sim.run({batch})[0], q, labels);
    progress.step();
  }
  for (Accuracy* a : {&f, &q}) {
    a->top1 = 100.0 * a->top1 / std::max<int64_t>(1, a->samples);
    a->top5 = 100.0 * a->top5 / std::max<int64_t>(1, a->samples);
  }
  return {f, q};
}

}  // namespace edgequant
