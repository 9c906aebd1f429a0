// Deployable outputs (see deployable.h).
#include "deploy/deployable.h"

#include <ATen/ATen.h>

#include <sstream>

#include "core/files.h"
#include "deploy/espdl.h"
#include "deploy/integer_program.h"
#include "deploy/streaming.h"
#include "edgequant/error.h"
#include "runtime/interpreter.h"
#include "runtime/memory_plan.h"

namespace edgequant::deploy {

using runtime::IntGraph;
using runtime::IntTensor;

ExportFormat resolve_format(ExportFormat requested, const Target& target, const QuantPlan* plan) {
  if (requested != ExportFormat::Auto) return requested;
  ExportFormat f = parse_export_format(target.export_format);
  // TI integer ONNX writes power-of-two layers; sub-8-bit weights with float scales (TI's 8-bit
  // multiplier) go to QDQ until that exporter learns the multiplier.
  if (f == ExportFormat::TiOnnx && plan)
    for (const auto& [name, c] : plan->values)
      if (c.role == QuantRole::Weight && c.state != QuantState::Float && c.scale_kind != ScaleKind::PowerOfTwo)
        return ExportFormat::Qdq;
  return f;
}

const char* format_extension(ExportFormat f) {
  switch (f) {
    case ExportFormat::Espdl:
      return ".espdl";
    case ExportFormat::Qdq:
    case ExportFormat::TiOnnx:
      return ".onnx";
    case ExportFormat::Tflite:
      return ".tflite";
    default:
      return "";
  }
}

void attach_test_values(IntGraph& p, const std::vector<at::Tensor>& inputs) {
  if (inputs.size() != p.inputs.size())
    fail(ErrorCode::Internal,
         "test values: " + std::to_string(inputs.size()) + " inputs for " + std::to_string(p.inputs.size()));
  runtime::TensorMap feed;
  for (size_t i = 0; i < inputs.size(); ++i) {
    at::Tensor x = inputs[i].contiguous().to(at::kFloat).cpu();
    std::vector<float> v(x.data_ptr<float>(), x.data_ptr<float>() + x.numel());
    Shape shape;
    std::vector<float> pv = to_program_layout(p, p.inputs[i], v, Shape(x.sizes().begin(), x.sizes().end()), &shape);
    feed[p.inputs[i]] = runtime::quantize_for_input(p, p.inputs[i], pv, shape);
  }
  runtime::TensorMap out = runtime::run_program(p, feed);
  p.test_inputs = feed;
  p.test_outputs = out;
}

namespace {
std::string exps_str(const std::vector<int>& e) {
  std::ostringstream s;
  if (e.size() == 1) return std::to_string(e[0]);
  s << "[";
  for (size_t i = 0; i < e.size(); ++i) s << (i ? "," : "") << e[i];
  s << "]";
  return s.str();
}

std::string attr_str(const Attribute& a) {
  std::ostringstream s;
  if (const auto* i = std::get_if<int64_t>(&a))
    s << *i;
  else if (const auto* f = std::get_if<float>(&a))
    s << *f;
  else if (const auto* str = std::get_if<std::string>(&a))
    s << '"' << *str << '"';
  else if (const auto* is = std::get_if<std::vector<int64_t>>(&a)) {
    s << "[";
    for (size_t i = 0; i < is->size(); ++i) s << (i ? "," : "") << (*is)[i];
    s << "]";
  } else if (const auto* fs = std::get_if<std::vector<float>>(&a)) {
    s << "[";
    for (size_t i = 0; i < fs->size(); ++i) s << (i ? "," : "") << (*fs)[i];
    s << "]";
  } else {
    s << "...";
  }
  return s.str();
}

int bits_of(DType d) { return int(std::max<size_t>(dtype_size(d), 1) * 8); }
}  // namespace

std::string describe_program(const IntGraph& p) {
  std::ostringstream s;
  s << "integer program '" << p.name << "' for " << (p.target.empty() ? "?" : p.target) << " ("
    << rounding_mode_name(p.rounding) << " rounding" << (p.rounding_assumed ? ", " + p.rounding_basis : std::string())
    << ")\n";
  auto value_line = [&](const std::string& n) {
    const runtime::ValueInfo& v = p.value(n);
    s << "  " << n << "  " << dtype_name(v.dtype) << " " << shape_str(v.shape) << " exponent " << v.exponent << "\n";
  };
  s << "inputs:\n";
  for (const auto& n : p.inputs) value_line(n);
  s << "outputs:\n";
  for (const auto& n : p.outputs) value_line(n);
  s << "nodes (" << p.nodes.size() << "):\n";
  for (const auto& n : p.nodes) {
    s << "  " << n.name << "  " << n.op_type << "(";
    for (size_t i = 0; i < n.inputs.size(); ++i) s << (i ? ", " : "") << n.inputs[i];
    s << ") -> ";
    for (size_t i = 0; i < n.outputs.size(); ++i) {
      const runtime::ValueInfo& v = p.value(n.outputs[i]);
      s << (i ? ", " : "") << n.outputs[i] << " [" << dtype_name(v.dtype) << " 2^" << v.exponent << "]";
    }
    for (const auto& [k, a] : espdl_attributes(p, n)) s << "  " << k << "=" << attr_str(a);
    s << "\n";
  }
  size_t total = 0;
  s << "parameters (" << p.initializers.size() << "):\n";
  for (const auto& [n, t] : p.initializers) {
    size_t b = size_t(t.numel()) * std::max<size_t>(dtype_size(t.dtype), 1);
    total += b;
    s << "  " << n << "  " << dtype_name(t.dtype) << " " << shape_str(t.shape) << " exponent " << exps_str(t.exponents)
      << "  " << b << " bytes\n";
  }
  runtime::MemoryPlan m = runtime::plan_memory(p);
  s << "memory: parameters " << total << " bytes (";
  bool first = true;
  for (const auto& [d, b] : m.parameter_bytes) {
    s << (first ? "" : ", ") << dtype_name(d) << " " << b;
    first = false;
  }
  s << "); activations: greedy arena " << m.arena_bytes << " bytes, peak live " << m.peak_live_bytes << " bytes at "
    << m.peak_node << "\n";
  if (!p.test_outputs.empty())
    s << "test values: " << p.test_inputs.size() << " inputs, " << p.test_outputs.size() << " outputs\n";
  return s.str();
}

nlohmann::json program_json(const IntGraph& p) {
  nlohmann::json j;
  j["target"] = p.target;
  j["rounding"] = rounding_mode_name(p.rounding);
  nlohmann::json values = nlohmann::json::object(), params = nlohmann::json::object();
  for (const auto& [n, v] : p.values)
    values[n] = {{"dtype", dtype_name(v.dtype)},
                 {"bits", v.dtype == DType::Float32 ? 32 : bits_of(v.dtype)},
                 {"exponent", v.exponent},
                 {"policy", v.dtype == DType::Float32 ? "float" : "per_tensor symmetric power_of_two"},
                 {"shape", v.shape}};
  for (const auto& [n, t] : p.initializers)
    params[n] = {
        {"dtype", dtype_name(t.dtype)},
        {"bits", bits_of(t.dtype)},
        {"exponents", t.exponents},
        {"policy", t.exponents.size() > 1 ? "per_channel symmetric power_of_two" : "per_tensor symmetric power_of_two"},
        {"shape", t.shape}};
  j["values"] = values;
  j["parameters"] = params;
  return j;
}

Deployed write_espdl_outputs(const Graph& g, const QuantPlan& plan, const LoweredModel& lowered, const Target& target,
                             exec::Executor& ex, const std::vector<at::Tensor>& test_inputs, const std::string& dir,
                             size_t test_values_cap, int64_t streaming_frames) {
  IntGraph p = build_integer_program(g, plan, lowered, target, ex);
  Deployed d;
  d.test_values = "test values: none embedded (export: test_values: false)";
  if (!test_inputs.empty()) {
    attach_test_values(p, test_inputs);
    size_t tv_bytes = 0;
    for (const auto* m : {&p.test_inputs, &p.test_outputs})
      for (const auto& [_, t] : *m) tv_bytes += size_t(t.numel()) * std::max<size_t>(dtype_size(t.dtype), 1);
    std::string sizes = std::to_string(p.test_inputs.size()) + " input(s) and " +
                        std::to_string(p.test_outputs.size()) + " output(s), " + std::to_string(tv_bytes) + " bytes";
    if (test_values_cap > 0 && tv_bytes > test_values_cap) {
      p.test_inputs.clear();
      p.test_outputs.clear();
      d.test_values = "test values: not embedded (" + sizes + ", over the " + std::to_string(test_values_cap / 1024) +
                      " KiB of export: test_values: auto; true embeds them)";
    } else {
      d.test_values = "test values: " + sizes + " embedded (Model::test() checks them on the chip)";
    }
  }
  // The streaming form first: a model that cannot stream leaves nothing written.
  std::string streaming_bytes;
  if (streaming_frames > 0) {
    std::vector<std::string> caches;
    IntGraph st = make_streaming(p, streaming_frames, &caches);
    streaming_bytes = encode_espdl(st);
    d.notes.push_back("streaming: " + dir + "/model_streaming.espdl (" + std::to_string(streaming_bytes.size()) +
                      " bytes; " + std::to_string(streaming_frames) + " frame(s) per run, " +
                      std::to_string(caches.size()) + " StreamingCache node(s)" +
                      (st.test_outputs.empty() ? "" : "; test values: the first frames from reset") + ")");
    for (const std::string& c : caches) d.notes.push_back("  " + c);
  }
  d.path = dir + "/model.espdl";
  std::string bytes = encode_espdl(p);
  write_file_atomic(d.path, bytes);
  d.bytes = bytes.size();
  if (!streaming_bytes.empty()) {
    write_file_atomic(dir + "/model_streaming.espdl", streaming_bytes);
    d.side_files.push_back(dir + "/model_streaming.espdl");
  }
  write_file_atomic(dir + "/model.info", describe_program(p));
  write_file_atomic(dir + "/model.json", program_json(p).dump(1) + "\n");
  d.side_files.push_back(dir + "/model.info");
  d.side_files.push_back(dir + "/model.json");
  return d;
}

}  // namespace edgequant::deploy
