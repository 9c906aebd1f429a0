// AdaRound (blockwise reconstruction) on the TI NPU target at sub-8-bit weights: the
// Fashion-MNIST ResNet-style fixture at W4A8 and W2A8, PTQ (the defaults: MSE-optimal weight clips
// below 8 bits, the target's activation calibrator) vs the pipeline resumed from the calibrated plan with the adaround
// pass. Asserts: W4A8 with AdaRound within 0.5 point of float; W2A8 with AdaRound at least 5 points above W2A8 PTQ;
// every learned weight is at most one step from its nearest rounding. Prints "ADAROUND" lines.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cstdio>

#include "api/load.h"
#include "data/dataset.h"
#include "e2e/fashion_test_set.h"
#include "exec/kernel.h"
#include "ir/op_traits.h"
#include "passes/pipeline.h"
#include "quant/fake_quant.h"
#include "target/target.h"
#include "test_util.h"

using namespace edgequant;

namespace {
using edgequant::testing::fashion_top1;
const std::string kData = edgequant::testing::kFashionData;

class AdaRoundTi : public ::testing::TestWithParam<int> {};

TEST_P(AdaRoundTi, RecoversSubEightBitWeights) {
  int bits = GetParam();
  Setting s;
  s.weight_bits = bits;
  s.analysis.layerwise = false;
  s.adaround.steps = 1000;
  s.adaround.lr = 1e-3;
  QuantContext ctx(load_model(edgequant::testing::fixture("fashion/fmnist_resnet.onnx")), load_target("ti-npu"), s);
  attach_data(ctx, kData + "train-images-idx3-ubyte.gz");
  at::NoGradGuard no_grad;
  double float_top1 = fashion_top1([&](const at::Tensor& x) { return ctx.executor().run({x})[0]; });
  run_pipeline(ctx, {"prepare", "assign", "calibrate"});
  double ptq = fashion_top1([&](const at::Tensor& x) { return ctx.simulator().run({x})[0]; });
  std::map<const Value*, at::Tensor> original;
  for (const auto& op : ctx.graph->ops())
    if (is_compute_op(op->type)) original[op->input(1)] = ctx.executor().constant(op->input(1)).clone();
  run_pipeline(ctx, {"adaround"});
  double ada = fashion_top1([&](const at::Tensor& x) { return ctx.simulator().run({x})[0]; });
  double secs = 0;
  for (const auto& [name, t] : ctx.stats.pass_seconds)
    if (name == "adaround") secs = t;
  std::printf("ADAROUND fmnist_resnet ti-npu W%dA8  float %6.2f  PTQ %6.2f  AdaRound %6.2f  (%.1f s)\n", bits,
              float_top1, ptq, ada, secs);
  // Each learned weight lies on its grid and at most one step from the nearest rounding.
  for (const auto& [v, w0] : original) {
    const QuantConfig& c = *ctx.plan.find(v->name);
    auto [sc, z] = quant::scale_tensors(c, w0.dim(), w0.options());
    at::Tensor learned = ctx.executor().constant(v) / sc, nearest = quant::quantize_codes(w0, c);
    EXPECT_LE((learned - at::round(learned)).abs().max().item<double>(), 1e-3) << v->name;
    EXPECT_LE((at::round(learned) - nearest).abs().max().item<double>(), 1.0) << v->name;
  }
  if (bits == 4) EXPECT_GE(ada, float_top1 - 0.5);
  if (bits == 2) EXPECT_GE(ada, ptq + 5.0);
}

// The ti-npu target's defaults (the pipeline `edgequant quantize` runs: auto activation clips,
// MSE weight clips and bias correction below 8 bits) on the test set: W8A8 / W4A8 / W2A8. TI's
// own PTQ loses +0.1 / -0.2 / -11.0 points on its held-out model (float 93.3 %); here the
// losses are -0.16 / -0.55 / -10.75 (float 91.30). Figures recorded when the defaults changed.
// Within 0.05 point on any CPU: activation grids are powers of two (exponents move only for a
// range within a few ULPs of a rounding boundary), weight clips are fitted to the weights alone,
// and bias correction's float means reach the model only as rounded bias codes: the three cells
// were identical with every library's kernels swapped (ONEDNN_MAX_CPU_ISA=SSE41
// ATEN_CPU_CAPABILITY=default OPENBLAS_CORETYPE=Sandybridge). AdaRound above asserts margins
// (0.5 and 5 points) instead: its training moved W2A8 84.84 -> 85.01 with the kernels swapped.
TEST(TiDefaults, EveryWidth) {
  const std::map<int, double> recorded = {{8, 91.14}, {4, 90.75}, {2, 80.55}};
  for (const auto& [bits, want] : recorded) {
    Setting s;
    s.weight_bits = bits;
    s.analysis.layerwise = false;
    QuantContext ctx(load_model(edgequant::testing::fixture("fashion/fmnist_resnet.onnx")), load_target("ti-npu"), s);
    attach_data(ctx, kData + "train-images-idx3-ubyte.gz");
    run_pipeline(ctx, pipeline_for(ctx.setting()));
    at::NoGradGuard no_grad;
    double q = fashion_top1([&](const at::Tensor& x) { return ctx.simulator().run({x})[0]; });
    std::printf("TI DEFAULTS fmnist_resnet ti-npu W%dA8  %6.2f  (%s)\n", bits, q,
                ctx.calibration_report.chosen.c_str());
    EXPECT_NEAR(q, want, 0.05) << "W" << bits << "A8";
  }
}

INSTANTIATE_TEST_SUITE_P(Widths, AdaRoundTi, ::testing::Values(4, 2),
                         [](const auto& info) { return "W" + std::to_string(info.param) + "A8"; });
}  // namespace
