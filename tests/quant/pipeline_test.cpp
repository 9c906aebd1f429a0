// The pipeline over a QuantContext: multi-input calibration from an .npz keyed by input name
// (non-float inputs pass through, the held-out sample is not calibrated on), hooks composed in
// order, resuming from a pass without a data pass.
#include "passes/pipeline.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <filesystem>

#include "api/load.h"
#include "data/npy.h"
#include "edgequant/error.h"
#include "test_util.h"

using namespace edgequant;

namespace {
std::string tmp(const std::string& name) {
  return (std::filesystem::temp_directory_path() / ("eq_pipe_" + name)).string();
}

// y = Reshape(x, shape) + h: two float inputs and an int64 shape input shared by every sample.
std::unique_ptr<Graph> two_input_graph() {
  edgequant::testing::ModelBuilder b;
  b.input("x", {-1, 4}).input("h", {-1, 4}).input("shape", {2}, 7).output("y");
  b.node("Reshape", {"x", "shape"}, {"xr"}, "reshape");
  b.node("Add", {"xr", "h"}, {"y"}, "add");
  return load_model(b.save(tmp("two_inputs.onnx")));
}

TEST(Pipeline, CalibratesEveryFloatInputOfAMultiInputModel) {
  // Six samples; the last is held out for validation (no samples beyond calib_steps x batch), so
  // its large values must not reach the scales.
  std::vector<float> x(24, 0.25f), h(24, 0.125f);
  x[5] = -3.0f;    // sample 1: max |x| = 3 -> 3/127 -> 2^-5 (exponent rounded up)
  h[10] = 0.5f;    // sample 2: max |h| = 0.5 -> 0.5/127 -> 2^-7
  x[21] = 100.0f;  // sample 5 (held out)
  h[22] = 50.0f;
  write_npz(tmp("data.npz"), {{"x", Tensor::from_vector(DType::Float32, {6, 4}, x)},
                              {"h", Tensor::from_vector(DType::Float32, {6, 4}, h)},
                              {"shape", Tensor::from_vector(DType::Int64, {2}, std::vector<int64_t>{-1, 4})}});
  Setting s;
  s.calib_steps = 1;
  s.batch_size = 6;
  s.calib_algorithm = CalibAlgorithm::MinMax;
  s.alignment = Alignment::None;
  QuantContext ctx(two_input_graph(), load_target("esp32s3"), s);
  attach_data(ctx, tmp("data.npz"));
  EXPECT_EQ(ctx.calibration.size(), 5);
  EXPECT_EQ(ctx.validation.begin, 5);
  run_pipeline(ctx, {"prepare", "assign", "calibrate", "analyse"});
  EXPECT_EQ(ctx.plan.find("x")->exponents(), std::vector<int>{-5});
  EXPECT_EQ(ctx.plan.find("h")->exponents(), std::vector<int>{-7});
  EXPECT_EQ(ctx.plan.find("shape"), nullptr);  // int64: passed through, never quantized
  EXPECT_EQ(ctx.calibration_report.samples, 5);
  EXPECT_EQ(ctx.report->samples, 1);
  EXPECT_GT(ctx.report->output_noise_ratio, 0.0);  // the held-out sample clips: 100 > 127 * 2^-5
}

// The same six samples as a folder of .npz files, one sample each (batch dim 1), the shared
// int64 shape in every file: the same samples, scales and held-out split.
TEST(Pipeline, FolderOfNpzFilesOneSampleEach) {
  std::string dir = tmp("npz_folder");
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  std::vector<float> x(24, 0.25f), h(24, 0.125f);
  x[5] = -3.0f;
  h[10] = 0.5f;
  x[21] = 100.0f;
  for (int i = 0; i < 6; ++i)
    write_npz(dir + "/sample" + std::to_string(i) + ".npz",
              {{"x", Tensor::from_vector(DType::Float32, {1, 4},
                                         std::vector<float>(x.begin() + 4 * i, x.begin() + 4 * i + 4))},
               {"h", Tensor::from_vector(DType::Float32, {1, 4},
                                         std::vector<float>(h.begin() + 4 * i, h.begin() + 4 * i + 4))},
               {"shape", Tensor::from_vector(DType::Int64, {2}, std::vector<int64_t>{-1, 4})}});
  Setting s;
  s.calib_steps = 1;
  s.batch_size = 6;
  s.calib_algorithm = CalibAlgorithm::MinMax;
  s.alignment = Alignment::None;
  QuantContext ctx(two_input_graph(), load_target("esp32s3"), s);
  attach_data(ctx, dir);
  EXPECT_EQ(ctx.calibration.size(), 5);
  run_pipeline(ctx, {"prepare", "assign", "calibrate"});
  EXPECT_EQ(ctx.plan.find("x")->exponents(), std::vector<int>{-5});
  EXPECT_EQ(ctx.plan.find("h")->exponents(), std::vector<int>{-7});
  EXPECT_EQ(ctx.calibration_report.samples, 5);
}

TEST(Pipeline, MissingInputInTheDataIsNamed) {
  write_npz(tmp("partial.npz"), {{"x", Tensor::from_vector(DType::Float32, {2, 4}, std::vector<float>(8, 1.0f))}});
  QuantContext ctx(two_input_graph(), load_target("esp32s3"), Setting{});
  attach_data(ctx, tmp("partial.npz"));
  run_pipeline(ctx, {"prepare", "assign"});
  try {
    run_pipeline(ctx, {"calibrate"});
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::InvalidInput);
    EXPECT_NE(std::string(e.what()).find("no array for model input 'h'"), std::string::npos) << e.what();
  }
}

