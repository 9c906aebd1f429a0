// The tqt pass: a block whose loss rises is rolled back bit for bit, is_scale_trainable: false
// trains weights only, float-scale targets are skipped with a message, unknown
// interested_layers are named.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "api/load.h"
#include "edgequant/error.h"
#include "edgequant/pipeline.h"
#include "ir/op_traits.h"
#include "passes/pipeline.h"
#include "test_util.h"

using namespace edgequant;

namespace {
const std::string kTrain = "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz";

std::unique_ptr<QuantContext> calibrated(const std::string& target, const TqtSetting& tqt, std::ostream* log) {
  Setting s;
  s.calib_steps = 2;
  s.batch_size = 16;
  s.tqt = tqt;
  auto ctx = std::make_unique<QuantContext>(load_model(edgequant::testing::fixture("fashion/fmnist_mobilenet.onnx")),
                                            load_target(target), s);
  ctx->log = log;
  attach_data(*ctx, kTrain);
  run_pipeline(*ctx, {"prepare", "assign", "calibrate"});
  return ctx;
}

std::vector<at::Tensor> weights(QuantContext& ctx) {
  std::vector<at::Tensor> w;
  for (const auto& op : ctx.graph->ops())
    if (is_compute_op(op->type)) w.push_back(ctx.executor().constant(op->input(1)).clone());
  return w;
}

TEST(Tqt, BlocksWhoseLossRisesAreRolledBackBitForBit) {
  TqtSetting t;
  t.steps = 3;
  t.lr = 1e3;  // every step wrecks the block: each must be rolled back
  std::ostringstream log;
  auto ctx = calibrated("esp32s3", t, &log);
  const QuantPlan before = ctx->plan;
  std::vector<at::Tensor> w0 = weights(*ctx);
  run_pipeline(*ctx, {"tqt"});
  EXPECT_NE(log.str().find("9 blocks trained (9 rolled back)"), std::string::npos) << log.str();
  std::vector<at::Tensor> w1 = weights(*ctx);
  ASSERT_EQ(w0.size(), w1.size());
  for (size_t i = 0; i < w0.size(); ++i)
    EXPECT_TRUE(at::equal(w0[i].contiguous(), w1[i].contiguous())) << "weight " << i;
  for (const auto& [name, c] : before.values) EXPECT_EQ(ctx->plan.find(name)->scales, c.scales) << name;
}

TEST(Tqt, ScalesStayWhenNotTrainable) {
  TqtSetting t;
  t.steps = 8;
  t.lr = 1e-4;
  t.scale_lr = 1.0;  // would move exponents if they were trained
  t.is_scale_trainable = false;
  std::ostringstream log;
  auto ctx = calibrated("esp32p4", t, &log);
  const QuantPlan before = ctx->plan;
  std::vector<at::Tensor> w0 = weights(*ctx);
  run_pipeline(*ctx, {"tqt"});
  int changed = 0;
  std::vector<at::Tensor> w1 = weights(*ctx);
  for (size_t i = 0; i < w0.size(); ++i) changed += !at::equal(w0[i].contiguous(), w1[i].contiguous());
  EXPECT_GT(changed, 0) << log.str();
  for (const auto& [name, c] : ctx->plan.values) {
    EXPECT_NE(c.source, RangeSource::Trained) << name;
    if (c.role != QuantRole::Bias) EXPECT_EQ(c.scales, before.find(name)->scales) << name;
  }
  // Trained with scales: some exponent moves at this scale learning rate.
  t.is_scale_trainable = true;
  auto ctx2 = calibrated("esp32p4", t, nullptr);
  run_pipeline(*ctx2, {"tqt"});
  int trained = 0;
  for (const auto& [name, c] : ctx2->plan.values) trained += c.source == RangeSource::Trained;
  EXPECT_GT(trained, 0);
}

TEST(Tqt, FloatScaleTargetIsSkippedWithAMessage) {
  std::ostringstream log;
  auto ctx = calibrated("ort-int8", TqtSetting{}, &log);
  const QuantPlan before = ctx->plan;
  run_pipeline(*ctx, {"tqt"});
  EXPECT_NE(log.str().find("tqt: skipped: target 'ort-int8' has float scales"), std::string::npos) << log.str();
  for (const auto& [name, c] : before.values) EXPECT_EQ(ctx->plan.find(name)->scales, c.scales) << name;
}

TEST(Tqt, UnknownInterestedLayerIsNamed) {
  TqtSetting t;
  t.interested_layers = {"no_such_conv"};
  auto ctx = calibrated("esp32s3", t, nullptr);
  try {
    run_pipeline(*ctx, {"tqt"});
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::InvalidSetting);
    EXPECT_NE(std::string(e.what()).find("'no_such_conv' is not a computing op"), std::string::npos) << e.what();
  }
}
}  // namespace

