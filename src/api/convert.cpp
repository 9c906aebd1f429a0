// `edgequant convert` (edgequant/pipeline.h): load, rewrite by mode (deploy/convert.h), write,
// reload the written file and compare it with the float model.
#include "deploy/convert.h"

#include <ATen/ATen.h>

#include <cstdio>
#include <fstream>
#include <iomanip>
#include <sstream>

#include "api/load.h"
#include "api/quantize.h"
#include "core/files.h"
#include "data/dataset.h"
#include "edgequant/error.h"
#include "onnx/onnx_io.h"
#include "target/setting.h"

namespace edgequant {

namespace {

deploy::ConvertSettings settings_of(const ConvertOptions& o) {
  deploy::ConvertSettings s;
  s.mode = deploy::parse_convert_mode(o.mode);
  if (!o.op_types.empty()) s.op_types = o.op_types;
  s.reduce_range = !o.full_range;
  s.bits = o.weight_bits;
  s.block_size = o.block_size;
  if (o.weight_scheme == "symmetric")
    s.symmetric = 1;
  else if (o.weight_scheme == "asymmetric")
    s.symmetric = 0;
  else if (!o.weight_scheme.empty())
    fail(ErrorCode::InvalidInput, "weight scheme '" + o.weight_scheme + "' (symmetric | asymmetric)");
  s.float16_io = o.float16_io;
  s.keep_float32 = o.keep_float32;
  return s;
}

std::string summary_text(const ConvertSummary& r) {
  std::ostringstream out;
  out << "mode: " << r.mode << "\n"
      << "written: " << r.file << "\n"
      << "size: " << r.source_bytes << " bytes (float model) -> " << r.converted_bytes << " bytes (" << std::fixed
      << std::setprecision(1) << 100.0 * double(r.converted_bytes) / double(std::max<int64_t>(1, r.source_bytes))
      << "%)\n"
      << "ops converted: " << r.converted_ops << ", left as they were: " << r.kept_ops << "\n";
  for (const auto& n : r.notes) out << "note: " << n << "\n";
  if (r.evaluated) {
    const EvaluateReport& a = r.accuracy;
    for (const auto& n : a.notes) out << "note: " << n << "\n";
    if (a.labelled)
      out << std::setprecision(2) << "top-1: float " << a.float_accuracy.top1 << ", " << r.mode << " "
          << a.quantized_accuracy.top1 << " (" << a.quantized_accuracy.samples << " samples)\n";
    for (const auto& m : a.outputs) out << m.line() << "\n";
  }
  return out.str();
}

}  // namespace

ConvertSummary convert(const ConvertOptions& o, std::ostream& log) {
  deploy::ConvertSettings settings = settings_of(o);
  if (o.out_dir.empty()) fail(ErrorCode::InvalidInput, "convert: no output directory");
  // The evaluation data is read first: a bad path fails before anything is written.
  Setting s = o.setting_file.empty() ? Setting{} : load_setting(o.setting_file);
  std::unique_ptr<Dataset> ds = o.eval_data.empty() ? nullptr : open_dataset(o.eval_data, s.preprocess);
  auto g = load_model(o.model);
  auto converted = g->clone();
  deploy::ConvertResult cr;
  try {
    cr = deploy::convert_graph(*converted, settings);
    converted->verify();
  } catch (Error& e) {
    throw e.add_context(o.model);
  }
  make_directories(o.out_dir);
  ConvertSummary r;
  r.mode = deploy::convert_mode_name(settings.mode);
  r.file = o.out_dir + "/model." + r.mode + ".onnx";
  r.converted_ops = cr.converted;
  r.kept_ops = cr.kept;
  r.notes = cr.notes;
  if (cr.converted == 0)
    r.notes.push_back("nothing was converted: the model has no op this mode rewrites (see the notes above)");
  export_onnx(*converted, r.file);
  r.source_bytes = int64_t(file_size(o.model));
  r.converted_bytes = int64_t(file_size(r.file));
  if (ds) try {
      // What ships is the written file: it is read back and run as it is.
      auto written = load_model(r.file, false);
      exec::Executor ex(*g), cex(*written);
      std::vector<bool> half_in;
      for (const Value* v : written->inputs) half_in.push_back(v->dtype == DType::Float16);
      auto run = [&](const std::vector<at::Tensor>& x) {
        std::vector<at::Tensor> in(x);
        for (size_t i = 0; i < in.size() && i < half_in.size(); ++i)
          if (half_in[i]) in[i] = in[i].to(at::kHalf);
        std::vector<at::Tensor> y = cex.run(in);
        for (at::Tensor& t : y)
          if (t.scalar_type() == at::kHalf) t = t.to(at::kFloat);
        return y;
      };
      r.accuracy = compare_models(*g, ex, run, *ds, o.batch_size, o.eval_limit);
      r.evaluated = true;
    } catch (...) {
      std::remove(r.file.c_str());  // no file without the evaluation that was asked for
      throw;
    }
  std::string text = summary_text(r);
  write_file_atomic(o.out_dir + "/summary.txt", text);
  log << text;
  return r;
}

}  // namespace edgequant
