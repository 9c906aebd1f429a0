// AdaRound (blockwise reconstruction) on the TI NPU target at sub-8-bit weights: the
// Fashion-MNIST ResNet-style fixture at W4A8 and W2A8, PTQ (minmax weights, the target's default
// calibrator) vs the pipeline resumed from the calibrated plan with the adaround pass. Asserts:
// W4A8 with AdaRound within 0.5 point of float; W2A8 with AdaRound at least 5 points above W2A8
// PTQ; every learned weight is at most one step from its nearest rounding. Prints "ADAROUND" lines.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cstdio>

#include "api/load.h"
#include "data/dataset.h"
#include "exec/kernel.h"
#include "ir/op_traits.h"
#include "passes/pipeline.h"
#include "quant/fake_quant.h"
#include "target/target.h"
#include "test_util.h"

using namespace edgequant;

namespace {
const std::string kData = "/usr/share/datasets/fashion-mnist/";

double top1(const std::function<at::Tensor(const at::Tensor&)>& model) {
  static std::vector<at::Tensor> batches, labels;
  if (batches.empty()) {
    auto ds = open_dataset(kData + "t10k-images-idx3-ubyte.gz", {});
    quant::BatchStream stream(*ds, 1000, 10);
    at::Tensor b;
    int64_t offset = 0;
    while (stream.next(b)) {
      std::vector<int64_t> l;
      for (int64_t i = 0; i < b.size(0); ++i) l.push_back(ds->label(offset + i));
      offset += b.size(0);
      batches.push_back(b);
      labels.push_back(at::tensor(l, at::kLong));
    }
  }
  int64_t correct = 0, total = 0;
  for (size_t i = 0; i < batches.size(); ++i) {
    correct += model(batches[i]).argmax(1).eq(labels[i]).sum().item<int64_t>();
    total += batches[i].size(0);
  }
  return 100.0 * correct / total;
}

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
  double float_top1 = top1([&](const at::Tensor& x) { return ctx.executor().run({x})[0]; });
  run_pipeline(ctx, {"prepare", "assign", "calibrate"});
  double ptq = top1([&](const at::Tensor& x) { return ctx.simulator().run({x})[0]; });
  std::map<const Value*, at::Tensor> original;
  for (const auto& op : ctx.graph->ops())
    if (is_compute_op(op->type)) original[op->input(1)] = ctx.executor().constant(op->input(1)).clone();
  run_pipeline(ctx, {"adaround"});
  double ada = top1([&](const at::Tensor& x) { return ctx.simulator().run({x})[0]; });
  double secs = 0;
  for (const auto& [name, t] : ctx.stats.pass_seconds)
    if (name == "adaround") secs = t;
  std::printf("ADAROUND fmnist_resnet ti-npu W%dA8  float %6.2f  PTQ %6.2f  AdaRound %6.2f  (%.1f s)\n", bits, float_top1, ptq,
              ada, secs);
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

INSTANTIATE_TEST_SUITE_P(Widths, AdaRoundTi, ::testing::Values(4, 2), [](const auto& info) {
  return "W" + std::to_string(info.param) + "A8";
});
}  // namespace
