// Models whose batch is part of the graph, as edge detectors ship them: a fixed input batch
// ([1, 3, H, W]) or a free one with the batch baked into Reshape constants
// (tests/fixtures/fixed_batch, tools/gen_fixtures/export_fixed_batch.py). Every pass that feeds
// data, every calibrator and every target runs them at their own batch whatever batch_size asks;
// a model that takes any batch keeps taking the user's.
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <onnx/onnx_pb.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "api/load.h"
#include "api/quantize.h"
#include "data/npy.h"
#include "e2e/fashion_test_set.h"
#include "passes/pipeline.h"
#include "quant/batches.h"
#include "test_util.h"

using namespace edgequant;
using namespace edgequant::testing;
namespace fs = std::filesystem;

namespace {
const std::string kData = fixture("fixed_batch/detector_input.npy");       // 40 samples [3, 48, 48]
const std::string kFixed = fixture("fixed_batch/detector_b1.onnx");        // input [1, 3, 48, 48]
const std::string kBaked = fixture("fixed_batch/detector_dynbatch.onnx");  // input [batch, 3, 48, 48]
const std::string kTrain = "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz";

std::string tmp(const std::string& name) { return (fs::temp_directory_path() / ("eq_fixed_batch_" + name)).string(); }

// A copy of `model` whose inputs and outputs declare leading dim `batch`, as torch.onnx.export
// writes a model traced on a batch of that size without dynamic_axes.
std::string with_fixed_batch(const std::string& model, int64_t batch, const std::string& name) {
  onnx::ModelProto m;
  std::ifstream in(model, std::ios::binary);
  EXPECT_TRUE(m.ParseFromIstream(&in)) << model;
  for (auto* list : {m.mutable_graph()->mutable_input(), m.mutable_graph()->mutable_output()})
    for (auto& v : *list)
      v.mutable_type()->mutable_tensor_type()->mutable_shape()->mutable_dim(0)->set_dim_value(batch);
  std::string path = tmp(name);
  std::ofstream out(path, std::ios::binary);
  EXPECT_TRUE(m.SerializeToOstream(&out));
  return path;
}

quant::ModelBatch probe(const std::string& model, const std::string& data) {
  auto g = load_model(model);
  exec::Executor ex(*g);
  auto ds = open_dataset(data, {});
  return quant::probe_model_batch(*g, ex, *ds, 0);
}

// The setting's whole pipeline (prepare -> export) at the default batch_size (32) on the
// detector's 40 samples: 32 calibrate, 8 validate.
std::unique_ptr<QuantContext> quantized(const std::string& model, const std::string& target, Setting s,
                                        std::ostream* log, const std::string& out = "") {
  auto ctx = std::make_unique<QuantContext>(load_model(model), load_target(target), std::move(s));
  ctx->log = log;
  ctx->out_dir = out;
  attach_data(*ctx, kData);
  run_pipeline(*ctx, pipeline_for(ctx->setting()));
  return ctx;
}

// Both exports compute what torch computed (one image at a time): the shuffle's baked Reshapes
// and the [1, -1, 9] heads import as they are.
TEST(ModelBatch, TheDetectorsComputeAsTorchDid) {
  at::Tensor x = exec::to_aten(read_npy(kData)).narrow(0, 0, 2);
  at::Tensor want = exec::to_aten(read_npy(fixture("fixed_batch/detector_b1_output.npy")));
  for (const std::string& model : {kFixed, kBaked}) {
    auto g = load_model(model);
    exec::Executor ex(*g);
    at::NoGradGuard no_grad;
    for (int64_t i = 0; i < 2; ++i) {
      at::Tensor y = ex.run({x.narrow(0, i, 1)})[0];
      ASSERT_EQ(y.sizes(), want.narrow(0, i, 1).sizes()) << model;
      EXPECT_TRUE(at::allclose(y, want.narrow(0, i, 1), 1e-4, 1e-5)) << model << " sample " << i;
    }
  }
}

TEST(ModelBatch, AFixedInputBatchIsTheModelsBatch) {
  quant::ModelBatch mb = probe(kFixed, kData);
  EXPECT_EQ(mb.fixed, 1);
  EXPECT_TRUE(mb.exact());
  EXPECT_EQ(mb.run_size(32), 1);
  EXPECT_NE(mb.why.find("input 'input' has the fixed shape [1,3,48,48]"), std::string::npos) << mb.why;
}

TEST(ModelBatch, AFreeBatchWithBakedReshapesRunsOneSampleAtATime) {
  quant::ModelBatch mb = probe(kBaked, kData);
  EXPECT_EQ(mb.fixed, 0);
  EXPECT_TRUE(mb.single);
  EXPECT_EQ(mb.run_size(32), 1);
  // The shuffle Reshape of YOLO-FastestV2 fails at batch 2: [24, 2, 144] holds one sample.
  EXPECT_NE(mb.why.find("'/stage2/stage2.1/Reshape' (Reshape)"), std::string::npos) << mb.why;
}

TEST(ModelBatch, AReshapeThatMixesSamplesWithoutFailingIsCaughtByItsOutputShape) {
  // Reshape(x, [1, -1, 3]) runs at any batch: at batch 2 it returns [1, 8, 3], both samples in one.
  ModelBuilder b;
  b.input("x", {-1, 4, 3}).output("y");
  b.initializer_i64("shape", {3}, {1, -1, 3});
  b.node("Reshape", {"x", "shape"}, {"y"});
  std::string model = b.save(tmp("flatten_to_one.onnx"));
  Tensor t(DType::Float32, {3, 4, 3});
  for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = static_cast<float>(i % 7) - 3.0f;
  write_npy(tmp("flatten_to_one.npy"), t);
  quant::ModelBatch mb = probe(model, tmp("flatten_to_one.npy"));
  EXPECT_TRUE(mb.single);
  EXPECT_NE(mb.why.find("output 'y' has shape [1,8,3] for two samples, [1,4,3] for one"), std::string::npos) << mb.why;
}

TEST(ModelBatch, ModelsThatTreatSamplesIndependentlyTakeAnyBatch) {
  for (const char* m : {"models/resnet_style_op13.onnx", "models/detection_head_op13.onnx"}) {
    std::string stem(m);
    quant::ModelBatch mb = probe(fixture(m), fixture(stem.substr(0, stem.rfind("_op")) + "_input.npy"));
    EXPECT_EQ(mb.limit(), 0) << m << ": " << mb.why;
    EXPECT_EQ(mb.run_size(32), 32) << m;
  }
}

// Every calibrator, with the default batch size, on both detectors (esp32s3: the target).
class FixedBatchCalibrators : public ::testing::TestWithParam<std::tuple<std::string, std::string>> {};

TEST_P(FixedBatchCalibrators, QuantizeExportAndAnalyseAtTheModelsBatch) {
  const auto& [model, algo] = GetParam();
  Setting s;
  s.calib_algorithm = parse_calib_algorithm(algo);
  std::ostringstream log;
  std::string out = tmp("calib_" + algo + "_" + fs::path(model).stem().string());
  fs::remove_all(out);
  auto ctx = quantized(model, "esp32s3", s, &log, out);
  EXPECT_EQ(ctx->calibration_report.samples, 32) << log.str();
  EXPECT_EQ(ctx->calibration_report.batches, 32) << log.str();  // one sample per run
  ASSERT_TRUE(ctx->report.has_value());
  // 8-bit power-of-two quantization of this detector keeps its outputs at ~48 dB (auto, KL); the
  // weakest calibrator here (minmax) is well above 30 dB.
  EXPECT_LT(ctx->report->output_noise_ratio, 1e-3) << log.str();
  EXPECT_TRUE(fs::exists(out + "/model.espdl"));
  // Said once: which input or node decided, and what was asked.
  std::string text = log.str();
  size_t at = text.find("note: ");
  ASSERT_NE(at, std::string::npos) << text;
  EXPECT_EQ(text.find("note: ", at + 1), std::string::npos) << text;
  EXPECT_NE(text.find("every pass runs 1 sample at a time (batch-size 32 asked)"), std::string::npos) << text;
}

INSTANTIATE_TEST_SUITE_P(Detectors, FixedBatchCalibrators,
                         ::testing::Combine(::testing::Values(kFixed, kBaked),
                                            ::testing::Values("auto", "kl", "minmax", "percentile", "mse")),
                         [](const auto& info) {
                           return fs::path(std::get<0>(info.param)).stem().string() + "_" + std::get<1>(info.param);
                         });

// Every target with its default calibrator writes its deployable file.
class FixedBatchTargets : public ::testing::TestWithParam<std::string> {};

TEST_P(FixedBatchTargets, DefaultsQuantizeAndExport) {
  std::string out = tmp("target_" + GetParam());
  fs::remove_all(out);
  std::ostringstream log;
  auto ctx = quantized(kFixed, GetParam(), Setting{}, &log, out);
  EXPECT_EQ(ctx->calibration_report.batches, 32) << log.str();
  ASSERT_TRUE(ctx->report.has_value());
  EXPECT_LT(ctx->report->output_noise_ratio, 1e-3) << log.str();
  bool deployable = false;
  for (const char* f : {"model.espdl", "model.qdq.onnx", "model.ti.onnx", "model.tflite"})
    deployable = deployable || fs::exists(out + "/" + f);
  EXPECT_TRUE(deployable) << log.str();
}

INSTANTIATE_TEST_SUITE_P(Targets, FixedBatchTargets,
                         ::testing::Values("esp32s3", "esp32p4", "c", "ort-int8", "tflite-int8", "ti-npu"),
                         [](const auto& info) {
                           std::string n = info.param;
                           for (auto& ch : n)
                             if (ch == '-') ch = '_';
                           return n;
                         });

// The data-feeding recovery passes: bias correction, mixed precision, TQT (power-of-two), LSQ
// and AdaRound (float scales), and the graph rewrites before them, on the baked-Reshape model.
TEST(FixedBatchPasses, EveryRecoveryPassRunsAtBatchOne) {
  std::ostringstream log;
  Setting s;
  s.equalization = true;
  s.layer_split = true;
  s.mixed_precision.auto_promote = 2;
  s.bias_correction = true;
  s.tqt_optimization = true;
  s.tqt.steps = 10;
  auto ctx = quantized(kBaked, "esp32s3", s, &log, tmp("passes_esp32s3"));
  for (const char* pass : {"equalization", "mixed-precision", "bias-correction", "tqt", "analyse", "export"}) {
    bool ran = false;
    for (const auto& [name, secs] : ctx->stats.pass_seconds) ran = ran || name == pass;
    EXPECT_TRUE(ran) << pass << "\n" << log.str();
  }
  EXPECT_NE(log.str().find("blocks trained"), std::string::npos) << log.str();
  EXPECT_LT(ctx->report->output_noise_ratio, 1e-3) << log.str();

  Setting f;
  f.lsq_optimization = true;
  f.lsq.steps = 10;
  f.blockwise_reconstruction = true;
  f.adaround.steps = 10;
  std::ostringstream flog;
  auto fctx = quantized(kBaked, "ort-int8", f, &flog, tmp("passes_ort"));
  EXPECT_NE(flog.str().find("lsq"), std::string::npos) << flog.str();
  EXPECT_LT(fctx->report->output_noise_ratio, 1e-3) << flog.str();
}

TEST(FixedBatchEvaluate, RunsTheModelsBatchAndSaysSo) {
  std::ostringstream log;
  auto ctx = quantized(kBaked, "esp32s3", Setting{}, &log);
  auto ds = open_dataset(kData, {});
  EvaluateReport r = evaluate_models(*ctx->graph, *ctx->graph, ctx->plan, *ds, 100);
  ASSERT_EQ(r.outputs.size(), 1u);
  EXPECT_EQ(r.outputs[0].samples, 40);
  EXPECT_GT(r.outputs[0].sqnr_db, 30.0);
  ASSERT_EQ(r.notes.size(), 1u);
  EXPECT_NE(r.notes[0].find("evaluated 1 sample at a time"), std::string::npos) << r.notes[0];
}

// A classifier exported with a fixed batch of 1 calibrates on the same samples as the same
// network with a free batch at batch_size 32: min/max ranges do not depend on how samples are
// grouped, so the plans are equal scale for scale; and Fashion-MNIST top-1 of the simulated
// model stays that of the free-batch model.
TEST(FixedBatchClassifier, SamePlanAndAccuracyAsTheFreeBatchModel) {
  std::string free_model = fixture("fashion/fmnist_mobilenet.onnx");
  std::string fixed_model = with_fixed_batch(free_model, 1, "fmnist_b1.onnx");
  auto run = [&](const std::string& model) {
    Setting s;
    s.calib_algorithm = CalibAlgorithm::MinMax;
    s.calib_steps = 4;
    auto ctx = std::make_unique<QuantContext>(load_model(model), load_target("esp32s3"), s);
    attach_data(*ctx, kTrain);
    run_pipeline(*ctx, {"prepare", "assign", "calibrate", "lower"});
    return ctx;
  };
  auto fixed = run(fixed_model), free = run(free_model);
  EXPECT_EQ(fixed->model_batch().fixed, 1);
  EXPECT_EQ(free->model_batch().limit(), 0);
  EXPECT_EQ(fixed->calibration_report.batches, 128);
  EXPECT_EQ(free->calibration_report.batches, 4);
  size_t compared = 0;
  for (const auto& [name, c] : free->plan.values) {
    const QuantConfig* other = fixed->plan.find(name);
    ASSERT_NE(other, nullptr) << name;
    EXPECT_EQ(other->scales, c.scales) << name;
    ++compared;
  }
  EXPECT_GT(compared, 40u);
  // 2000 test images: the fixed model runs them one at a time. Both compute the same integer
  // model; float top-1 can differ only by a near-tie flipped by batch-dependent kernel blocking
  // (a few ULPs): at most 1 image of 2000.
  auto ds = open_dataset(kFashionData + "t10k-images-idx3-ubyte.gz", {});
  EvaluateReport a = evaluate_models(*fixed->graph, *fixed->graph, fixed->plan, *ds, 100, 2000);
  EvaluateReport b = evaluate_models(*free->graph, *free->graph, free->plan, *ds, 100, 2000);
  EXPECT_EQ(a.float_accuracy.samples, 2000);
  EXPECT_NEAR(a.float_accuracy.top1, b.float_accuracy.top1, 0.05 + 1e-9);
  EXPECT_NEAR(a.quantized_accuracy.top1, b.quantized_accuracy.top1, 0.05 + 1e-9);
  EXPECT_GT(a.quantized_accuracy.top1, 85.0);
}

// The default 32 x 32 samples on a batch-1 model are 1024 runs: auto's selection still holds
// about 64 samples (every 16th run), not one per run (whose whole-plan checks were 16x the work).
TEST(FixedBatchClassifier, TheAutoSelectionStaysSmallWhenEveryRunIsOneSample) {
  std::string model = with_fixed_batch(fixture("fashion/fmnist_mobilenet.onnx"), 1, "fmnist_sel_b1.onnx");
  auto ctx = std::make_unique<QuantContext>(load_model(model), load_target("esp32s3"), Setting{});
  attach_data(*ctx, kTrain);
  run_pipeline(*ctx, {"prepare", "assign", "calibrate"});
  EXPECT_EQ(ctx->calibration_report.batches, 1024);
  ASSERT_TRUE(ctx->observations.has_value());
  int64_t selected = 0;
  for (const auto& b : ctx->observations->selection) {
    EXPECT_EQ(b[0].size(0), 1);  // each a run the model takes
    selected += b[0].size(0);
  }
  EXPECT_EQ(selected, 64);
}

// A fixed batch above 1: every run takes exactly that many samples (a shorter tail is left
// out), the auto calibrator's selection included.
TEST(FixedBatchClassifier, AFixedBatchOfFourRunsWholeBatchesOnly) {
  std::string model = with_fixed_batch(fixture("fashion/fmnist_resnet.onnx"), 4, "fmnist_resnet_b4.onnx");
  Setting s;
  s.calib_steps = 3;
  s.batch_size = 5;  // 15 samples asked: 3 runs of 4, 3 left out
  std::ostringstream log;
  auto ctx = std::make_unique<QuantContext>(load_model(model), load_target("esp32p4"), s);
  ctx->log = &log;
  attach_data(*ctx, kTrain);
  run_pipeline(*ctx, {"prepare", "assign", "calibrate", "analyse", "lower"});
  EXPECT_EQ(ctx->calibration_report.batches, 3) << log.str();
  EXPECT_EQ(ctx->calibration_report.samples, 12) << log.str();
  EXPECT_NE(log.str().find("every pass runs 4 samples at a time (batch-size 5 asked)"), std::string::npos) << log.str();
  ASSERT_TRUE(ctx->report.has_value());
  EXPECT_LT(ctx->report->output_noise_ratio, 0.05) << log.str();
}
}  // namespace