TEST(HookList, RunsBeforeAndAfterHooksInListOrder) {
  auto g = two_input_graph();
  exec::Executor ex(*g);
  std::vector<std::string> trace;
  exec::HookList hooks;
  for (const char* name : {"first", "second"}) {
    exec::ExecHooks h;
    h.before_op = [&trace, name](const Op& op, std::vector<at::Tensor>&) {
      trace.push_back(std::string("before ") + name + " " + op.name);
    };
    h.after_op = [&trace, name](const Op& op, std::vector<at::Tensor>& out) {
      trace.push_back(std::string("after ") + name + " " + op.name);
      out[0] = out[0] * 2;  // each hook doubles: the second sees the first's result
    };
    hooks.add(h);
  }
  at::Tensor x = at::ones({1, 4}), h = at::zeros({1, 4}), shape = at::tensor({-1, 4}, at::kLong);
  at::Tensor y = ex.run({x, h, shape}, &hooks)[0];
  // reshape: 1 * 2 * 2 = 4; add: (4 + 0) * 2 * 2 = 16.
  EXPECT_TRUE(at::equal(y, at::full({1, 4}, 16.0f)));
  std::vector<std::string> want = {"before first reshape", "before second reshape", "after first reshape",
                                   "after second reshape", "before first add",      "before second add",
                                   "after first add",      "after second add"};
  EXPECT_EQ(trace, want);
}

TEST(Pipeline, AnotherCalibratorReusesTheObservations) {
  std::vector<float> x(24), h(24);
  for (int i = 0; i < 24; ++i) {
    x[i] = static_cast<float>((i * 37) % 17) / 4 - 2;
    h[i] = static_cast<float>((i * 11) % 13) / 8;
  }
  write_npz(tmp("sweep.npz"), {{"x", Tensor::from_vector(DType::Float32, {6, 4}, x)},
                               {"h", Tensor::from_vector(DType::Float32, {6, 4}, h)},
                               {"shape", Tensor::from_vector(DType::Int64, {2}, std::vector<int64_t>{-1, 4})}});
  Setting s;
  s.calib_algorithm = CalibAlgorithm::KL;
  QuantContext ctx(two_input_graph(), load_target("esp32p4"), s);
  attach_data(ctx, tmp("sweep.npz"));
  run_pipeline(ctx, {"prepare", "assign", "calibrate"});
  EXPECT_EQ(ctx.stats.data_passes, 1);
  QuantPlan kl = ctx.plan;
  ctx.edit_setting().calib_algorithm = CalibAlgorithm::MinMax;
  run_pipeline(ctx, {"assign", "calibrate"});
  EXPECT_EQ(ctx.stats.data_passes, 1);  // no second pass over the data
  EXPECT_EQ(ctx.plan.find("x")->source, RangeSource::MinMax);
  EXPECT_EQ(kl.find("x")->source, RangeSource::KL);
  // auto scores its candidates on the samples the data pass kept: still one pass.
  ctx.edit_setting().calib_algorithm = CalibAlgorithm::Auto;
  run_pipeline(ctx, {"assign", "calibrate"});
  EXPECT_EQ(ctx.stats.data_passes, 1);
  EXPECT_EQ(ctx.calibration_report.chosen.rfind("auto (", 0), 0u) << ctx.calibration_report.chosen;
}
}  // namespace
