// The tuner: its noise estimate against the hand-computed standard error, the playbook's strict
// reading and facts, and whole runs through the CLI on the Fashion-MNIST fixture (deterministic
// replay after SIGKILL, failing --eval-cmd trials, a resume of another model refused).
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "core/files.h"
#include "edgequant/error.h"
#include "test_util.h"
#include "tune/metric.h"
#include "tune/playbook.h"

using namespace edgequant;
using namespace edgequant::tuning;
namespace fs = std::filesystem;

namespace {

TEST(TuneMetric, AggregatesAreTheHandComputedValues) {
  Scores s;
  s.correct = {1, 0, 1, 1};
  s.signal = {1.0, 3.0, 0, 0};
  s.noise = {0.01, 0.09, 0, 0};
  s.dot = {1.0, 2.0, 0, 0};
  s.quant2 = {1.0, 4.0, 0, 0};
  EXPECT_DOUBLE_EQ(aggregate(MetricKind::Top1, s), 75.0);
  EXPECT_NEAR(aggregate(MetricKind::Sqnr, s), 10 * std::log10(4.0 / 0.1), 1e-12);  // 16.0206 dB
  EXPECT_NEAR(aggregate(MetricKind::Cosine, s), 3.0 / std::sqrt(4.0 * 5.0), 1e-12);
  EXPECT_DOUBLE_EQ(aggregate(MetricKind::Top1, s, {1, 1, 2}), 100.0 / 3.0);
}

// 10 000 samples; the two models differ on 100 of them: the candidate alone is right on 60, the
// incumbent alone on 40. Paired difference d in {+1 x60, -1 x40, 0}: mean 0.002, variance
// 0.01 - 0.002^2 = 0.009996, standard error sqrt(0.009996 / 10000) = 0.0009998, x100 points.
TEST(TuneMetric, PairedNoiseIsTheStandardErrorOfTheMeanDifference) {
  Scores a, b;
  a.correct.assign(10000, 1);
  b.correct.assign(10000, 1);
  for (int i = 0; i < 60; ++i) b.correct[size_t(i * 97)] = 0;      // candidate a right, b wrong
  for (int i = 0; i < 40; ++i) a.correct[size_t(i * 89 + 7)] = 0;  // b right, a wrong
  EXPECT_NEAR(aggregate(MetricKind::Top1, a) - aggregate(MetricKind::Top1, b), 0.2, 1e-9);
  double noise = paired_noise(MetricKind::Top1, a, b, 400);
  EXPECT_NEAR(noise, 0.09998, 0.09998 * 0.12) << "bootstrap standard deviation of the difference";
  EXPECT_DOUBLE_EQ(noise, paired_noise(MetricKind::Top1, a, b, 400)) << "fixed seed: deterministic";
  EXPECT_DOUBLE_EQ(paired_noise(MetricKind::Top1, a, a, 400), 0.0) << "identical models: no noise";
}

TEST(TunePlaybook, TheShippedPlaybookLoadsAndUnknownFactsAreRefusedByName) {
  Playbook p = load_playbook(default_playbook_path());
  EXPECT_FALSE(p.calibrators.empty());
  ASSERT_NE(p.find("tqt"), nullptr);
  EXPECT_TRUE(p.conflict("lsq", "tqt"));
  std::string bad = (fs::temp_directory_path() / "eq_bad_playbook.yaml").string();
  write_file_atomic(
      bad, "version: 1\nlevers:\n  - name: x\n    when: [\"kurtosis_max > 3\"]\n    set: {equalization: true}\n");
  try {
    load_playbook(bad);
    FAIL() << "an unknown fact was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("unknown fact 'kurtosis_max'"), std::string::npos) << e.what();
  }
  write_file_atomic(bad, "version: 1\nlevers:\n  - name: x\n    set: {}\n    colour: red\n");
  EXPECT_THROW(load_playbook(bad), Error);
}

// Five units with layerwise errors 8, 1, 2, 4, 3: worst first 8 4 3 2 1, median of the five
// worst 3, ratio 8/3. The three worst: noise mean/std 0.5/1 (the 8), 0.1/2, 0 -> 0.5; the 4 is
// an Add, so an elementwise unit is hot.
TEST(TunePlaybook, FactsFromAnAnalysisAreTheHandComputedValues) {
  nlohmann::json a = {{"output_noise_ratio", 0.01}, {"units", nlohmann::json::array()}};
  auto unit = [](double lw, const char* type, double nmean, double nstd) {
    return nlohmann::json{{"op", "u"},
                          {"type", type},
                          {"layerwise", lw},
                          {"noise", {{"mean", nmean}, {"std", nstd}}},
                          {"float", {{"kurtosis", 3.0}, {"std", 1.0}, {"min", -2.0}, {"max", 6.0}}}};
  };
  a["units"] = {unit(8, "Conv", 0.5, 1), unit(1, "Conv", 0, 1), unit(2, "Conv", 0, 1), unit(4, "Add", 0.1, 2),
                unit(3, "Conv", 0, 1)};
  Facts f = trial_facts(a, 90.0, 92.5, true, {"tqt"}, {{"weight_channel_ratio", 7}});
  EXPECT_DOUBLE_EQ(f["top_error_ratio"], 8.0 / 3.0);
  EXPECT_DOUBLE_EQ(f["top3_noise_bias"], 0.5);
  EXPECT_DOUBLE_EQ(f["hot_elementwise"], 1.0);
  EXPECT_DOUBLE_EQ(f["gap"], 2.5);
  EXPECT_DOUBLE_EQ(f["uses_tqt"], 1.0);
  EXPECT_DOUBLE_EQ(f["act_max_over_std"], 6.0);
  EXPECT_DOUBLE_EQ(f["units"], 5.0);
  EXPECT_DOUBLE_EQ(f["weight_channel_ratio"], 7.0);
}

const std::string kData = "/usr/share/datasets/fashion-mnist/";

std::string tune_command(const std::string& out, const std::string& extra = "", int budget = 8) {
  return edgequant::testing::cli() + " tune " + edgequant::testing::fixture("fashion/fmnist_resnet.onnx") +
         " -t esp32s3 -c " + kData + "train-images-idx3-ubyte.gz -e " + kData +
         "t10k-images-idx3-ubyte.gz --eval-limit 1000 --budget " + std::to_string(budget) + " --playbook " +
         edgequant::testing::fixture("tuning/small_playbook.yaml") + " -s " +
         edgequant::testing::fixture("tuning/small_setting.yaml") + " -o " + out + " " + extra;
}

nlohmann::json read_json(const std::string& path) { return nlohmann::json::parse(read_file(path)); }

// The values and outcomes of the history: what must not change between two runs of one search.
nlohmann::json decisions(const nlohmann::json& report) {
  nlohmann::json d = nlohmann::json::array();
  for (const auto& h : report["history"]) d.push_back({h["trial"], h["change"], h.value("value", -1.0), h["outcome"]});
  return d;
}

// A whole search, then the same search killed with SIGKILL while its fourth trial runs and
// resumed: the same trials, values, decisions and best. The best's setting, given to quantize,
// writes the same deployable.
TEST(TuneRun, ResumeAfterSigkillReplaysTheSameSearch) {
  std::string root = (fs::temp_directory_path() / ("eq_tune_" + std::to_string(getpid()))).string();
  fs::remove_all(root);
  fs::create_directories(root);
  auto whole = edgequant::testing::run_command(tune_command(root + "/whole"));
  ASSERT_EQ(whole.status, 0) << whole.output;
  nlohmann::json a = read_json(root + "/whole/report.json");
  ASSERT_GE(a["history"].size(), 6u) << whole.output;
  EXPECT_TRUE(fs::exists(root + "/whole/final_report.md"));
  EXPECT_TRUE(fs::exists(root + "/whole/trials/000/decision.json"));

  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    std::string cmd = tune_command(root + "/killed") + " > " + root + "/killed.log 2>&1";
    execl("/bin/sh", "sh", "-c", ("exec " + cmd).c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  // Kill while trials/003 runs (its trial.json written, its metrics.json not yet).
  auto deadline = std::chrono::steady_clock::now() + std::chrono::minutes(5);
  while (!fs::exists(root + "/killed/trials/003/trial.json") && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  ASSERT_TRUE(fs::exists(root + "/killed/trials/003/trial.json"));
  kill(pid, SIGKILL);
  int status = 0;
  waitpid(pid, &status, 0);
  ASSERT_FALSE(fs::exists(root + "/killed/report.json"));
  auto resumed = edgequant::testing::run_command(edgequant::testing::cli() + " tune --resume -o " + root + "/killed");
  ASSERT_EQ(resumed.status, 0) << resumed.output;
  EXPECT_NE(resumed.output.find("[resumed]"), std::string::npos) << resumed.output;
  nlohmann::json b = read_json(root + "/killed/report.json");
  EXPECT_EQ(decisions(a), decisions(b));
  EXPECT_EQ(a["best"], b["best"]);
  EXPECT_EQ(a["stop_reason"], b["stop_reason"]);

  // best/setting.yaml is a quantize setting: the same deployable again.
  auto q = edgequant::testing::run_command(edgequant::testing::cli() + " quantize " +
                                           edgequant::testing::fixture("fashion/fmnist_resnet.onnx") +
                                           " -t esp32s3 -c " + kData + "train-images-idx3-ubyte.gz -s " + root +
                                           "/whole/best/setting.yaml -o " + root + "/again");
  ASSERT_EQ(q.status, 0) << q.output;
  EXPECT_EQ(read_file(root + "/again/model.espdl"), read_file(root + "/whole/best/model.espdl"));

  // Another model's --resume of this directory is refused by name.
  auto other = edgequant::testing::run_command(edgequant::testing::cli() + " tune " +
                                               edgequant::testing::fixture("fashion/fmnist_mobilenet.onnx") +
                                               " --resume -o " + root + "/killed");
  EXPECT_EQ(other.status, 2) << other.output;
  EXPECT_NE(other.output.find("fmnist_resnet.onnx"), std::string::npos) << other.output;
  fs::remove_all(root);
}

// --eval-cmd trials that fail, write no number or hang are marked failed with the reason and
// the search goes on; the best is chosen among the others.
TEST(TuneRun, FailingEvalCommandTrialsAreMarkedFailedAndTheSearchGoesOn) {
  std::string root = (fs::temp_directory_path() / ("eq_tune_cmd_" + std::to_string(getpid()))).string();
  fs::remove_all(root);
  fs::create_directories(root);
  std::string script = root + "/score.sh";
  write_file_atomic(script,
                    "#!/bin/sh\n"
                    "# the metric is the deployable's size; trial 1 fails, 2 writes no number, 3 hangs\n"
                    "case \"$1\" in\n"
                    "  */trials/001/*) exit 3 ;;\n"
                    "  */trials/002/*) echo '{\"metric\": \"high\"}' > \"$2\" ;;\n"
                    "  */trials/003/*) sleep 600 ;;\n"
                    "  *) echo \"{\\\"metric\\\": $(stat -c %s \"$1\")}\" > \"$2\" ;;\n"
                    "esac\n");
  auto r = edgequant::testing::run_command(tune_command(root + "/out",
                                                        "--trial-timeout 30 --eval-cmd 'sh " + script +
                                                            " {model} {out_json}' "
                                                            "--eval-cmd-direction min",
                                                        5));
  ASSERT_EQ(r.status, 0) << r.output;
  nlohmann::json rep = read_json(root + "/out/report.json");
  ASSERT_EQ(rep["history"].size(), 5u) << r.output;
  EXPECT_EQ(rep["history"][0]["outcome"], "baseline");
  EXPECT_NE(rep["history"][1]["reason"].get<std::string>().find("exited with status 3"), std::string::npos);
  EXPECT_NE(rep["history"][2]["reason"].get<std::string>().find("no numeric \"metric\""), std::string::npos);
  EXPECT_NE(rep["history"][3]["reason"].get<std::string>().find("timed out"), std::string::npos);
  EXPECT_EQ(rep["history"][4]["outcome"].get<std::string>().substr(0, 4), "kept") << rep["history"][4];
  EXPECT_EQ(rep["stop_reason"], "trial budget (5) used");
  fs::remove_all(root);
}

}  // namespace
