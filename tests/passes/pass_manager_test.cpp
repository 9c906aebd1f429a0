// The pass manager: a pass keeps a cached analysis only by declaring it; in verify mode a
// declaration that does not match what the pass did is an internal error naming the pass; passes
// cannot change the setting or rerun the pipeline; every pass is timed under its own name.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <filesystem>

#include "api/load.h"
#include "data/npy.h"
#include "edgequant/error.h"
#include "ir/op_traits.h"
#include "passes/pipeline.h"
#include "test_util.h"

using namespace edgequant;

namespace {
std::string tmp(const std::string& name) {
  return (std::filesystem::temp_directory_path() / ("eq_pm_" + name)).string();
}

// y = Relu(x W^T + b), x of 4 features, fixed batch dimension 1 as exporters write it.
std::unique_ptr<QuantContext> gemm_context() {
  edgequant::testing::ModelBuilder b;
  b.input("x", {1, 4}).output("y");
  b.initializer("W", {3, 4}, {0.5f, -0.25f, 0.125f, 1.0f, -1.0f, 0.75f, 0.25f, -0.5f, 0.3f, 0.2f, -0.1f, 0.6f});
  b.initializer("b", {3}, {0.1f, -0.2f, 0.05f});
  edgequant::testing::ModelBuilder::attr_int(b.node("Gemm", {"x", "W", "b"}, {"h"}, "gemm"), "transB", 1);
  b.node("Relu", {"h"}, {"y"}, "relu");
  std::vector<float> x(16 * 4);
  for (size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>((static_cast<int>(i * 7) % 13) - 6) / 4.0f;
  write_npz(tmp("x.npz"), {{"x", Tensor::from_vector(DType::Float32, {16, 4}, x)}});
  Setting s;
  s.calib_steps = 1;
  s.batch_size = 12;
  s.calib_algorithm = CalibAlgorithm::MinMax;
  auto ctx = std::make_unique<QuantContext>(load_model(b.save(tmp("gemm.onnx"))), load_target("esp32s3"), s);
  attach_data(*ctx, tmp("x.npz"));
  run_pipeline(*ctx, {"prepare", "assign", "calibrate", "lower"});
  return ctx;
}

// Moves the Gemm input's scale one power of two up: a change of the plan.
void coarsen_input(QuantContext& ctx) {
  QuantConfig* c = ctx.plan.find("x");
  ASSERT_NE(c, nullptr);
  c->scales[0] *= 2;
}

// The three ways to declare that change.
class DeclaresPlanWrite : public Pass {  // writes the plan, keeps nothing: what a pass gets by forgetting
 public:
  const char* name() const override { return "coarsen"; }
  PassDecl declared() const override { return {static_cast<unsigned>(Part::Plan), 0}; }
  PassResult run(QuantContext& ctx) override {
    coarsen_input(ctx);
    return PassResult{};
  }
};
class KeepsEverything : public DeclaresPlanWrite {  // what an empty PassResult used to mean
 public:
  PassDecl declared() const override { return {static_cast<unsigned>(Part::Plan), kAllAnalyses}; }
};
class DeclaresNothing : public DeclaresPlanWrite {
 public:
  PassDecl declared() const override { return {}; }
};

// Runs `pass` after the pipeline in verify mode: an internal error saying `message`.
void expect_refused_in_verify_mode(Pass& pass, const std::string& message) {
  auto ctx = gemm_context();
  ctx->verify_passes = true;
  try {
    run_pass(*ctx, pass);
    ADD_FAILURE() << "passed verification: " << message;
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::Internal);
    EXPECT_NE(std::string(e.what()).find(message), std::string::npos) << e.what();
  }
}

int lowered_input_exponent(QuantContext& ctx) { return ctx.lowered_form().tensor("x")->exponents.at(0); }

TEST(PassManager, APassThatDeclaresNoPreservedAnalysisLeavesNoStaleLoweredForm) {
  auto ctx = gemm_context();
  ctx->verify_passes = true;
  ASSERT_TRUE(ctx->lowered.has_value());
  int before = lowered_input_exponent(*ctx);
  DeclaresPlanWrite pass;
  run_pass(*ctx, pass);
  EXPECT_FALSE(ctx->lowered.has_value());  // dropped, not kept by default
  EXPECT_EQ(ctx->plan.find("x")->exponents().at(0), before + 1);
  EXPECT_EQ(lowered_input_exponent(*ctx), before + 1);  // recomputed from the new plan
  EXPECT_EQ(ctx->stats.pass_seconds.back().first, "coarsen");
}

TEST(PassManager, KeepingEverythingByDefaultWasAStaleCacheAndVerifyModeNamesIt) {
  // The bug the old default (an empty PassResult preserved every analysis) allowed: the plan says
  // one exponent, the cached integer form (what the simulator, the runtime and the exporters
  // use) another.
  {
    auto ctx = gemm_context();
    ctx->verify_passes = false;
    int before = lowered_input_exponent(*ctx);
    KeepsEverything pass;
    run_pass(*ctx, pass);
    EXPECT_EQ(ctx->plan.find("x")->exponents().at(0), before + 1);
    EXPECT_EQ(lowered_input_exponent(*ctx), before);  // stale
  }
  // Verify mode catches the false declaration.
  KeepsEverything pass;
  expect_refused_in_verify_mode(pass, "pass 'coarsen' declares the error report preserved but changed the plan");
}

TEST(PassManager, VerifyModeRefusesAnUndeclaredWrite) {
  DeclaresNothing pass;
  expect_refused_in_verify_mode(pass, "pass 'coarsen' changed the plan but does not declare writing it");
}

// A pass may neither change the setting nor run passes itself.
class ChangesSetting : public Pass {
 public:
  const char* name() const override { return "meddle"; }
  PassResult run(QuantContext& ctx) override {
    ctx.edit_setting().calib_algorithm = CalibAlgorithm::KL;
    return PassResult{};
  }
};
class RunsThePipeline : public Pass {
 public:
  const char* name() const override { return "nested"; }
  PassResult run(QuantContext& ctx) override {
    run_pipeline(ctx, {"calibrate"});
    return PassResult{};
  }
};

TEST(PassManager, PassesNeitherChangeTheSettingNorRerunThePipeline) {
  auto ctx = gemm_context();
  ctx->verify_passes = false;  // refused in every build, not only in verify mode
  ChangesSetting meddle;
  RunsThePipeline nested;
  for (Pass* p : std::initializer_list<Pass*>{&meddle, &nested}) {
    try {
      run_pass(*ctx, *p);
      FAIL() << p->name() << " was allowed";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::Internal);
      EXPECT_NE(std::string(e.what()).find(std::string("pass '") + p->name() + "'"), std::string::npos) << e.what();
    }
  }
  EXPECT_EQ(ctx->setting().calib_algorithm, CalibAlgorithm::MinMax);
  ctx->edit_setting().calib_algorithm = CalibAlgorithm::KL;  // between runs: the caller's to change
  run_pipeline(*ctx, {"calibrate"});
  EXPECT_EQ(ctx->calibration_report.algorithm, CalibAlgorithm::KL);
}

