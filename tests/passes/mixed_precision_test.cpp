// mixed-precision: the two units with the worst layerwise error go to int16 (a conv with its
// fused activation counts as one unit), the plan and the lowered form carry the wider types,
// int8 consumers read the int16 tensors through a requantization of their own (ESP-DL's
// RequantizeLinear), no calibration data pass is repeated, and the output error drops.
#include <gtest/gtest.h>

#include "api/load.h"
#include "passes/pipeline.h"
#include "test_util.h"

using namespace edgequant;

namespace {
TEST(MixedPrecision, PromotesTheWorstUnitsToInt16AndLowersTheError) {
  Setting s;
  s.calib_steps = 2;
  s.calib_algorithm = CalibAlgorithm::KL;  // the premise below: KL clips the stem hardest
  s.batch_size = 16;
  s.analysis.samples = 64;
  s.analysis.layerwise = false;
  QuantContext ctx(load_model(edgequant::testing::fixture("fashion/fmnist_resnet.onnx")), load_target("esp32s3"), s);
  attach_data(ctx, "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz");
  run_pipeline(ctx, {"prepare", "assign", "calibrate", "analyse"});
  double before = ctx.report->output_noise_ratio;
  ctx.edit_setting().mixed_precision.auto_promote = 2;
  run_pipeline(ctx, {"mixed-precision", "analyse", "lower"});
  double after = ctx.report->output_noise_ratio;
  // KL clips the stem's ReLU output hardest: the stem conv and its ReLU are promoted.
  const Op* conv = ctx.graph->find_op("/stem/stem.0/Conv");
  ASSERT_NE(conv, nullptr);
  EXPECT_TRUE(ctx.setting().dispatching_table.empty());  // the promotions are the plan's, the setting stays the user's
  EXPECT_EQ(ctx.plan.find(conv->input(1)->name)->bits, 16);
  EXPECT_EQ(ctx.plan.find(conv->input(2)->name)->bits, 40);  // esp32s3 int16 layers: 40-bit bias
  const QuantConfig* relu_out =
      ctx.plan.effective(ctx.plan.find(conv->outputs[0]->name)->fused_into.empty()
                             ? conv->outputs[0]->name
                             : ctx.graph->find_op(ctx.plan.find(conv->outputs[0]->name)->fused_into)->outputs[0]->name);
  EXPECT_EQ(relu_out->bits, 16);
  EXPECT_EQ(ctx.lowered->tensor(conv->input(1)->name)->dtype, DType::Int16);
  EXPECT_EQ(ctx.lowered->tensor(conv->input(2)->name)->dtype, DType::Int64);
  EXPECT_EQ(ctx.lowered->op(conv->name)->accumulator_bits, 64);
  EXPECT_EQ(ctx.plan.find(ctx.graph->find_op("/stem/stem.2/Relu")->outputs[0]->name)->bits, 16);
  // Every op reading a tensor of another width does so through a grid of its own width (int8
  // ops reading the int16 stem output, the int16 stem reading the int8 image).
  int boundaries = 0;
  for (const auto& r : ctx.plan.requants)
    if (r.grid) {
      ++boundaries;
      EXPECT_NE(r.grid->bits, ctx.plan.effective(r.target)->bits) << r.op;
      ASSERT_TRUE(r.grid->has_scale()) << r.op;
      const LoweredOp* lo = ctx.lowered->op(r.op);
      ASSERT_TRUE(lo && lo->input_requants.count(r.index)) << r.op;
      // Code -> code: a shift by the exponent difference.
      EXPECT_EQ(lo->input_requants.at(r.index).shift[0],
                r.grid->exponents()[0] - ctx.plan.effective(r.target)->exponents()[0]);
    }
  EXPECT_GE(boundaries, 2);
  EXPECT_EQ(ctx.stats.data_passes, 4);  // calibration once; analyse before, inside (layerwise), after
  // The int8 consumers re-clip the stem output, so the gain is modest: 0.0253 -> 0.0186 here.
  EXPECT_LT(after, 0.8 * before) << "before " << before << ", after " << after;
  ASSERT_FALSE(ctx.plan.notes.empty());
  EXPECT_NE(ctx.plan.notes.back().find("2 units promoted to int16"), std::string::npos) << ctx.plan.notes.back();
}
}  // namespace
