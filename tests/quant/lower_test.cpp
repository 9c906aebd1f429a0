// The lowered integer form: simulating from it equals the plan's simulation bit for bit on every
// fixture model and target; requantization shifts and lookup tables against hand-computed values.
#include "quant/lower.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>

#include "api/load.h"
#include "data/dataset.h"
#include "data/npy.h"
#include "exec/executor.h"
#include "exec/kernel.h"
#include "fixture_cases.h"
#include "passes/pipeline.h"
#include "quant/fake_quant.h"
#include "quant/quantizer.h"
#include "target/target.h"

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
  // The simulator's runs take the inference plan (a Conv and its ReLU/Clip fused where the Conv's
  // output has no grid of its own; large batches in chunks); its hooks run op by op give the
  // same bits. A counting hook shows the fused run really saw fewer ops.
  int fused_ops = 0, unfused_ops = 0;
  exec::ExecHooks count_fused;
  count_fused.after_op = [&](const Op&, std::vector<at::Tensor>&) { ++fused_ops; };
  count_fused.watches = [](const Value&) { return false; };
  count_fused.fusable = true;
  exec::HookList fused(from_lowered.hooks());
  fused.add(count_fused);
  exec::ExecHooks op_by_op = from_lowered.hooks();
  op_by_op.watches = nullptr;  // no longer fusable: every op alone, whole batches
  exec::ExecHooks count_unfused;
  count_unfused.after_op = [&](const Op&, std::vector<at::Tensor>&) { ++unfused_ops; };
  exec::HookList unfused(op_by_op);
  unfused.add(count_unfused);
  std::vector<at::Tensor> f = ctx.executor().run({x}, &fused), u = ctx.executor().run({x}, &unfused);
  for (size_t i = 0; i < f.size(); ++i)
    EXPECT_TRUE(at::equal(f[i], u[i])) << c.model << " on " << target << ", output " << i
                                       << " fused vs op by op: max |diff| " << (f[i] - u[i]).abs().max().item<double>();
  if (ctx.executor().inference_plan().fused_activations > 0)
    EXPECT_LT(fused_ops, unfused_ops) << c.model << ": no Conv+activation pair ran fused";
  else
    EXPECT_EQ(fused_ops, unfused_ops) << c.model;  // the detection head has no Conv+ReLU/Clip pair
  // Every quantized constant of the lowered form is an integer code within its range.
  for (const auto& [name, t] : ctx.lowered->tensors) {
    if (t.codes.dtype() == DType::Undefined) continue;
    at::Tensor q = exec::view_tensor(t.codes);
    EXPECT_GE(q.min().item<int64_t>(), t.qmin) << name;
    EXPECT_LE(q.max().item<int64_t>(), t.qmax) << name;
  }
}

// A Conv whose output owns a grid must not run fused with its ReLU/Clip under the simulator:
// the fake quantization between the two would be skipped. (The plan is edited by hand: every
// target fuses such pairs itself.)
TEST(SimulatorFusion, AConvOutputWithAGridRunsApartFromItsActivation) {
  auto owned = calibrated(fixture_case("fashion/fmnist_mobilenet"), "esp32s3", 16);
  QuantContext& ctx = *owned;
  QuantPlan plan = ctx.plan;
  int unfused = 0;
  for (auto& [name, c] : plan.values)
    if (c.state == QuantState::Fused) {
      c = *plan.find(ctx.graph->find_op(c.fused_into)->outputs[0]->name);  // the activation's grid,
      for (double& scale : c.scales) scale *= 4;                           // four times coarser
      ++unfused;
    }
  ASSERT_GT(unfused, 0);
  ASSERT_GT(ctx.executor().inference_plan().fused_activations, 0u);
  quant::BatchStream stream = ctx.batches(ctx.calibration);
  at::Tensor x;
  ASSERT_TRUE(stream.next(x));
  at::NoGradGuard no_grad;
  quant::QuantSimulator sim(*ctx.graph, plan, ctx.executor());
  exec::ExecHooks op_by_op = sim.hooks();
  op_by_op.watches = nullptr;
  at::Tensor fused = sim.run({x})[0], apart = ctx.executor().run({x}, &op_by_op)[0];
  EXPECT_TRUE(at::equal(fused, apart)) << "max |diff| " << (fused - apart).abs().max().item<double>();
  quant::QuantSimulator usual(*ctx.graph, ctx.plan, ctx.executor());
  EXPECT_FALSE(at::equal(fused, usual.run({x})[0]));  // the extra grids do change the output
}

const std::string kFashion = kFashionTrain;
INSTANTIATE_TEST_SUITE_P(Fixtures, LoweredSimulation,
                         ::testing::Combine(::testing::Values(fixture_case("fashion/fmnist_mobilenet"),
                                                              fixture_case("fashion/fmnist_resnet"),
                                                              fixture_case("models/mobilenetv2_style_op13"),
                                                              fixture_case("models/resnet_style_op13"),
                                                              fixture_case("models/detection_head_op13")),
                                            ::testing::Values("esp32p4", "esp32s3", "c", "ort-int8", "tflite-int8",
                                                              "ti-npu")),
                         CaseName());

TEST(Lowering, ShiftsAreOutputMinusInputMinusWeightExponents) {
  QuantContext ctx(load_model(fixture("fashion/fmnist_resnet.onnx")), load_target("esp32p4"), Setting{});
  ctx.edit_setting().calib_steps = 1;
  ctx.edit_setting().batch_size = 16;
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
  Requantization even{{1}, {}, RoundingMode::HalfEven}, up{{1}, {}, RoundingMode::HalfUp},
      left{{-2}, {}, RoundingMode::HalfEven};
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
