// layer-split: a conv whose weight has a few large outliers becomes two convs joined by an Add;
// the float output is unchanged, the parts sum to the weight exactly, and per-tensor int8
// quantization of the split model loses less than of the original.
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

namespace {
std::string conv_with_outliers() {
  at::manual_seed(31);
  at::Tensor w = at::randn({8, 4, 3, 3}) * 0.2;
  w.view({-1})[5] = 6.0f;  // two outliers stretch a per-tensor scale 20x
  w.view({-1})[100] = -5.0f;
  at::Tensor b = at::randn({8}) * 0.1;
  auto vec = [](const at::Tensor& t) {
    return std::vector<float>(t.data_ptr<float>(), t.data_ptr<float>() + t.numel());
  };
  edgequant::testing::ModelBuilder m;
  m.input("x", {-1, 4, 6, 6}).output("y");
  m.initializer("w", {8, 4, 3, 3}, vec(w)).initializer("b", {8}, vec(b));
  edgequant::testing::ModelBuilder::attr_ints(m.node("Conv", {"x", "w", "b"}, {"y"}, "conv"), "pads", {1, 1, 1, 1});
  return m.save((std::filesystem::temp_directory_path() / "eq_split.onnx").string());
}

double ptq_noise(const std::string& model, bool split, const std::string& data, QuantContext** keep = nullptr) {
  Setting s;
  s.calib_steps = 2;
  s.batch_size = 16;
  s.calib_algorithm = CalibAlgorithm::MinMax;
  s.analysis.layerwise = false;
  s.layer_split = split;
  s.layer_split_setting.value_threshold = 1.0;
  static std::unique_ptr<QuantContext> ctx;
  ctx = std::make_unique<QuantContext>(load_model(model), load_target("esp32s3"), s);
  attach_data(*ctx, data);
  run_pipeline(*ctx, pipeline_for(ctx->setting()));
  if (keep) *keep = ctx.get();
  return ctx->report->output_noise_ratio;
}

TEST(LayerSplit, SameFloatOutputExactPartsAndLessQuantizationError) {
  std::string model = conv_with_outliers();
  std::string data = (std::filesystem::temp_directory_path() / "eq_split.npy").string();
  at::Tensor x = at::randn({48, 4, 6, 6});
  write_npy(data, exec::to_ir_tensor(x));
  auto original = load_model(model);
  double unsplit = ptq_noise(model, false, data);
  QuantContext* ctx = nullptr;
  double split = ptq_noise(model, true, data, &ctx);
  int convs = 0, adds = 0;
  for (const auto& op : ctx->graph->ops()) {
    convs += op->type == "Conv";
    adds += op->type == "Add";
  }
  EXPECT_EQ(convs, 2);
  EXPECT_EQ(adds, 1);
  at::NoGradGuard no_grad;
  exec::Executor before(*original);
  at::Tensor y0 = before.run({x})[0], y1 = ctx->executor().run({x})[0];
  EXPECT_LE(((y1 - y0).abs().max() / y0.abs().max()).item<double>(), 1e-5);
  // The two parts add up to the original weight exactly; the inner part is within +-1.
  at::Tensor w = exec::view_tensor(*original->find_value("w")->data), inner, outliers;
  for (const auto& op : ctx->graph->ops())
    if (op->type == "Conv") (op->input(2) ? inner : outliers) = exec::view_tensor(*op->input(1)->data);
  EXPECT_TRUE(at::equal(inner + outliers, w));
  EXPECT_LE(inner.abs().max().item<double>(), 1.0);
  EXPECT_EQ(outliers.ne(0).sum().item<int64_t>(), 2);
  // 0.00238 -> 0.00143: the activations and the Add keep their share of the error.
  EXPECT_LT(split, 0.7 * unsplit) << "noise:signal unsplit " << unsplit << ", split " << split;
}
}  // namespace
