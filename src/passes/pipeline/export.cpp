// export: DIR/{model.onnx, quant_config.json, analysis.json, summary.txt, setting.yaml}, each
// written atomically; the summary also goes to the context's log.
#include <iomanip>
#include <ostream>
#include <sstream>

#include "core/files.h"
#include "onnx/onnx_io.h"
#include "passes/pipeline.h"
#include "quant/plan_io.h"

namespace edgequant {

namespace {
std::string summary_of(QuantContext& ctx) {
  const quant::CalibrationReport& cal = ctx.calibration_report;
  std::ostringstream s;
  s << "model: " << ctx.model_path << "\ntarget: " << ctx.target.name << " (" << ctx.target.description << ")\n"
    << "calibration: " << calib_algorithm_name(cal.algorithm) << " over " << cal.samples << " samples (" << cal.batches
    << " batches; " << ctx.calibration.description << "), " << cal.observed_tensors << " observed tensors\n";
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
      << "\n\n"
      << ctx.report->table() << "\n";
  }
  s << std::fixed << std::setprecision(2) << "time:";
  for (const auto& [name, secs] : ctx.stats.pass_seconds) s << " " << name << " " << secs << " s,";
  s << " (graph walks " << ctx.stats.graph_walks << ", data passes " << ctx.stats.data_passes << ")\n";
  return s.str();
}
}  // namespace

PassResult ExportPass::run(QuantContext& ctx) {
  if (!ctx.out_dir.empty()) {
    make_directories(ctx.out_dir);
    export_onnx(*ctx.graph, ctx.out_dir + "/model.onnx");
    nlohmann::json pj = quant::plan_to_json(ctx.plan);
    ctx.count_walk();
    pj["model"] = "model.onnx";
    pj["calib_algorithm"] = calib_algorithm_name(ctx.calibration_report.algorithm);
    pj["calib_samples"] = ctx.calibration_report.samples;
    write_file_atomic(ctx.out_dir + "/quant_config.json", pj.dump(1) + "\n");
    if (ctx.report) write_file_atomic(ctx.out_dir + "/analysis.json", ctx.report->to_json().dump(1) + "\n");
    if (!ctx.setting.file.empty()) write_file_atomic(ctx.out_dir + "/setting.yaml", read_file(ctx.setting.file));
  }
  std::string summary = summary_of(ctx);
  if (!ctx.out_dir.empty()) write_file_atomic(ctx.out_dir + "/summary.txt", summary);
  if (ctx.log) *ctx.log << summary;
  return PassResult{};
}

}  // namespace edgequant
