// The lowered integer form: simulating from it equals the plan's simulation bit for bit on every
// fixture model and target; requantization shifts and lookup tables against hand-computed values.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>

#include "api/load.h"
#include "data/dataset.h"
#include "data/npy.h"
#include "exec/executor.h"
#include "exec/kernel.h"
#include "passes/pipeline.h"
#include "quant/fake_quant.h"
#include "quant/lower.h"
#include "quant/quantizer.h"
#include "target/target.h"
#include "fixture_cases.h"

using namespace edgequant;
using namespace edgequant::testing;

namespace {
class LoweredSimulation : public ::testing::TestWithParam<std::tuple<FixtureCase, std::string>> {};

TEST_P(LoweredSimulation, EqualsThePlanSimulationBitForBit) {
  auto [c, target] = GetParam();
  auto owned = calibrated(c, target, 64);
  QuantContext& ctx = *owned;
  quant::QuantSimulator from_plan(*ctx.graph, ctx.plan, ctx.executor());
  quant::QuantSimulator& from_lowered = ctx.simulator();
  ASSERT_TRUE(from_lowered.from_lowered_form());
  quant::BatchStream stream = ctx.batches(ctx.calibration);
  at::Tensor x;
  ASSERT_TRUE(stream.next(x));
  at::NoGradGuard no_grad;
  std::vector<at::Tensor> a = from_plan.run({x}), b = from_lowered.run({x});
  for (size_t i = 0; i < a.size(); ++i)
    EXPECT_TRUE(at::equal(a[i], b[i])) << c.model << " on " << target << ", output " << i << ": max |diff| "
                                       << (a[i] - b[i]).abs().max().item<double>();
  // Every quantized constant of the lowered form is an integer code within its range.
  for (const auto& [name, t] : ctx.lowered->tensors) {
    if (t.codes.dtype() == DType::Undefined) continue;
    at::Tensor q = exec::view_tensor(t.codes);
    EXPECT_GE(q.min().item<int64_t>(), t.qmin) << name;
    EXPECT_LE(q.max().item<int64_t>(), t.qmax) << name;
  }
}

const std::string kFashion = kFashionTrain;
INSTANTIATE_TEST_SUITE_P(
    Fixtures, LoweredSimulation,
    ::testing::Combine(::testing::Values(fixture_case("fashion/fmnist_mobilenet"), fixture_case("fashion/fmnist_resnet"),
                                         fixture_case("models/mobilenetv2_style_op13"), fixture_case("models/resnet_style_op13"),
                                         fixture_case("models/detection_head_op13")),
                       ::testing::Values("esp32p4", "esp32s3", "c", "ort-int8", "tflite-int8", "ti-npu")),
    CaseName());

TEST(Lowering, ShiftsAreOutputMinusInputMinusWeightExponents) {
  QuantContext ctx(load_model(fixture("fashion/fmnist_resnet.onnx")), load_target("esp32p4"), Setting{});
  ctx.setting.calib_steps = 1;
  ctx.setting.batch_size = 16;
  ctx.calibration = {std::shared_ptr<const Dataset>(open_dataset(kFashion, {})), 0, 16, "fashion"};
  run_pipeline(ctx, {"prepare", "assign", "calibrate", "lower"});
  int checked = 0;
  for (const auto& lo : ctx.lowered->ops) {
    if (!lo.output_requant) continue;
    const Op* op = ctx.graph->find_op(lo.op);
    int e_in = ctx.plan.effective(op->input(0)->name)->exponents()[0];
    std::vector<int> e_w = ctx.plan.effective(op->input(1)->name)->exponents();
    int e_out = ctx.plan.effective(lo.output)->exponents()[0];
    ASSERT_TRUE(lo.output_requant->is_shift());
    ASSERT_EQ(lo.output_requant->shift.size(), e_w.size());
    for (size_t i = 0; i < e_w.size(); ++i) EXPECT_EQ(lo.output_requant->shift[i], e_out - e_in - e_w[i]) << lo.op;
    EXPECT_EQ(lo.accumulator_bits, 32);
    ++checked;
  }
  EXPECT_GT(checked, 5);
}

TEST(Lowering, RequantizeRoundsLikeTheTarget) {
  // 5 * 2^-1 = 2.5 and -3 * 2^-1 = -1.5: half-even -> 2, -2; half-up -> 3, -1; left shifts saturate.
  Requantization even{{1}, {}, RoundingMode::HalfEven}, up{{1}, {}, RoundingMode::HalfUp}, left{{-2}, {}, RoundingMode::HalfEven};
  EXPECT_EQ(requantize(5, even, 0, -128, 127), 2);
  EXPECT_EQ(requantize(-3, even, 0, -128, 127), -2);
  EXPECT_EQ(requantize(5, up, 0, -128, 127), 3);
  EXPECT_EQ(requantize(-3, up, 0, -128, 127), -1);
  EXPECT_EQ(requantize(40, left, 0, -128, 127), 127);
  // A q31 multiplier: 0.3 = 0.6 * 2^-1 -> 1288490189 * 2^-31 * 2^-(-(-1)).
  int32_t m;
  int shift;
  quantize_multiplier(0.3, m, shift);
  EXPECT_EQ(m, 1288490189);
  EXPECT_EQ(shift, 1);
  Requantization mul{{shift}, {m}, RoundingMode::HalfAwayFromZero};
  EXPECT_EQ(requantize(100, mul, 0, -128, 127), 30);
  EXPECT_EQ(requantize(-5, mul, 0, -128, 127), -2);  // -1.5 -> -2 away from zero
}

TEST(Lowering, SigmoidTableHas256EntriesOfTheQuantizedFunction) {
  edgequant::testing::ModelBuilder b;
  b.input("x", {-1, 4}).output("y");
  b.node("Sigmoid", {"x"}, {"y"}, "sig");
  std::string path = (std::filesystem::temp_directory_path() / "eq_lut.onnx").string();
  auto g = load_model(b.save(path));
  Target t = load_target("esp32s3");
  QuantPlan plan = quant::assign_quant_configs(*g, t, Setting{});
  plan.values["x"].scales = {0.0625};  // 2^-4: codes -128..127 cover [-8, 7.9375]
  plan.values["x"].zero_points = {0};
  plan.values["y"].scales = {1.0 / 128};  // 2^-7
  plan.values["y"].zero_points = {0};
  exec::Executor ex(*g);
  LoweredModel m = quant::lower(*g, plan, t, ex);
  const LoweredOp* op = m.op("sig");
  ASSERT_TRUE(op && op->lut);
  ASSERT_EQ(op->lut->table.size(), 256u);
  // Hand-computed entries: sigmoid(-8) * 128 = 0.0429 -> 0; sigmoid(0) * 128 = 64;
  // sigmoid(7.9375) * 128 = 127.95 -> 128 -> saturates at 127; sigmoid(1) * 128 = 93.57 -> 94.
  EXPECT_EQ(op->lut->table[0], 0);
  EXPECT_EQ(op->lut->table[128], 64);
  EXPECT_EQ(op->lut->table[255], 127);
  EXPECT_EQ(op->lut->table[128 + 16], 94);
}
}  // namespace