namespace {
TEST(Lsq, RefusedOnPowerOfTwoTargets) {
  auto ctx = calibrated("esp32s3", TqtSetting{}, nullptr);
  try {
    run_pipeline(*ctx, {"lsq"});
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::InvalidSetting);
    EXPECT_NE(std::string(e.what()).find("target 'esp32s3' needs power-of-two scales"), std::string::npos) << e.what();
  }
}

TEST(Lsq, LearnsFloatScalesThatLowerTheOutputError) {
  TqtSetting t;
  t.steps = 40;
  t.lr = 1e-4;
  t.scale_lr = 1e-3;
  Setting s;
  s.calib_steps = 2;
  s.batch_size = 16;
  s.calib_algorithm = CalibAlgorithm::KL;  // KL clips the ResNet's activations hard (89.46 % on ort-int8)
  s.analysis.layerwise = false;
  s.analysis.samples = 64;
  s.lsq = t;
  QuantContext ctx(load_model(edgequant::testing::fixture("fashion/fmnist_resnet.onnx")), load_target("ort-int8"), s);
  attach_data(ctx, kTrain);
  run_pipeline(ctx, {"prepare", "assign", "calibrate", "analyse"});
  double before = ctx.report->output_noise_ratio;
  const QuantPlan calibrated_plan = ctx.plan;
  run_pipeline(ctx, {"lsq", "analyse"});
  double after = ctx.report->output_noise_ratio;
  EXPECT_LT(after, 0.7 * before) << "before " << before << ", after " << after;
  int trained = 0;
  for (const auto& [name, c] : ctx.plan.values)
    if (c.source == RangeSource::Trained) {
      ++trained;
      EXPECT_EQ(c.scale_kind, ScaleKind::Float) << name;
    }
  EXPECT_GT(trained, 5);
}
}  // namespace

namespace {
// The public API reports every pass by name: TQT's seconds under "tqt", not folded into import.
TEST(Tqt, ThePublicSummaryTimesEveryPassByName) {
  std::string setting = (std::filesystem::temp_directory_path() / "eq_tqt_timing.yaml").string();
  std::ofstream(setting) << "tqt_optimization: true\ntqt_optimization_setting: {steps: 20}\n";
  QuantizeOptions o;
  o.model = edgequant::testing::fixture("fashion/fmnist_mobilenet.onnx");
  o.target = "esp32s3";
  o.calib = kTrain;
  o.setting_file = setting;
  o.calib_steps = 2;
  o.batch_size = 16;
  o.format = "none";
  std::ostringstream log;
  QuantizeSummary s = quantize(o, log);
  std::vector<std::string> names;
  double tqt = -1, prepare = -1;
  for (const auto& [name, secs] : s.pass_seconds) {
    names.push_back(name);
    if (name == "tqt") tqt = secs;
    if (name == "prepare") prepare = secs;
  }
  EXPECT_EQ(names,
            (std::vector<std::string>{"prepare", "assign", "check", "calibrate", "tqt", "analyse", "lower", "export"}));
  EXPECT_GT(tqt, 0.0);
  EXPECT_DOUBLE_EQ(s.import_s, prepare);  // TQT's seconds are not import's
  EXPECT_LT(s.import_s, tqt);
  EXPECT_NE(log.str().find(" tqt "), std::string::npos) << log.str();  // the printed summary names it too
}
}  // namespace
