// export: DIR/{model.onnx, quant_config.json, analysis.json, summary.txt, setting.yaml, target.yaml}, each
// written atomically; the summary also goes to the context's log.
#include <filesystem>
#include <iomanip>
#include <ostream>
#include <sstream>

#include "core/files.h"
#include "deploy/exporter.h"
#include "onnx/onnx_io.h"
#include "passes/pipeline.h"
#include "quant/plan_io.h"

namespace edgequant {

namespace {
std::string summary_of(QuantContext& ctx) {
  const quant::CalibrationReport& cal = ctx.calibration_report;
  std::ostringstream s;
  s << "model: " << ctx.model_path << "\ntarget: " << ctx.target.name << " (" << ctx.target.description << ")\n"
    << "calibration: " << (cal.chosen.empty() ? calib_algorithm_name(cal.algorithm) : cal.chosen) << " over "
    << cal.samples << " samples (" << cal.batches << " batches; " << ctx.calibration.description << "), "
    << cal.observed_tensors << " observed tensors\n";
  size_t quantized = 0, passive = 0, fused = 0, fl = 0;
  for (const auto& [n, c] : ctx.plan.values) {
    quantized += c.state == QuantState::Quantized;
    passive += c.state == QuantState::Passive;
    fused += c.state == QuantState::Fused;
    fl += c.state == QuantState::Float;
  }
  ctx.count_walk();
  s << "tensors: " << quantized << " quantized, " << passive << " passive, " << fused << " fused, " << fl << " float\n";
  if (ctx.lowered) {
    size_t luts = 0, requants = 0;
    for (const auto& op : ctx.lowered->ops) {
      luts += op.lut.has_value();
      requants += op.output_requant.has_value() + op.input_requants.size();
    }
    s << "integer form: " << ctx.lowered->tensors.size() << " integer tensors, " << requants << " requantizations, "
      << luts << " lookup tables\n";
  }
  for (const auto& n : ctx.plan.notes) s << "note: " << n << "\n";
  if (ctx.report) {
    s << "error analysis on " << ctx.report->samples << " validation samples (" << ctx.validation.description << ")\n"
      << "output noise:signal (everything quantized): " << std::setprecision(5) << ctx.report->output_noise_ratio
      << "\n";
    for (const auto& o : ctx.report->outputs) s << o.result().line() << "\n";
    s << "\n" << ctx.report->table() << "\n";
  }
  s << std::fixed << std::setprecision(2) << "time:";
  for (const auto& [name, secs] : ctx.stats.pass_seconds) s << " " << name << " " << secs << " s,";
  s << " (graph walks " << ctx.stats.graph_walks << ", data passes " << ctx.stats.data_passes << ")\n";
  return s.str();
}
}  // namespace

namespace {
// One calibration sample per graph input (batch 1): the test values embedded in `.espdl` files.
std::vector<at::Tensor> first_sample(QuantContext& ctx) {
  std::vector<at::Tensor> inputs;
  if (!ctx.calibration.data) return inputs;
  quant::BatchStream stream = ctx.batches(ctx.calibration);
  if (!stream.next(inputs)) return {};
  for (at::Tensor& t : inputs) t = t.slice(0, 0, 1).contiguous();
  return inputs;
}

// The deployable file for the setting's format; a line for the summary.
std::string write_deployable(QuantContext& ctx) {
  ExportFormat f = deploy::resolve_format(ctx.setting().export_setting.format, ctx.target, &ctx.plan);
  if (ctx.setting().export_setting.streaming_frames > 0 && f != ExportFormat::Espdl)
    fail(ErrorCode::InvalidSetting, std::string("export: streaming writes ESP-DL streaming models; the format is ") +
                                        export_format_name(f) + " (use --format espdl on an ESP target)");
  if (f == ExportFormat::None) return "";
  const deploy::Exporter* exporter = deploy::find_exporter(f);
  if (!exporter)
    fail(ErrorCode::Unsupported, std::string("export format ") + export_format_name(f) +
                                     " is not implemented yet for target " + ctx.target.name +
                                     " (use --format espdl or none)");
  size_t float_bytes = ctx.model_path.empty() ? 0 : file_size(ctx.model_path);
  std::vector<at::Tensor> sample;
  TestValues tv = ctx.setting().export_setting.test_values;
  if (exporter->embeds_test_values() && tv != TestValues::Never) sample = first_sample(ctx);
  deploy::ExportJob job{*ctx.graph,
                        ctx.plan,
                        ctx.lowered_form(),
                        ctx.target,
                        ctx.executor(),
                        std::move(sample),
                        tv == TestValues::Auto ? kTestValuesCapBytes : 0,
                        ctx.setting().export_setting.streaming_frames,
                        calib_algorithm_name(ctx.calibration_report.algorithm),
                        ctx.out_dir,
                        ctx.setting().export_setting.tflite_io};
  deploy::Deployed d = exporter->write(job);
  std::ostringstream s;
  s << "deployable: " << d.path << " (" << d.bytes << " bytes; float ONNX " << float_bytes << " bytes)\n";
  if (exporter->embeds_test_values()) s << d.test_values << "\n";
  for (const std::string& line : d.notes) s << line << "\n";
  return s.str();
}
}  // namespace

PassResult ExportPass::run(QuantContext& ctx) {
  std::string deployed;
  if (!ctx.out_dir.empty()) {
    bool created = !std::filesystem::exists(ctx.out_dir);
    make_directories(ctx.out_dir);
    // The deployable first: when the format cannot hold the model, nothing is written (and a
    // directory made for this run is removed again).
    try {
      deployed = write_deployable(ctx);
    } catch (...) {
      std::error_code ignored;
      if (created) std::filesystem::remove(ctx.out_dir, ignored);  // only if still empty
      throw;
    }
    export_onnx(*ctx.graph, ctx.out_dir + "/model.onnx");
    nlohmann::json pj = quant::plan_to_json(ctx.plan);
    ctx.count_walk();
    pj["model"] = "model.onnx";
    pj["calib_algorithm"] = calib_algorithm_name(ctx.calibration_report.algorithm);
    pj["calib_samples"] = ctx.calibration_report.samples;
    if (!ctx.calibration_report.chosen.empty()) pj["calib_chosen"] = ctx.calibration_report.chosen;
    write_file_atomic(ctx.out_dir + "/quant_config.json", pj.dump(1) + "\n");
    if (ctx.report) write_file_atomic(ctx.out_dir + "/analysis.json", ctx.report->to_json().dump(1) + "\n");
    if (!ctx.setting().file.empty()) write_file_atomic(ctx.out_dir + "/setting.yaml", read_file(ctx.setting().file));
    // The target's own file: `evaluate` finds it here even when it was given by a path that is gone.
    // The definition as loaded (a `base:` target's keys merged in), so the directory stands alone.
    if (!ctx.target.file.empty())
      write_file_atomic(ctx.out_dir + "/target.yaml",
                        ctx.target.yaml.empty() ? read_file(ctx.target.file) : ctx.target.yaml);
  }
  std::string summary = summary_of(ctx) + deployed;
  if (!ctx.out_dir.empty()) write_file_atomic(ctx.out_dir + "/summary.txt", summary);
  if (ctx.log) *ctx.log << summary;
  return PassResult{};
}

}  // namespace edgequant
