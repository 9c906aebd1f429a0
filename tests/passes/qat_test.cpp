// Quantization-aware training through the CLI (`edgequant train`) on the Fashion-MNIST ResNet
// fixture: the kept epoch's integer top-1 is what the exported file computes in the integer
// runtime, fake-quant equals integer on power-of-two targets, training recovers what 2-bit PTQ
// loses, resume continues the same run, and bad input (labels out of range, a checkpoint of
// another model, a diverging learning rate) gives one clear line and nothing half-written.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "api/run.h"
#include "core/files.h"
#include "data/dataset.h"
#include "data/npy.h"
#include "test_util.h"

using namespace edgequant;
using namespace edgequant::testing;
namespace fs = std::filesystem;

namespace {

const std::string kData = "/usr/share/datasets/fashion-mnist/";
const std::string kTrain = kData + "train-images-idx3-ubyte.gz";
const std::string kVal = kData + "t10k-images-idx3-ubyte.gz";

std::string scratch(const std::string& name) {
  std::string d = (fs::temp_directory_path() / ("eq_qat_" + name + "_" + std::to_string(getpid()))).string();
  fs::remove_all(d);
  return d;
}

std::string train_cmd(const std::string& model, const std::string& target, const std::string& out,
                      const std::string& extra) {
  return cli() + " train " + fixture(model) + " -t " + target + " --train " + kTrain + " --val " + kVal +
         " --val-limit 400 -o " + out + " " + extra;
}

nlohmann::json history(const std::string& dir) { return nlohmann::json::parse(read_file(dir + "/qat.json")); }

const nlohmann::json& kept(const nlohmann::json& h) {
  for (const auto& e : h["epochs"])
    if (e["epoch"] == h["kept_epoch"]) return e;
  throw std::runtime_error("kept epoch missing from qat.json");
}

// Top-1 of a .espdl over the first n validation samples, through the integer runtime (the file
// as written, read back).
double espdl_top1(const std::string& path, int64_t n) {
  auto data = open_dataset(kVal, Preprocess{});
  int64_t hits = 0;
  for (int64_t i = 0; i < n; ++i) {
    Tensor s = data->sample(i);
    Shape one = s.shape();
    one.insert(one.begin(), 1);
    std::vector<float> v(s.data<float>(), s.data<float>() + s.numel());
    NamedTensors out = run_any(path, {{"input", Tensor::from_vector(DType::Float32, one, v)}});
    const Tensor& y = out.at(0).second;
    const float* p = y.data<float>();
    hits += std::max_element(p, p + y.numel()) - p == data->label(i);
  }
  return 100.0 * static_cast<double>(hits) / static_cast<double>(n);
}

TEST(Qat, KeptEpochIsWhatTheExportedFileComputesAndFakeQuantEqualsInteger) {
  std::string out = scratch("keep");
  auto r = run_command(train_cmd("fashion/fmnist_resnet.onnx", "esp32s3", out, "--epochs 2 --limit 2048"));
  ASSERT_EQ(r.status, 0) << r.output;
  nlohmann::json h = history(out);
  ASSERT_EQ(h["epochs"].size(), 3u) << "epoch 0 (PTQ) and two trained epochs";
  for (const auto& e : h["epochs"]) {
    EXPECT_EQ(e["fake_quant_top1"], e["integer_top1"]) << "power-of-two target: epoch " << e["epoch"];
    EXPECT_GT(e["float_top1"].get<double>(), 85.0);
  }
  for (size_t i = 1; i < h["epochs"].size(); ++i) EXPECT_GT(h["epochs"][i]["train_top1"].get<double>(), 80.0);
  double best = 0;
  for (const auto& e : h["epochs"]) best = std::max(best, e["integer_top1"].get<double>());
  EXPECT_EQ(kept(h)["integer_top1"].get<double>(), best);
  EXPECT_EQ(espdl_top1(out + "/model.espdl", 400), best) << "the exported file is the kept epoch";
  EXPECT_TRUE(fs::exists(out + "/checkpoints/last.pt"));
  fs::remove_all(out);
}

// ti-npu with 2-bit weights: PTQ (with bias correction) loses about 11 points on this fixture;
// one short epoch of QAT on the task loss recovers most of it.
TEST(Qat, RecoversWhatTwoBitPtqLosesOnTiNpu) {
  std::string out = scratch("w2");
  fs::create_directories(out);
  std::ofstream(out + "/w2.yaml") << "weight_bits: 2\n";
  auto r = run_command(train_cmd("fashion/fmnist_resnet.onnx", "ti-npu", out + "/q",
                                 "--epochs 1 --limit 4096 --lr 1e-3 -s " + out + "/w2.yaml"));
  ASSERT_EQ(r.status, 0) << r.output;
  nlohmann::json h = history(out + "/q");
  double ptq = h["epochs"][0]["integer_top1"], qat = h["epochs"][1]["integer_top1"];
  double fl = h["epochs"][0]["float_top1"];
  EXPECT_LT(ptq, fl - 5) << "the case must be one PTQ cannot hold";
  EXPECT_GT(qat, ptq + 3) << r.output;
  EXPECT_EQ(h["kept_epoch"], 1);
  fs::remove_all(out);
}

// Killed (SIGKILL) once epoch 1's checkpoint is written, then resumed: the same epochs, the same
// numbers as the run that was never interrupted (same machine, same computation).
TEST(Qat, ResumeAfterSigkillContinuesTheSameRun) {
  std::string a = scratch("straight"), b = scratch("resumed");
  std::string extra = "--limit 4096 --epochs 2";
  auto r = run_command(train_cmd("fashion/fmnist_resnet.onnx", "esp32s3", a, extra));
  ASSERT_EQ(r.status, 0) << r.output;
  fs::create_directories(b);
  std::string pidfile = b + "/pid";
  ASSERT_EQ(std::system((train_cmd("fashion/fmnist_resnet.onnx", "esp32s3", b + "/q", extra) + " > " + b +
                         "/log 2>&1 & echo $! > " + pidfile)
                            .c_str()),
            0);
  std::string meta = b + "/q/checkpoints/last.json";
  for (int i = 0; i < 6000 && !fs::exists(meta); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  ASSERT_TRUE(fs::exists(meta)) << read_file(b + "/log");
  int pid = std::stoi(read_file(pidfile));
  kill(pid, SIGKILL);
  ASSERT_EQ(nlohmann::json::parse(read_file(meta))["epoch"], 1) << "killed after epoch 1";
  EXPECT_FALSE(fs::exists(b + "/q/qat.json")) << "killed before the end";
  r = run_command(train_cmd("fashion/fmnist_resnet.onnx", "esp32s3", b + "/q", extra + " --resume"));
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("resumed after epoch 1"), std::string::npos) << r.output;
  nlohmann::json full = history(a), again = history(b + "/q");
  ASSERT_EQ(again["epochs"].size(), 3u);
  for (size_t i = 0; i < 3; ++i)
    for (const char* k : {"loss", "train_top1", "fake_quant_top1", "integer_top1"})
      EXPECT_EQ(again["epochs"][i][k], full["epochs"][i][k]) << "epoch " << i << " " << k;
  EXPECT_EQ(read_file(a + "/model.espdl"), read_file(b + "/q/model.espdl"));
  fs::remove_all(a);
  fs::remove_all(b);
}

TEST(Qat, ResumeFromAnotherModelsCheckpointIsRefused) {
  std::string out = scratch("other");
  ASSERT_EQ(run_command(train_cmd("fashion/fmnist_mobilenet.onnx", "esp32s3", out, "--epochs 1 --limit 256")).status,
            0);
  auto r = run_command(train_cmd("fashion/fmnist_resnet.onnx", "esp32s3", out, "--epochs 1 --limit 256 --resume"));
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_NE(r.output.find("cannot resume from this checkpoint"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("fmnist_mobilenet.onnx, a different model file"), std::string::npos) << r.output;
  fs::remove_all(out);
}

TEST(Qat, LabelsOutOfRangeAreRefusedNamingTheSample) {
  std::string out = scratch("labels");
  fs::create_directories(out);
  std::vector<float> x(8 * 28 * 28, 0.5f);
  std::vector<int64_t> labels = {0, 1, 2, 3, 12, 5, 6, 7};
  write_npz(out + "/bad.npz", {{"images", Tensor::from_vector(DType::Float32, {8, 1, 28, 28}, x)},
                               {"labels", Tensor::from_vector(DType::Int64, {8}, labels)}});
  auto r = run_command(cli() + " train " + fixture("fashion/fmnist_resnet.onnx") + " -t esp32s3 --train " + out +
                       "/bad.npz -c " + kTrain + " -o " + out + "/q --epochs 1 --batch-size 8");
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_NE(r.output.find("sample 4"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("has label 12, outside the 10 classes"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(out + "/q/model.espdl")) << "nothing written";
  fs::remove_all(out);
}

TEST(Qat, ADivergingLearningRateStopsAndKeepsTheBestEpoch) {
  std::string out = scratch("nan");
  auto r = run_command(train_cmd("fashion/fmnist_resnet.onnx", "esp32s3", out, "--epochs 1 --limit 2048 --lr 1e9"));
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("training stopped, epoch 0 restored"), std::string::npos) << r.output;
  nlohmann::json h = history(out);
  EXPECT_EQ(h["kept_epoch"], 0);
  EXPECT_EQ(espdl_top1(out + "/model.espdl", 400), h["epochs"][0]["integer_top1"].get<double>())
      << "the PTQ result was exported";
  fs::remove_all(out);
}

}  // namespace

namespace {

// Seed 002's full workflow example, unchanged: TI's keys mapped and printed, the rest listed as
// unused, QAT on ti-npu (the command line's --epochs/--limit keep the test short).
TEST(QatTiConfig, TheSeedExampleRunsUnchangedAndPrintsTheMapping) {
  std::string out = scratch("ti");
  auto r = run_command(cli() + " train " + fixture("fashion/fmnist_resnet.onnx") + " --ti-config " +
                       fixture("ti/qat_f28p55.yaml") + " --train " + kTrain + " --val " + kVal +
                       " --val-limit 200 --epochs 1 --limit 512 -o " + out);
  ASSERT_EQ(r.status, 0) << r.output;
  for (const char* line :
       {"training.quantization: 2 -> target ti-npu", "training.quantization_weight_bitwidth: 8 -> weight_bits: 8",
        "training.training_epochs: 30 -> qat epochs 10", "not used: compilation", "target: ti-npu"})
    EXPECT_NE(r.output.find(line), std::string::npos) << line << "\n" << r.output;
  nlohmann::json h = history(out);
  EXPECT_EQ(h["epochs"].size(), 2u);
  fs::remove_all(out);
}

TEST(QatTiConfig, KeysWithoutAnEquivalentAreRefusedByName) {
  std::string dir = scratch("ti_bad");
  fs::create_directories(dir);
  std::string base = read_file(fixture("ti/qat_f28p55.yaml"));
  auto variant = [&](const std::string& from, const std::string& to) {
    std::string s = base;
    s.replace(s.find(from), from.size(), to);
    std::string p = dir + "/cfg_" + std::to_string(std::hash<std::string>{}(to)) + ".yaml";
    std::ofstream(p) << s;
    return run_command(cli() + " train " + fixture("fashion/fmnist_resnet.onnx") + " --ti-config " + p + " --train " +
                       kTrain + " -o " + dir + "/q");
  };
  auto a4 = variant("quantization_activation_bitwidth: 8", "quantization_activation_bitwidth: 4");
  EXPECT_EQ(a4.status, 2) << a4.output;
  EXPECT_NE(a4.output.find("quantization_activation_bitwidth: 4 cannot run on TI's NPU"), std::string::npos)
      << a4.output;
  auto unknown = variant("batch_size: 256", "batch_size: 256\n  mixup: 0.2");
  EXPECT_EQ(unknown.status, 2) << unknown.output;
  EXPECT_NE(unknown.output.find("unknown key 'mixup'"), std::string::npos) << unknown.output;
  auto fl = variant("quantization: 2", "quantization: 0");
  EXPECT_EQ(fl.status, 2) << fl.output;
  EXPECT_NE(fl.output.find("quantization: 0 is TI's float training"), std::string::npos) << fl.output;
  EXPECT_FALSE(fs::exists(dir + "/q")) << "nothing written";
  fs::remove_all(dir);
}

}  // namespace
