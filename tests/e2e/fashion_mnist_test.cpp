// Fashion-MNIST end to end: the committed float models (tools/gen_fixtures/train_fashion.py),
// quantized at 8 bits for esp32s3, esp32p4 and ort-int8 with every calibrator through the
// pipeline (one calibration data pass per target; the calibrators are a rerun of "calibrate"
// from the cached observations), simulated from the lowered integer form, scored on the
// 10 000-image test set, against the table recorded when the PTQ core landed. Prints the table
// ("TABLE"). Why the tolerances hold on any CPU:
// - float top-1 exact: kernels differ by a few ULPs of the logits, and the closest top-2 logits
//   of any test image are 280 ULPs of max |logit| apart (fmnist_resnet; 1984 for mobilenet), so
//   no argmax can flip;
// - power-of-two targets within 0.05 point: the simulation is exact arithmetic on the plan, and
//   the plan follows the float activations only through exponents (a range would have to sit
//   within a few ULPs of a power-of-two rounding boundary to move one): identical cells with
//   every library's kernels swapped (ONEDNN_MAX_CPU_ISA=SSE41 ATEN_CPU_CAPABILITY=default
//   OPENBLAS_CORETYPE=Sandybridge);
// - ort-int8 within 0.10 point: float scales carry the activations' last bits, which move
//   near-tie codes: up to 0.03 point (3 images) with the kernels swapped.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>

#include "api/load.h"
#include "data/dataset.h"
#include "e2e/fashion_test_set.h"
#include "exec/executor.h"
#include "passes/pipeline.h"
#include "target/target.h"
#include "test_util.h"

using namespace edgequant;

namespace {
using edgequant::testing::fashion_top1;
const std::string kData = edgequant::testing::kFashionData;

// Top-1 per target and calibrator (minmax, percentile, kl, mse), recorded by the PTQ core.
struct Expected {
  double float_top1;
  std::map<std::string, std::vector<double>> cells;
};
const std::map<std::string, Expected> kExpected = {
    {"fmnist_mobilenet",
     {91.04,
      {{"esp32s3", {90.82, 90.92, 90.84, 90.86}},
       {"esp32p4", {91.01, 91.07, 90.95, 91.03}},
       {"ort-int8", {91.06, 91.02, 91.06, 91.03}}}}},
    {"fmnist_resnet",
     {91.30,
      {{"esp32s3", {91.30, 91.26, 91.34, 91.22}},
       {"esp32p4", {91.21, 91.14, 91.39, 91.10}},
       {"ort-int8", {91.36, 91.28, 91.52, 91.32}}}}},
};

class FashionMnist : public ::testing::TestWithParam<std::string> {};

TEST_P(FashionMnist, TableMatchesRecordedFigures) {
  const std::string model = GetParam();
  const Expected& want = kExpected.at(model);
  auto calib = std::shared_ptr<const Dataset>(open_dataset(kData + "train-images-idx3-ubyte.gz", {}));
  for (const std::string target_name : {"esp32s3", "esp32p4", "ort-int8"}) {
    QuantContext ctx(load_model(edgequant::testing::fixture("fashion/" + model + ".onnx")), load_target(target_name),
                     Setting{});
    ctx.calibration = {calib, 0, 32 * 32, "first 1024 training images"};
    at::NoGradGuard no_grad;
    double float_top1 = fashion_top1([&](const at::Tensor& x) { return ctx.executor().run({x})[0]; });
    EXPECT_NEAR(float_top1, want.float_top1, 1e-9) << model;
    run_pipeline(ctx, {"prepare", "assign"});
    const QuantPlan assigned = ctx.plan;
    const char* algos[] = {"minmax", "percentile", "kl", "mse"};
    for (int k = 0; k < 4; ++k) {
      ctx.plan = assigned;  // a cloned plan; observations stay cached in the context
      ctx.edit_setting().calib_algorithm = parse_calib_algorithm(algos[k]);
      run_pipeline(ctx, {"calibrate", "lower"});
      quant::QuantSimulator& sim = ctx.simulator();
      ASSERT_TRUE(sim.from_lowered_form());
      double q = fashion_top1([&](const at::Tensor& x) { return sim.run({x})[0]; });
      double expected = want.cells.at(target_name)[k];
      std::printf("TABLE %-17s %-9s %-11s float %6.2f  quantized %6.2f  delta %+5.2f  (recorded %6.2f)\n",
                  model.c_str(), target_name.c_str(), algos[k], float_top1, q, q - float_top1, expected);
      double tolerance = ctx.target.scale_kind == ScaleKind::PowerOfTwo ? 0.05 : 0.10;
      EXPECT_NEAR(q, expected, tolerance) << model << " " << target_name << " " << algos[k];
    }
    EXPECT_EQ(ctx.stats.data_passes, 1) << "one calibration data pass serves every calibrator";
  }
}

INSTANTIATE_TEST_SUITE_P(Models, FashionMnist, ::testing::Values("fmnist_mobilenet", "fmnist_resnet"),
                         [](const auto& info) { return info.param; });
}  // namespace
