// Running float, simulated and integer models (see run.h).
#include "api/run.h"

#include <ATen/ATen.h>

#include <filesystem>

#include "api/load.h"
#include "deploy/deployable.h"
#include "deploy/espdl.h"
#include "deploy/integer_program.h"
#include "edgequant/error.h"
#include "exec/executor.h"
#include "exec/kernel.h"
#include "quant/lower.h"
#include "quant/plan_io.h"
#include "quant/simulator.h"

namespace edgequant {

const char* run_mode_name(RunMode m) {
  switch (m) {
    case RunMode::Float:
      return "float executor";
    case RunMode::Simulation:
      return "quantized simulation";
    case RunMode::IntegerRuntime:
      return "integer runtime";
  }
  return "?";
}

RunMode run_mode_of(const std::string& path) {
  if (std::filesystem::is_directory(path)) return RunMode::Simulation;
  if (path.size() > 6 && path.substr(path.size() - 6) == ".espdl") return RunMode::IntegerRuntime;
  return RunMode::Float;
}

std::vector<std::string> input_names(const std::string& path) {
  RunMode m = run_mode_of(path);
  if (m == RunMode::IntegerRuntime) return deploy::read_espdl(path).inputs;
  auto g = load_model(m == RunMode::Simulation ? path + "/model.onnx" : path);
  std::vector<std::string> names;
  for (const Value* v : g->inputs) names.push_back(v->name);
  return names;
}

namespace {
Tensor to_float(const Tensor& t) {
  std::vector<double> d = t.to_doubles();
  std::vector<float> f(d.begin(), d.end());
  return Tensor::from_vector(DType::Float32, t.shape(), f);
}

// The program is compiled at batch 1 (ESP-DL's static shapes): a batch runs sample by sample.
NamedTensors run_program_file(const std::string& path, std::map<std::string, Tensor>& feeds,
                              const std::string& target) {
  runtime::IntGraph p = deploy::read_espdl(path, target);
  std::vector<Tensor> inputs;
  int64_t batch = -1;
  for (const std::string& name : p.inputs) {
    auto it = feeds.find(name);
    if (it == feeds.end()) fail(ErrorCode::InvalidInput, "no data given for model input '" + name + "'");
    inputs.push_back(to_float(it->second));
    feeds.erase(it);
    int64_t n = inputs.back().shape().empty() ? 1 : inputs.back().shape()[0];
    if (batch >= 0 && n != batch) fail(ErrorCode::InvalidInput, "inputs have different batch sizes");
    batch = n;
  }
  std::vector<std::vector<float>> outs(p.outputs.size());
  std::vector<Shape> out_shapes(p.outputs.size());
  // A streaming program keeps its caches from one sample to the next, as the chip does between
  // Model::run calls: the samples are consecutive chunks of one stream, starting from reset.
  runtime::TensorMap state;
  bool streaming = runtime::is_streaming(p);
  for (int64_t b = 0; b < std::max<int64_t>(batch, 1); ++b) {
    std::vector<std::vector<float>> sample;
    std::vector<Shape> shapes;
    for (const Tensor& f : inputs) {
      Shape one = f.shape();
      int64_t per = one.empty() ? 1 : f.numel() / std::max<int64_t>(one[0], 1);
      if (!one.empty()) one[0] = 1;
      sample.emplace_back(f.data<float>() + b * per, f.data<float>() + (b + 1) * per);
      shapes.push_back(one);
    }
    std::vector<std::vector<float>> out =
        deploy::run_source_sample(p, sample, shapes, &out_shapes, streaming ? &state : nullptr);
    for (size_t k = 0; k < p.outputs.size(); ++k) outs[k].insert(outs[k].end(), out[k].begin(), out[k].end());
  }
  NamedTensors named;
  for (size_t k = 0; k < p.outputs.size(); ++k) {
    Shape shape = out_shapes[k];
    if (!shape.empty()) shape[0] *= std::max<int64_t>(batch, 1);
    named.emplace_back(p.outputs[k], Tensor::from_vector(DType::Float32, shape, outs[k]));
  }
  return named;
}
}  // namespace

NamedTensors run_any(const std::string& path, std::map<std::string, Tensor> feeds, RunMode* mode_out,
                     const std::string& espdl_target) {
  RunMode mode = run_mode_of(path);
  if (mode_out) *mode_out = mode;
  NamedTensors named;
  try {
    if (mode == RunMode::IntegerRuntime) {
      named = run_program_file(path, feeds, espdl_target);
    } else {
      auto g = load_model(mode == RunMode::Simulation ? path + "/model.onnx" : path);
      std::vector<at::Tensor> inputs;
      for (const Value* v : g->inputs) {
        auto it = feeds.find(v->name);
        if (it == feeds.end()) fail(ErrorCode::InvalidInput, "no data given for model input '" + v->name + "'");
        inputs.push_back(exec::to_aten(it->second));
        feeds.erase(it);
      }
      exec::Executor ex(*g);
      std::vector<at::Tensor> outs;
      at::NoGradGuard no_grad;
      if (mode == RunMode::Simulation) {
        QuantPlan plan = quant::read_plan(path + "/quant_config.json");
        plan.verify(*g, ErrorCode::InvalidInput);
        // From the lowered integer form, as the pipeline and `evaluate` simulate.
        LoweredModel lowered = quant::lower(*g, plan, load_directory_target(path, plan), ex);
        quant::QuantSimulator sim(*g, plan, ex, &lowered);
        outs = sim.run(inputs);
      } else {
        outs = ex.run(inputs);
      }
      for (size_t i = 0; i < outs.size(); ++i)
        named.emplace_back(g->outputs[i]->name, exec::to_ir_tensor(outs[i].contiguous()));
    }
  } catch (Error& e) {
    throw e.add_context(path);
  }
  if (!feeds.empty())
    fail(ErrorCode::InvalidInput, path + ": the model has no input named '" + feeds.begin()->first + "'");
  return named;
}

size_t embed_test_values(const std::string& path, const std::map<std::string, Tensor>& feeds,
                         const std::string& out_path, const std::string& target) {
  runtime::IntGraph p = deploy::read_espdl(path, target);
  try {
    std::vector<at::Tensor> first;  // sample 0 of each input, as `quantize` embeds its calibration sample
    for (const std::string& name : p.inputs) {
      auto it = feeds.find(name);
      if (it == feeds.end()) fail(ErrorCode::InvalidInput, "no data given for model input '" + name + "'");
      first.push_back(exec::to_aten(to_float(it->second)).slice(0, 0, 1).contiguous());
    }
    deploy::attach_test_values(p, first);
  } catch (Error& e) {
    throw e.add_context(path);
  }
  deploy::write_espdl(p, out_path);
  return p.test_outputs.size();
}

runtime::SelfTestResult self_test_espdl(const std::string& path, const std::string& target) {
  runtime::IntGraph p = deploy::read_espdl(path, target);
  try {
    return runtime::self_test(p);
  } catch (Error& e) {
    throw e.add_context(path);
  }
}

}  // namespace edgequant