// Every declaration in the default pipeline holds on a real model with a training pass.
TEST(PassManager, TheDefaultPipelinesDeclarationsHoldInVerifyMode) {
  Setting s;
  s.calib_steps = 1;
  s.batch_size = 8;
  s.tqt_optimization = true;
  s.tqt.steps = 4;
  s.bias_correction = true;
  s.equalization = true;
  s.mixed_precision.auto_promote = 1;
  s.analysis.samples = 8;
  QuantContext ctx(load_model(edgequant::testing::fixture("fashion/fmnist_resnet.onnx")), load_target("esp32s3"), s);
  ctx.verify_passes = true;
  attach_data(ctx, "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz");
  std::vector<std::string> names = pipeline_for(ctx.setting());
  run_pipeline(ctx, names);
  ASSERT_EQ(ctx.stats.pass_seconds.size(), names.size());
  for (size_t i = 0; i < names.size(); ++i) EXPECT_EQ(ctx.stats.pass_seconds[i].first, names[i]);
  EXPECT_NE(std::find(names.begin(), names.end(), "tqt"), names.end());
}
// prepare normalises a graph that was loaded without it (an Identity dropped): a graph change it
// declares, with every analysis dropped, which verify mode accepts.
TEST(PassManager, PrepareChangingTheGraphPassesVerification) {
  edgequant::testing::ModelBuilder b;
  b.input("x", {1, 4}).output("y");
  b.node("Identity", {"x"}, {"h"}, "id");
  b.node("Relu", {"h"}, {"y"}, "relu");
  QuantContext ctx(load_model(b.save(tmp("identity.onnx")), false), load_target("esp32s3"), Setting{});
  ctx.verify_passes = true;
  ASSERT_EQ(ctx.graph->ops().size(), 2u);
  run_pipeline(ctx, {"prepare"});
  EXPECT_EQ(ctx.graph->ops().size(), 1u);
  EXPECT_TRUE(ctx.graph->ops()[0]->is(OpType::Relu));
}
}  // namespace
