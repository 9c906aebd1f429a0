// The bias-correction pass on a toy layer: weights whose int8 rounding errs one way give the
// quantized conv a mean output error per channel; after the pass it is ~0, and the float
// reference still computes the original model.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <filesystem>

#include "api/load.h"
#include "data/npy.h"
#include "exec/kernel.h"
#include "passes/pipeline.h"
#include "test_util.h"

using namespace edgequant;

namespace {
TEST(BiasCorrection, DrivesTheMeanOutputErrorOfAToyLayerToZero) {
  // 3x3 conv, 2 -> 2 channels; every weight sits 0.4 of a step above a code at scale 2^-6 (per
  // tensor on esp32s3), so rounding loses 0.4 step in each, always the same way.
  std::vector<float> w(2 * 2 * 3 * 3);
  for (size_t i = 0; i < w.size(); ++i) w[i] = static_cast<float>((10 + (i % 5) + 0.4) / 64.0);
  w[0] = 1.0f;  // the maximum: scale 1/127 -> 2^-6 (rounded up)
  edgequant::testing::ModelBuilder b;
  b.input("x", {-1, 2, 6, 6}).output("y");
  b.initializer("w", {2, 2, 3, 3}, w).initializer("b", {2}, {0.05f, -0.1f});
  b.node("Conv", {"x", "w", "b"}, {"y"}, "conv");
  std::string dir = std::filesystem::temp_directory_path().string();
  auto g = load_model(b.save(dir + "/eq_bc.onnx"));
  at::manual_seed(11);
  at::Tensor x = at::rand({64, 2, 6, 6});  // positive inputs: the weight error adds up
  write_npy(dir + "/eq_bc.npy", exec::to_ir_tensor(x));
  Setting s;
  s.calib_steps = 4;
  s.batch_size = 16;
  s.calib_algorithm = CalibAlgorithm::MinMax;
  s.bias_correction_setting.steps = 4;
  QuantContext ctx(std::move(g), load_target("esp32s3"), s);
  attach_data(ctx, dir + "/eq_bc.npy");
  at::NoGradGuard no_grad;
  at::Tensor yf = ctx.executor().run({x})[0];
  auto mean_error = [&]() {
    at::Tensor yq = ctx.simulator().run({x})[0];
    return (yf - yq).mean(std::vector<int64_t>{0, 2, 3}).abs().max().item<double>();
  };
  run_pipeline(ctx, {"prepare", "assign", "calibrate"});
  double before = mean_error();
  run_pipeline(ctx, {"bias-correction"});
  double after = mean_error();
  EXPECT_GT(before, 0.05);  // 18 weights x 0.4 step x 2^-6 x E[x] = 0.056 per channel
  EXPECT_LT(after, 0.02 * before) << "before " << before << ", after " << after;
  // The float reference is the original model; the graph's bias now holds the correction.
  EXPECT_TRUE(at::equal(ctx.float_constants.at(ctx.graph->find_value("b")), at::tensor({0.05f, -0.1f})));
  EXPECT_FALSE(at::equal(ctx.executor().constant(ctx.graph->find_value("b")), at::tensor({0.05f, -0.1f})));
}
TEST(PassOptions, ACallersOptionsReplaceTheSettingsForThatRunOnly) {
  // The tuner's way to run a pass with other knobs: the pass built with its own typed options
  // uses them; the user's setting is untouched; a bare pass reads the setting.
  std::vector<float> w(2 * 2 * 3 * 3);
  for (size_t i = 0; i < w.size(); ++i) w[i] = static_cast<float>((10 + (i % 5) + 0.4) / 64.0);
  w[0] = 1.0f;
  edgequant::testing::ModelBuilder b;
  b.input("x", {-1, 2, 6, 6}).output("y");
  b.initializer("w", {2, 2, 3, 3}, w).initializer("b", {2}, {0.05f, -0.1f});
  b.initializer("w2", {2, 2, 3, 3}, w).initializer("b2", {2}, {0.05f, -0.1f});
  b.node("Conv", {"x", "w", "b"}, {"h"}, "conv1");
  b.node("Conv", {"h", "w2", "b2"}, {"y"}, "conv2");
  std::string dir = std::filesystem::temp_directory_path().string();
  auto g = load_model(b.save(dir + "/eq_bc_options.onnx"));
  at::manual_seed(11);
  write_npy(dir + "/eq_bc_options.npy", exec::to_ir_tensor(at::rand({64, 2, 6, 6})));
  Setting s;
  s.calib_steps = 4;
  s.batch_size = 16;
  s.bias_correction_setting.steps = 4;
  QuantContext ctx(std::move(g), load_target("esp32s3"), s);
  attach_data(ctx, dir + "/eq_bc_options.npy");
  run_pipeline(ctx, {"prepare", "assign", "calibrate"});
  const Value *b1 = ctx.graph->find_value("b"), *b2 = ctx.graph->find_value("b2");
  at::Tensor original = ctx.executor().constant(b1).clone();
  BiasCorrectionSetting second_only;
  second_only.interested_layers = {"conv2"};
  BiasCorrectionPass pass_with_options(second_only);
  run_pass(ctx, pass_with_options);
  EXPECT_TRUE(at::equal(ctx.executor().constant(b1), original));  // conv1 was not asked for
  EXPECT_FALSE(at::equal(ctx.executor().constant(b2), original));
  EXPECT_TRUE(ctx.setting().bias_correction_setting.interested_layers.empty());
  BiasCorrectionPass from_setting;
  run_pass(ctx, from_setting);
  EXPECT_FALSE(at::equal(ctx.executor().constant(b1), original));  // the setting: every conv
}
}  // namespace
