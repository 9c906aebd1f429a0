// TQT on Fashion-MNIST (the PTQ fixtures; 10 000-image test set): for esp32s3 and esp32p4 at
// 8 bits, PTQ with KL (ESP-PPQ's default), then the pipeline resumed from the
// calibrated plan with the tqt pass (500 steps, block size 4, batch 32, lr 1.25e-4, biases trained). Asserts:
// TQT >= min(PTQ, float) top-1 - 0.05; TQT at most 0.05 point below float on the depthwise model on esp32s3; TQT at
// least halves the graph-output noise:signal of PTQ on the validation samples (1000 training
// images calibration never saw). Prints lines starting with "TQT".
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cstdio>

#include "api/load.h"
#include "data/dataset.h"
#include "e2e/fashion_test_set.h"
#include "passes/pipeline.h"
#include "target/target.h"
#include "test_util.h"

using namespace edgequant;

namespace {
using edgequant::testing::fashion_top1;
const std::string kData = edgequant::testing::kFashionData;

class TqtFashion : public ::testing::TestWithParam<std::tuple<std::string, std::string>> {};

TEST_P(TqtFashion, BeatsPtqAndHalvesOutputNoise) {
  auto [model, target] = GetParam();
  Setting s;
  s.analysis.samples = 1000;
  s.analysis.layerwise = false;
  // ESP-PPQ's TQT flow starts from KL (the targets' default until auto): the figures below were
  // recorded from that start. From auto's better start TQT cuts the noise by 0.45-0.64x instead.
  s.calib_algorithm = CalibAlgorithm::KL;
  s.tqt.lr = 1.25e-4;
  if (const char* lr = std::getenv("EQ_TQT_LR")) s.tqt.lr = std::atof(lr);
  if (const char* st = std::getenv("EQ_TQT_STEPS")) s.tqt.steps = std::atoi(st);
  if (const char* sl = std::getenv("EQ_TQT_SCALE_LR")) s.tqt.scale_lr = std::atof(sl);
  QuantContext ctx(load_model(edgequant::testing::fixture("fashion/" + model + ".onnx")), load_target(target), s);
  attach_data(ctx, kData + "train-images-idx3-ubyte.gz");
  at::NoGradGuard no_grad;
  double float_top1 = fashion_top1([&](const at::Tensor& x) { return ctx.executor().run({x})[0]; });
  run_pipeline(ctx, {"prepare", "assign", "calibrate", "analyse"});
  double ptq_noise = ctx.report->output_noise_ratio;
  double ptq_top1 = fashion_top1([&](const at::Tensor& x) { return ctx.simulator().run({x})[0]; });
  // Resume from the calibrated plan: train, then analyse again.
  run_pipeline(ctx, {"tqt", "analyse"});
  double tqt_noise = ctx.report->output_noise_ratio;
  ASSERT_TRUE(ctx.simulator().from_lowered_form());
  double tqt_top1 = fashion_top1([&](const at::Tensor& x) { return ctx.simulator().run({x})[0]; });
  double tqt_s = 0;
  for (const auto& [name, secs] : ctx.stats.pass_seconds)
    if (name == "tqt") tqt_s = secs;
  std::printf("TQT %-17s %-8s float %6.2f  PTQ %6.2f (noise %.5f)  TQT %6.2f (noise %.5f)  tqt %.1f s\n", model.c_str(),
              target.c_str(), float_top1, ptq_top1, ptq_noise, tqt_top1, tqt_noise, tqt_s);
  // Never worse than PTQ or float beyond a few images in 10000 (the guarded KL puts the ResNet's
  // PTQ above float already: 91.39 vs 91.30), and the output noise at least halves. Training
  // follows float gradients whose last bits depend on the CPU's kernels: with every library's
  // kernels swapped for older ones (ONEDNN_MAX_CPU_ISA=SSE41 ATEN_CPU_CAPABILITY=default
  // OPENBLAS_CORETYPE=Sandybridge) TQT's top-1 moved by up to 0.06 point (ResNet esp32p4 91.38 ->
  // 91.32), all four cells still at or above min(PTQ, float); hence 0.05 below it, not one image.
  EXPECT_GE(tqt_top1, std::min(ptq_top1, float_top1) - 0.05);
  EXPECT_LE(tqt_noise, 0.5 * ptq_noise);
  if (model == "fmnist_mobilenet" && target == "esp32s3") EXPECT_GE(tqt_top1, float_top1 - 0.05);
  // Every trained scale was baked as an exact power of two.
  for (const auto& [name, c] : ctx.plan.values)
    if (c.source == RangeSource::Trained)
      for (double sc : c.scales) EXPECT_EQ(sc, std::ldexp(1.0, static_cast<int>(std::lround(std::log2(sc))))) << name;
}

INSTANTIATE_TEST_SUITE_P(Models, TqtFashion,
                         ::testing::Combine(::testing::Values("fmnist_mobilenet", "fmnist_resnet"),
                                            ::testing::Values("esp32s3", "esp32p4")),
                         [](const auto& info) { return std::get<0>(info.param) + "_" + std::get<1>(info.param); });
}  // namespace
