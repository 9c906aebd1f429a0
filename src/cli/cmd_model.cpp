// `edgequant info` and `edgequant run`: look at a model, run float inference.
#include <ATen/ATen.h>

#include <filesystem>
#include <iomanip>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>

#include "api/load.h"
#include "api/run.h"
#include "cli/commands.h"
#include "core/files.h"
#include "data/npy.h"
#include "deploy/deployable.h"
#include "deploy/espdl.h"
#include "exec/executor.h"
#include "exec/kernel.h"
#include "onnx/onnx_io.h"

namespace edgequant::cli {

namespace {

std::string type_str(const Value* v) {
  std::string s = dtype_name(v->dtype);
  if (!v->shape) return s + " [?]";
  s += " [";
  for (size_t i = 0; i < v->shape->size(); ++i) {
    if (i) s += ",";
    int64_t d = (*v->shape)[i];
    s += d >= 0 ? std::to_string(d) : (i < v->dim_names.size() && !v->dim_names[i].empty() ? v->dim_names[i] : "?");
  }
  return s + "]";
}

void info_espdl(const std::string& path, const std::string& target);

void info(const std::string& path, bool json_out, bool raw, const std::string& target) {
  if (run_mode_of(path) == RunMode::IntegerRuntime) return info_espdl(path, target);
  if (run_mode_of(path) == RunMode::Simulation) {
    if (!std::filesystem::exists(path + "/model.espdl"))
      fail(ErrorCode::InvalidInput, path + ": no model.espdl in this directory (quantize with --format espdl)");
    return info_espdl(path + "/model.espdl", target);
  }
  auto g = load_model(path, !raw);
  std::map<std::string, int> histogram;
  std::vector<std::string> unsupported;
  for (const auto& op : g->ops()) {
    ++histogram[op->type];
    if (!exec::find_kernel_factory(op->type) || !op->domain.empty()) unsupported.push_back(op->describe());
  }
  auto [params, bytes] = parameter_stats(*g);
  if (json_out) {
    nlohmann::json j;
    j["model"] = path;
    j["opset"] = g->opset;
    j["producer"] = g->producer_name;
    for (const Value* v : g->inputs) j["inputs"].push_back({{"name", v->name}, {"type", type_str(v)}});
    for (const Value* v : g->outputs) j["outputs"].push_back({{"name", v->name}, {"type", type_str(v)}});
    j["ops"] = histogram;
    j["op_count"] = g->ops().size();
    j["parameters"] = params;
    j["parameter_bytes"] = bytes;
    j["unsupported"] = unsupported;
    std::cout << j.dump(2) << "\n";
    return;
  }
  std::cout << "model: " << path << "\n";
  std::cout << "opset: " << g->opset << "   producer: " << (g->producer_name.empty() ? "?" : g->producer_name)
            << "   ir_version: " << g->ir_version << "\n";
  std::cout << "inputs:\n";
  for (const Value* v : g->inputs) std::cout << "  " << v->name << "  " << type_str(v) << "\n";
  std::cout << "outputs:\n";
  for (const Value* v : g->outputs) std::cout << "  " << v->name << "  " << type_str(v) << "\n";
  std::cout << "ops (" << g->ops().size() << (raw ? ", as stored" : ", after normalisation") << "):\n";
  for (const auto& [type, n] : histogram) std::cout << "  " << std::left << std::setw(24) << type << n << "\n";
  std::cout << "parameters: " << params << " (" << std::fixed << std::setprecision(2) << bytes / 1048576.0 << " MiB)\n";
  std::cout << "unsupported: " << (unsupported.empty() ? "none" : "") << "\n";
  for (const auto& u : unsupported) std::cout << "  " << u << "\n";
}

void run(const std::string& model, const std::vector<std::string>& input_args, const std::string& output,
         const std::string& target, const std::string& embed) {
  RunMode mode = run_mode_of(model);
  if (!target.empty() && mode != RunMode::IntegerRuntime)
    fail(ErrorCode::InvalidInput, "--target applies to .espdl files only (a quantize directory keeps its target)");
  if (input_args.empty()) {
    // No inputs: the .espdl file's embedded self-test (the host's Model::test()).
    if (mode != RunMode::IntegerRuntime)
      fail(ErrorCode::InvalidInput, "--input is required (only .espdl files carry test inputs)");
    runtime::IntGraph p = deploy::read_espdl(model, target);
    if (p.test_outputs.empty())
      fail(ErrorCode::InvalidInput,
           model +
               ": the file carries no test values (ESP-PPQ writes them only with export_test_values=True), so "
               "there is no self-test to run; run it on an input: edgequant run " +
               model + " --input X.npy --output out.npz");
    std::cout << "rounding: " << rounding_mode_name(p.rounding)
              << (p.rounding_assumed ? " (" + p.rounding_basis + ")" : " (the target's)") << "\n";
    runtime::SelfTestResult r = self_test_espdl(model, target);
    for (const auto& line : r.lines) std::cout << line << "\n";
    if (!r.passed) fail(ErrorCode::InvalidModel, model + ": Model::test() FAIL: the embedded test outputs differ");
    std::cout << "Model::test() PASS\n";
    return;
  }
  if (output.empty()) fail(ErrorCode::InvalidInput, "--output is required with --input");
  std::vector<std::string> names = input_names(model);
  std::map<std::string, Tensor> feeds;
  for (const auto& arg : input_args) {
    auto eq = arg.find('=');
    std::string name = eq == std::string::npos ? "" : arg.substr(0, eq);
    std::string file = eq == std::string::npos ? arg : arg.substr(eq + 1);
    if (file.size() > 4 && file.substr(file.size() - 4) == ".npz") {
      for (auto& [key, t] : read_npz(file)) feeds[key] = std::move(t);
      continue;
    }
    if (name.empty()) {
      if (names.size() != 1)
        fail(ErrorCode::InvalidInput, "--input " + arg + ": the model has " + std::to_string(names.size()) +
                                          " inputs, name them as NAME=FILE.npy");
      name = names[0];
    }
    feeds[name] = read_npy(file);
  }
  if (!embed.empty() && mode != RunMode::IntegerRuntime)
    fail(ErrorCode::InvalidInput, "--embed-test-values needs a .espdl model");
  if (!embed.empty() && std::filesystem::exists(embed) && std::filesystem::equivalent(embed, model))
    fail(ErrorCode::InvalidInput, "--embed-test-values " + embed + " would overwrite the model; give another path");
  NamedTensors named = run_any(model, feeds, nullptr, target);
  if (output.size() > 4 && output.substr(output.size() - 4) == ".npy") {
    if (named.size() != 1) fail(ErrorCode::InvalidInput, output + ": the model has several outputs, write a .npz");
    write_npy(output, named[0].second);
  } else {
    write_npz(output, named);
  }
  std::cout << "ran " << model << " (" << run_mode_name(mode) << ")\n";
  if (mode == RunMode::IntegerRuntime && runtime::is_streaming(deploy::read_espdl(model, target)))
    std::cout << "streaming model: the batch ran as consecutive chunks of one stream, caches carried from sample "
                 "to sample (from reset)\n";
  if (!embed.empty()) {
    size_t n = embed_test_values(model, feeds, embed, target);
    std::cout << "wrote " << embed << ": the model with sample 0 and its " << n
              << " output(s) as test values (Model::test() input)\n";
  }
  for (const auto& [name, t] : named)
    std::cout << name << "  " << dtype_name(t.dtype()) << " " << shape_str(t.shape()) << "\n";
}

void info_espdl(const std::string& path, const std::string& target) {
  runtime::IntGraph p = deploy::read_espdl(path, target);
  std::cout << "file: " << path << " (" << file_size(path) << " bytes)\n" << deploy::describe_program(p);
}

}  // namespace

void add_model_commands(CLI::App& app, Action& action) {
  auto* info_cmd = app.add_subcommand(
      "info",
      "ONNX: inputs, outputs, opset, op histogram, parameters, unsupported ops; .espdl (or a quantize directory): "
      "nodes, exponents, parameter bytes per dtype, activation memory");
  static std::string info_model;
  static bool info_json = false, info_raw = false;
  static std::string info_target;
  info_cmd->add_option("model", info_model, "ONNX model")->required();
  info_cmd->add_flag("--json", info_json, "machine-readable output");
  info_cmd->add_flag("--raw", info_raw, "show the graph as stored, before normalisation");
  info_cmd->add_option("--target,-t", info_target,
                       ".espdl: the chip it is for (sets the rounding when the file does not name its target)");
  info_cmd->callback([&action] { action = [] { info(info_model, info_json, info_raw, info_target); }; });

  auto* run_cmd = app.add_subcommand(
      "run",
      "Inference: float ONNX, a quantize output directory (simulation) or .espdl (integer runtime); "
      ".npy/.npz in (NCHW float), .npz (or .npy) out. A .espdl without --input runs its embedded self-test; a "
      "streaming .espdl runs the batch as consecutive chunks of one stream");
  static std::string run_model, run_output, run_target, run_embed;
  static std::vector<std::string> run_inputs;
  run_cmd->add_option("model", run_model, "ONNX model, quantize output directory or .espdl file")->required();
  run_cmd->add_option("--input,-i", run_inputs, "NAME=FILE.npy, FILE.npy (single-input models) or FILE.npz");
  run_cmd->add_option("--output,-o", run_output, "output .npz (or .npy for one output)");
  run_cmd->add_option("--target,-t", run_target,
                      ".espdl: the chip it is for (sets the rounding when the file does not name its target)");
  run_cmd->add_option("--embed-test-values", run_embed,
                      ".espdl: also write a copy of the model to this path with the first sample and its outputs as "
                      "test values (for Model::test() on the chip)");
  run_cmd->callback([&action] { action = [] { run(run_model, run_inputs, run_output, run_target, run_embed); }; });

  auto* export_cmd = app.add_subcommand("export-onnx", "Write the normalised float graph as ONNX");
  static std::string ex_model, ex_out;
  export_cmd->add_option("model", ex_model, "ONNX model")->required();
  export_cmd->add_option("--output,-o", ex_out, "output .onnx")->required();
  export_cmd->callback([&action] {
    action = [] {
      auto g = load_model(ex_model);
      export_onnx(*g, ex_out);
      std::cout << "wrote " << ex_out << " (" << g->ops().size() << " ops)\n";
    };
  });
}

}  // namespace edgequant::cli
