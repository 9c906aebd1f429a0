// equalization: the float output stays the same (<= 1e-5 relative) while the per-channel weight
// ranges of the first op of each pair even out; ReLU6 -> ReLU surgery is opt-in and counted.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <sstream>

#include "api/load.h"
#include "data/npy.h"
#include "exec/kernel.h"
#include "passes/pipeline.h"
#include "test_util.h"

using namespace edgequant;
using edgequant::testing::fixture;

namespace {
// Conv(2 -> 4, 3x3) -> Relu -> MaxPool -> Conv(4 -> 3, 1x1) with output channels of the first
// spanning three orders of magnitude.
std::unique_ptr<Graph> unbalanced_pair() {
  at::manual_seed(21);
  at::Tensor w1 = at::randn({4, 2, 3, 3}) * at::tensor({0.01f, 0.1f, 1.0f, 10.0f}).reshape({4, 1, 1, 1});
  at::Tensor b1 = at::randn({4}), w2 = at::randn({3, 4, 1, 1});
  auto vec = [](const at::Tensor& t) {
    return std::vector<float>(t.data_ptr<float>(), t.data_ptr<float>() + t.numel());
  };
  edgequant::testing::ModelBuilder m;
  m.input("x", {-1, 2, 8, 8}).output("y");
  m.initializer("w1", {4, 2, 3, 3}, vec(w1)).initializer("b1", {4}, vec(b1)).initializer("w2", {3, 4, 1, 1}, vec(w2));
  edgequant::testing::ModelBuilder::attr_ints(m.node("Conv", {"x", "w1", "b1"}, {"c1"}, "conv1"), "pads", {1, 1, 1, 1});
  m.node("Relu", {"c1"}, {"r"}, "relu");
  auto& pool = m.node("MaxPool", {"r"}, {"p"}, "pool");
  edgequant::testing::ModelBuilder::attr_ints(pool, "kernel_shape", {2, 2});
  edgequant::testing::ModelBuilder::attr_ints(pool, "strides", {2, 2});
  m.node("Conv", {"p", "w2"}, {"y"}, "conv2");
  return load_model(m.save((std::filesystem::temp_directory_path() / "eq_equalize.onnx").string()));
}

// Per-channel ranges: output channels of conv1, input channels of conv2.
std::pair<at::Tensor, at::Tensor> ranges(const Graph& g) {
  at::Tensor w1 = exec::view_tensor(*g.find_value("w1")->data), w2 = exec::view_tensor(*g.find_value("w2")->data);
  return {w1.reshape({4, -1}).abs().amax(1), w2.transpose(0, 1).reshape({4, -1}).abs().amax(1)};
}

TEST(Equalization, KeepsTheFloatOutputAndBalancesChannelRanges) {
  QuantContext ctx(unbalanced_pair(), load_target("esp32s3"), Setting{});
  std::ostringstream log;
  ctx.log = &log;
  at::Tensor x = at::randn({8, 2, 8, 8});
  at::NoGradGuard no_grad;
  run_pipeline(ctx, {"prepare"});
  at::Tensor before = ctx.executor().run({x})[0].clone();
  auto [r1, r2] = ranges(*ctx.graph);
  double imbalance_before = (r1 / r2).log().abs().max().item<double>();
  run_pipeline(ctx, {"equalization"});
  at::Tensor after = ctx.executor().run({x})[0];
  EXPECT_LE(((after - before).abs().max() / before.abs().max()).item<double>(), 1e-5);
  auto [q1, q2] = ranges(*ctx.graph);
  // r1_i = r2_i at the fixed point s_i = 1: 10 iterations of scales bounded by [0.5, 2] reach it.
  EXPECT_GT(imbalance_before, 3.0);
  EXPECT_LT((q1 / q2).log().abs().max().item<double>(), 1e-3) << log.str();
  EXPECT_NE(log.str().find("1 pairs (2 ops), 10 iterations"), std::string::npos) << log.str();
}

TEST(Equalization, Relu6ToReluIsOptIn) {
  Setting s;
  QuantContext plain(load_model(fixture("fashion/fmnist_mobilenet.onnx")), load_target("esp32s3"), s);
  std::ostringstream log;
  plain.log = &log;
  run_pipeline(plain, {"prepare", "equalization"});
  EXPECT_NE(log.str().find("skipped: no Conv/Gemm pair"), std::string::npos) << log.str();
  s.equalization_setting.relu6_to_relu = true;
  QuantContext surgery(load_model(fixture("fashion/fmnist_mobilenet.onnx")), load_target("esp32s3"), s);
  std::ostringstream log2;
  surgery.log = &log2;
  run_pipeline(surgery, {"prepare", "equalization"});
  int clips = 0;
  for (const auto& op : surgery.graph->ops()) clips += op->type == "Clip";
  EXPECT_EQ(clips, 0);
  EXPECT_NE(log2.str().find("12 Clip(0, 6) replaced by Relu"), std::string::npos) << log2.str();
  EXPECT_NE(log2.str().find("11 pairs (22 ops)"), std::string::npos) << log2.str();
}
}  // namespace

namespace {
TEST(Equalization, LevelTwoCrossesResidualAddsKeepingTheFloatOutput) {
  // The ResNet-style fixture: convs writing into and reading from residual Adds form groups.
  Setting s;
  s.equalization_setting.opt_level = 2;
  QuantContext ctx(load_model(fixture("fashion/fmnist_resnet.onnx")), load_target("esp32s3"), s);
  std::ostringstream log;
  ctx.log = &log;
  at::manual_seed(5);
  at::Tensor x = at::rand({16, 1, 28, 28});
  at::NoGradGuard no_grad;
  run_pipeline(ctx, {"prepare"});
  at::Tensor before = ctx.executor().run({x})[0].clone();
  run_pipeline(ctx, {"equalization"});
  at::Tensor after = ctx.executor().run({x})[0];
  EXPECT_LE(((after - before).abs().max() / before.abs().max()).item<double>(), 1e-5) << log.str();
  // 5 groups over 16 ops: more ops than two per group, so some group spans an Add.
  EXPECT_NE(log.str().find("5 groups (16 ops)"), std::string::npos) << log.str();
}
}  // namespace
