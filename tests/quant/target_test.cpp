// Target files: sub-8-bit TI weights, TFLite narrow-range weights, asymmetric ORT activations.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "api/load.h"
#include "edgequant/error.h"
#include "quant/quantizer.h"
#include "target/target.h"
#include "test_util.h"

using namespace edgequant;
using edgequant::testing::fixture;

namespace {
TEST(TiNpuTarget, FourBitWeightsUseFloatScaleAndSixteenBitBias) {
  auto g = load_model(fixture("fashion/fmnist_resnet.onnx"));
  Setting s;
  s.weight_bits = 4;
  QuantPlan plan = quant::assign_quant_configs(*g, load_target("ti-npu"), s);
  const Op* conv = nullptr;
  for (const auto& op : g->ops())
    if (op->type == "Conv" && !conv) conv = op.get();
  ASSERT_NE(conv, nullptr);
  const QuantConfig& w = *plan.find(conv->input(1)->name);
  EXPECT_EQ(w.quant_min, -8);
  EXPECT_EQ(w.quant_max, 7);
  EXPECT_EQ(w.scale_kind, ScaleKind::Float);  // 8-bit unsigned multiplier on the chip
  EXPECT_EQ(w.granularity, Granularity::PerChannel);
  EXPECT_EQ(plan.find(conv->input(2)->name)->bits, 16);
  // Activations stay 8-bit power-of-two.
  const QuantConfig& x = *plan.find(g->inputs[0]->name);
  EXPECT_EQ(x.bits, 8);
  EXPECT_EQ(x.scale_kind, ScaleKind::PowerOfTwo);
  Setting eight;
  QuantPlan p8 = quant::assign_quant_configs(*g, load_target("ti-npu"), eight);
  EXPECT_EQ(p8.find(conv->input(2)->name)->bits, 24);
  EXPECT_EQ(p8.find(conv->input(1)->name)->scale_kind, ScaleKind::PowerOfTwo);
}

TEST(TfliteTarget, NarrowRangeWeightsAndAsymmetricActivations) {
  auto g = load_model(fixture("fashion/fmnist_mobilenet.onnx"));
  QuantPlan plan = quant::assign_quant_configs(*g, load_target("tflite-int8"), Setting{});
  for (const auto& op : g->ops()) {
    if (op->type == "Conv") {
      const QuantConfig& w = *plan.find(op->input(1)->name);
      EXPECT_EQ(w.quant_min, -127);
      EXPECT_EQ(w.granularity, Granularity::PerChannel);
    }
    if (op->type == "Gemm") EXPECT_EQ(plan.find(op->input(1)->name)->granularity, Granularity::PerTensor);
  }
  const QuantConfig& x = *plan.find(g->inputs[0]->name);
  EXPECT_FALSE(x.symmetric);
  EXPECT_EQ(x.quant_min, -128);
  EXPECT_EQ(x.scale_kind, ScaleKind::Float);
}

TEST(OrtTarget, Uint8ActivationsAndSoftmaxFreeGraph) {
  auto g = load_model(fixture("fashion/fmnist_mobilenet.onnx"));
  QuantPlan plan = quant::assign_quant_configs(*g, load_target("ort-int8"), Setting{});
  const QuantConfig& x = *plan.find(g->inputs[0]->name);
  EXPECT_EQ(x.quant_min, 0);
  EXPECT_EQ(x.quant_max, 255);
  EXPECT_FALSE(x.is_signed);
}

TEST(TargetFiles, EveryShippedTargetLoadsAndUnknownKeysAreRejected) {
  for (const auto& name : available_targets()) EXPECT_NO_THROW(load_target(name)) << name;
  EXPECT_GE(available_targets().size(), 6u);
  std::string bad = (std::filesystem::temp_directory_path() / "eq_bad_target.yaml").string();
  {
    std::ofstream out(bad);
    out << "name: x\nrounding: half_even\nbias_bit: {8: 32}\n";
  }
  std::string message;
  ErrorCode code = ErrorCode::Internal;
  try {
    load_target(bad);
  } catch (const std::runtime_error& ex) {
    message = ex.what();
    if (auto* err = dynamic_cast<const edgequant::Error*>(&ex)) code = err->code();
  }
  EXPECT_EQ(code, ErrorCode::InvalidTarget);
  EXPECT_NE(message.find("bias_bits"), std::string::npos) << message;
}
}  // namespace
