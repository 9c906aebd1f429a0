// The fixture models with their calibration data, and what the parameterised fixture tests share:
// a context calibrated and lowered on a few samples, and test names like "resnet_style_op13_ort_int8".
#pragma once
#include <gtest/gtest.h>

#include <functional>
#include <memory>
#include <ostream>
#include <string>
#include <tuple>
#include <vector>

#include "api/load.h"
#include "data/dataset.h"
#include "deploy/integer_program.h"
#include "passes/pipeline.h"
#include "quant/simulator.h"
#include "runtime/interpreter.h"
#include "target/target.h"
#include "test_util.h"

namespace edgequant::testing {

const std::string kFashionTrain = "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz";

struct FixtureCase {
  std::string model, data;  // model relative to tests/fixtures; data a path
  // The model computes float functions (Sigmoid, bilinear Resize) where exactness ends (int16
  // without tables; TI's CPU fallbacks): suites loosen to 1 LSB there and say why.
  bool float_functions = false;
};
inline void PrintTo(const FixtureCase& c, std::ostream* os) { *os << c.model; }

// "fashion/fmnist_resnet" -> Fashion-MNIST; "models/X_op13" -> models/X_input.npy.
inline FixtureCase fixture_case(const std::string& stem, bool float_functions = false) {
  std::string data =
      stem.rfind("fashion/", 0) == 0 ? kFashionTrain : fixture(stem.substr(0, stem.rfind("_op")) + "_input.npy");
  return {stem + ".onnx", data, float_functions};
}

// The six fixture models; `detection_head_flag` marks the detection head's float functions.
inline std::vector<FixtureCase> fixture_models(bool detection_head_flag = false) {
  return {fixture_case("fashion/fmnist_mobilenet"),
          fixture_case("fashion/fmnist_resnet"),
          fixture_case("models/mobilenetv2_style_op13"),
          fixture_case("models/resnet_style_op13"),
          fixture_case("models/detection_head_op13", detection_head_flag),
          fixture_case("models/batchnorm_op13")};
}

// The pipeline through `lower` on at most `samples` samples of the case's data (one batch).
// `c.model` is relative to tests/fixtures, or an absolute path (a model a test built).
inline std::unique_ptr<QuantContext> calibrated(const FixtureCase& c, const std::string& target, int64_t samples,
                                                Setting s = Setting{}) {
  s.calib_steps = 1;
  s.batch_size = static_cast<int>(samples);
  std::string path = !c.model.empty() && c.model[0] == '/' ? c.model : fixture(c.model);
  auto ctx = std::make_unique<QuantContext>(load_model(path), load_target(target), s);
  auto data = std::shared_ptr<const Dataset>(open_dataset(c.data, {}));
  ctx->calibration = {data, 0, std::min<int64_t>(data->size(), samples), "fixture"};
  run_pipeline(*ctx, {"prepare", "assign", "calibrate", "lower"});
  return ctx;
}

// The first `samples` calibration samples of a calibrated context, one at a time (batch 1), each
// with the simulation's outputs and the program's input: the sample moved to the program's layout
// and quantized, as run_program takes it.
inline void for_each_program_sample(
    QuantContext& ctx, const runtime::IntGraph& prog, int samples,
    const std::function<void(const runtime::TensorMap& input, const std::vector<at::Tensor>& simulated)>& fn) {
  quant::QuantSimulator& sim = ctx.simulator();
  quant::BatchStream stream = ctx.batches(ctx.calibration);
  at::Tensor x;
  at::NoGradGuard no_grad;
  int seen = 0;
  while (seen < samples && stream.next(x)) {
    for (int64_t b = 0; b < x.size(0) && seen < samples; ++b, ++seen) {
      at::Tensor xi = x.slice(0, b, b + 1).contiguous();
      std::vector<at::Tensor> want = sim.run({xi});
      const std::string& in_name = prog.inputs[0];
      std::vector<float> xv(xi.data_ptr<float>(), xi.data_ptr<float>() + xi.numel());
      Shape ps;
      std::vector<float> xp =
          deploy::to_program_layout(prog, in_name, xv, Shape(xi.sizes().begin(), xi.sizes().end()), &ps);
      runtime::TensorMap in;
      in[in_name] = runtime::quantize_for_input(prog, in_name, xp, ps);
      fn(in, want);
    }
  }
}

// Test names: the model file's stem, and the target with '-' as '_'.
inline std::string case_name(const FixtureCase& c, std::string target = "") {
  std::string m = c.model.substr(c.model.find('/') + 1);
  m = m.substr(0, m.find('.'));
  for (auto& ch : target)
    if (ch == '-') ch = '_';
  return target.empty() ? m : m + "_" + target;
}
struct CaseName {
  std::string operator()(const ::testing::TestParamInfo<std::tuple<FixtureCase, std::string>>& info) const {
    return case_name(std::get<0>(info.param), std::get<1>(info.param));
  }
  std::string operator()(const ::testing::TestParamInfo<FixtureCase>& info) const { return case_name(info.param); }
};

}  // namespace edgequant::testing
