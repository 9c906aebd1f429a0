// `edgequant quantize` / `evaluate` from the command line: bad input gives one clear line and
// exit 2 with nothing written; a small calibration set only warns.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "data/npy.h"
#include "test_util.h"

using namespace edgequant;
using namespace edgequant::testing;
namespace fs = std::filesystem;

namespace {
const std::string kModel = fixture("fashion/fmnist_mobilenet.onnx");
const std::string kTrain = "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz";
const std::string kTest = "/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz";

std::string tmp(const std::string& name) { return (fs::temp_directory_path() / ("eq_qcli_" + name)).string(); }

std::string write_setting(const std::string& name, const std::string& yaml) {
  std::string p = tmp(name);
  std::ofstream(p) << yaml;
  return p;
}

void expect_error(const std::string& args, const std::vector<std::string>& mentions, const std::string& out_dir) {
  fs::remove_all(out_dir);
  auto r = run_command(cli() + " quantize " + args + " --out " + out_dir);
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_EQ(std::count(r.output.begin(), r.output.end(), '\n'), 1) << r.output;
  for (const auto& m : mentions)
    EXPECT_NE(r.output.find(m), std::string::npos) << "missing '" << m << "': " << r.output;
  EXPECT_FALSE(fs::exists(out_dir));
}

TEST(QuantizeCli, UnknownTargetListsAvailable) {
  expect_error(kModel + " -t esp99 -c " + kTrain, {"esp99", "esp32p4", "ti-npu"}, tmp("o1"));
}

TEST(QuantizeCli, UnknownSettingKeyListsValidKeys) {
  std::string s = write_setting("bad_key.yaml", "calib_algoritm: kl\n");
  expect_error(kModel + " -t esp32s3 -c " + kTrain + " -s " + s, {s, "calib_algoritm", "calib_algorithm"}, tmp("o2"));
}

TEST(QuantizeCli, UnknownDispatchOpListsOps) {
  std::string s = write_setting("bad_op.yaml", "dispatching_table: {no_such_conv: int16}\n");
  expect_error(kModel + " -t esp32s3 -c " + kTrain + " -s " + s, {"no_such_conv", "/stem/stem.0/Conv"}, tmp("o3"));
}

TEST(QuantizeCli, AFloatOpTheChipCannotRunInFloatIsRefusedByNameBeforeCalibration) {
  // ESP-DL and EdgeQuant's runtime compute Clip on integers only: a Clip dispatched to float
  // cannot go into a .espdl file. One line naming the op, at the check before any data pass (it
  // was an internal error after calibration, and a float MaxPool crashed the .espdl writer).
  std::string s =
      write_setting("float_clip.yaml", "dispatching_table: {\"/blocks/blocks.0/body/body.2/Clip\": float}\n");
  expect_error(kModel + " -t esp32s3 -c " + kTrain + " -s " + s,
               {"'/blocks/blocks.0/body/body.2/Clip' (Clip)", "integers only", "pass 'check'"}, tmp("o_float_clip"));
}

TEST(QuantizeCli, AFloatClipBeforeAQuantizedConvGoesIntoAQdqFile) {
  // The same setting on a QDQ target: the Conv reads the float Clip through a QuantizeLinear of
  // its own (a boundary grid calibrated on the float tensor; the bias scale is s_grid * s_w).
  std::string s =
      write_setting("float_clip_qdq.yaml", "dispatching_table: {\"/blocks/blocks.0/body/body.2/Clip\": float}\n");
  std::string out = tmp("o_float_clip_qdq");
  fs::remove_all(out);
  auto r = run_command(cli() + " quantize " + kModel + " -t ort-int8 --calib-steps 2 --batch-size 16 -c " + kTrain +
                       " -s " + s + " --out " + out);
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_TRUE(fs::exists(out + "/model.qdq.onnx")) << r.output;
  EXPECT_NE(r.output.find("1 float"), std::string::npos) << r.output;
  fs::remove_all(out);
}

TEST(QuantizeCli, EmptyCalibrationSet) {
  write_npy(tmp("empty.npy"), Tensor(DType::Float32, {0, 1, 28, 28}));
  expect_error(kModel + " -t esp32s3 -c " + tmp("empty.npy"), {"empty.npy", "empty"}, tmp("o4"));
  fs::create_directories(tmp("empty_dir"));
  expect_error(kModel + " -t esp32s3 -c " + tmp("empty_dir"), {"empty_dir"}, tmp("o5"));
}

TEST(QuantizeCli, InfInCalibrationDataNamesTheSample) {
  Tensor t(DType::Float32, {4, 1, 28, 28});
  t.data<float>()[2 * 784 + 5] = INFINITY;
  write_npy(tmp("inf.npy"), t);
  expect_error(kModel + " -t esp32s3 --calib-steps 1 --batch-size 4 -c " + tmp("inf.npy"), {"sample 2", "Inf"},
               tmp("o6"));
}

// A model the deployable format cannot hold (TopK's indices are a graph output; TI's integer
// ONNX keeps one output per node): one line naming the node and output, and no directory.
TEST(QuantizeCli, UnexportableSecondOutputNamesTheNodeAndWritesNothing) {
  ModelBuilder b(13);
  b.input("x", {-1, 2, 4, 4});
  b.initializer("w", {4, 2, 1, 1}, {0.5f, -0.25f, 0.75f, 0.1f, -0.5f, 0.3f, 0.2f, 0.6f});
  b.initializer_i64("k", {1}, {3});
  b.node("Conv", {"x", "w"}, {"c"}, "conv");
  auto& topk = b.node("TopK", {"c", "k"}, {"values", "indices"}, "topk");
  ModelBuilder::attr_int(topk, "axis", -1);
  b.output("values", {-1, 4, 4, 3}).output("indices", {-1, 4, 4, 3}, 7);
  std::string model = b.save(tmp("topk.onnx"));
  Tensor t(DType::Float32, {8, 2, 4, 4});
  for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = static_cast<float>((i * 37) % 17) / 17.0f - 0.5f;
  write_npy(tmp("topk_x.npy"), t);
  expect_error(model + " -t ti-npu --calib-steps 2 --batch-size 4 -c " + tmp("topk_x.npy"), {"'topk'", "'indices'"},
               tmp("o7"));
}

TEST(QuantizeCli, FewerSamplesThanRequestedWarnsAndQuantizes) {
  std::string out = tmp("ok");
  fs::remove_all(out);
  Tensor t(DType::Float32, {20, 1, 28, 28});
  for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = static_cast<float>((i * 7919) % 255) / 255.0f;
  write_npy(tmp("few.npy"), t);
  auto r = run_command(cli() + " quantize " + kModel + " -t esp32p4 -c " + tmp("few.npy") +
                       " --calib-steps 4 --batch-size 8 --out " + out);
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("warning: "), std::string::npos);
  // No samples beyond calib-steps x batch-size: 20% are held out for the error analysis, and the
  // summary says which samples each step used.
  EXPECT_NE(r.output.find("calibrating on 16, validating on 4"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("calibration: auto ("), std::string::npos) << r.output;  // the targets' default
  EXPECT_NE(r.output.find(") over 16 samples"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("error analysis on 4 validation samples (samples 16-19 of"), std::string::npos) << r.output;
  for (const char* f : {"model.onnx", "quant_config.json", "analysis.json", "summary.txt"})
    EXPECT_TRUE(fs::exists(out + "/" + f)) << f;
  // evaluate reads the directory back and scores labeled IDX data.
  auto e = run_command(cli() + " evaluate " + kModel + " -q " + out + " -d " + kTest + " --limit 500");
  ASSERT_EQ(e.status, 0) << e.output;
  EXPECT_NE(e.output.find("samples: 500"), std::string::npos) << e.output;
  EXPECT_NE(e.output.find("quantized"), std::string::npos);
}
}  // namespace

namespace {
// The command of a user with a fixed-batch detector (input [1, 3, 48, 48], YOLO-FastestV2
// channel shuffles), the default calibrator (auto) included; then the integer runtime and evaluate.
TEST(QuantizeCli, AFixedBatchDetectorQuantizesRunsAndEvaluates) {
  const std::string data = fixture("fixed_batch/detector_input.npy");
  std::string out = tmp("fixed_b1");
  fs::remove_all(out);
  auto r = run_command(cli() + " quantize " + fixture("fixed_batch/detector_b1.onnx") + " -t esp32s3 -c " + data +
                       " --batch-size 1 --calib-steps 32 -o " + out);
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("calibration: auto ("), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("note: "), std::string::npos) << r.output;  // batch 1 was asked: nothing to say
  auto t = run_command(cli() + " run " + out + "/model.espdl");
  EXPECT_EQ(t.status, 0) << t.output;
  EXPECT_NE(t.output.find("Model::test() PASS"), std::string::npos) << t.output;
  auto e = run_command(cli() + " evaluate " + fixture("fixed_batch/detector_b1.onnx") + " -q " + out + " -d " + data);
  ASSERT_EQ(e.status, 0) << e.output;
  EXPECT_NE(e.output.find("(40 samples)"), std::string::npos) << e.output;
  EXPECT_NE(e.output.find("evaluated 1 sample at a time"), std::string::npos) << e.output;
}

// A free batch dim with the batch baked into Reshape constants: the default batch size is
// reduced to 1, said once.
TEST(QuantizeCli, ABatchBakedIntoReshapesRunsOneSampleAtATimeAndSaysSoOnce) {
  std::string out = tmp("fixed_dyn");
  fs::remove_all(out);
  auto r = run_command(cli() + " quantize " + fixture("fixed_batch/detector_dynbatch.onnx") + " -t esp32s3 -c " +
                       fixture("fixed_batch/detector_input.npy") + " -o " + out);
  ASSERT_EQ(r.status, 0) << r.output;
  size_t at =
      r.output.find("note: the graph computes only at batch 1 (at a batch of 2: node '/stage2/stage2.1/Reshape'");
  ASSERT_NE(at, std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("note: ", at + 1), std::string::npos) << r.output;
  EXPECT_TRUE(fs::exists(out + "/model.espdl"));
}
}  // namespace

namespace {
// A target given by a path: the output directory keeps a copy (target.yaml), so the directory
// evaluates after the file is gone (it failed with "unknown target 'my-chip'").
TEST(QuantizeCli, TheOutputDirectoryCarriesItsTarget) {
  std::string yaml = tmp("my-chip.yaml"), out = tmp("my_chip_out");
  fs::remove_all(out);
  {
    std::ifstream in(std::string(EQ_SOURCE_DIR) + "/targets/esp32s3.yaml");
    std::stringstream text;
    text << in.rdbuf();
    std::string s = text.str();
    s.replace(s.find("name: esp32s3"), 13, "name: my-chip");
    std::ofstream(yaml) << s;
  }
  auto r = run_command(cli() + " quantize " + kModel + " -t " + yaml + " -c " + kTrain +
                       " --calib-steps 2 --batch-size 16 -o " + out);
  ASSERT_EQ(r.status, 0) << r.output;
  ASSERT_TRUE(fs::exists(out + "/target.yaml"));
  fs::remove(yaml);
  auto e = run_command(cli() + " evaluate " + kModel + " -q " + out + " -d " + kTest + " --limit 200");
  ASSERT_EQ(e.status, 0) << e.output;
  EXPECT_NE(e.output.find("samples: 200"), std::string::npos) << e.output;
}
}  // namespace
