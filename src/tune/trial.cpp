#include "tune/trial.h"

#include <ATen/ATen.h>
#include <sys/wait.h>

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>

#include "api/load.h"
#include "api/quantize.h"
#include "core/files.h"
#include "edgequant/tune.h"

namespace edgequant {
namespace tuning {

nlohmann::json TrialSpec::to_json() const {
  return {{"model", model},           {"target", target},
          {"calib", calib},           {"eval", eval},
          {"eval_limit", eval_limit}, {"metric", metric},
          {"eval_cmd", eval_cmd},     {"eval_cmd_timeout_s", eval_cmd_timeout_s},
          {"threads", threads}};
}

TrialSpec TrialSpec::from_json(const nlohmann::json& j) {
  TrialSpec s;
  s.model = j.at("model");
  s.target = j.at("target");
  s.calib = j.at("calib");
  s.eval = j.at("eval");
  s.eval_limit = j.at("eval_limit");
  s.metric = j.at("metric");
  s.eval_cmd = j.value("eval_cmd", "");
  s.eval_cmd_timeout_s = j.value("eval_cmd_timeout_s", 0.0);
  s.threads = j.value("threads", 0);
  return s;
}

nlohmann::json TrialMetrics::to_json() const {
  nlohmann::json j{{"status", ok ? "ok" : "failed"}};
  if (!ok) {
    j["reason"] = reason;
    return j;
  }
  j["value"] = value;
  j["float_value"] = float_value;
  j["output_noise_ratio"] = output_noise_ratio;
  j["seconds"] = seconds;
  j["calib_algorithm"] = calib_algorithm;
  j["deployable"] = deployable;
  j["cost"] = {{"wide_units", wide_units}, {"weight_bytes", weight_bytes}};
  return j;
}

TrialMetrics TrialMetrics::from_json(const nlohmann::json& j) {
  TrialMetrics m;
  m.ok = j.value("status", "") == "ok";
  m.reason = j.value("reason", "");
  if (!m.ok) return m;
  m.value = j.at("value");
  // NaN (no float figure for --eval-cmd) is written as null.
  m.float_value = j.at("float_value").is_number() ? j.at("float_value").get<double>() : std::nan("");
  m.output_noise_ratio = j.value("output_noise_ratio", -1.0);
  m.seconds = j.value("seconds", 0.0);
  m.calib_algorithm = j.value("calib_algorithm", "");
  m.deployable = j.value("deployable", "");
  m.wide_units = j.at("cost").value("wide_units", 0);
  m.weight_bytes = j.at("cost").value("weight_bytes", int64_t{0});
  return m;
}

namespace {

// The deployable the export pass wrote (the one file beside the reports).
std::string find_deployable(const std::string& out) {
  static const std::set<std::string> reports = {"model.onnx",  "quant_config.json", "analysis.json",
                                                "summary.txt", "setting.yaml",      "target.yaml"};
  if (!std::filesystem::is_directory(out)) return "";
  for (const auto& e : std::filesystem::directory_iterator(out))
    if (e.is_regular_file() && !reports.count(e.path().filename().string())) return e.path().string();
  return "";
}

std::string replace_all(std::string s, const std::string& from, const std::string& to) {
  for (size_t p = s.find(from); p != std::string::npos; p = s.find(from, p + to.size())) s.replace(p, from.size(), to);
  return s;
}

// Runs the user's evaluation program on the deployable: its exit status, a time limit, and a
// finite {"metric": value} in its output file, or the reason it failed.
double run_eval_cmd(const TrialSpec& spec, const std::string& dir, const std::string& deployable) {
  std::string out_json = dir + "/eval_cmd.json";
  std::string cmd = replace_all(replace_all(spec.eval_cmd, "{model}", deployable), "{out_json}", out_json);
  std::string shell = spec.eval_cmd_timeout_s > 0 ? "timeout -s KILL " + std::to_string(spec.eval_cmd_timeout_s) +
                                                        " sh -c '" + replace_all(cmd, "'", "'\\''") + "'"
                                                  : cmd;
  int rc = std::system((shell + " > " + dir + "/eval_cmd.log 2>&1").c_str());
  if (rc == -1 || !WIFEXITED(rc)) fail(ErrorCode::InvalidInput, "--eval-cmd did not run: " + cmd);
  int status = WEXITSTATUS(rc);
  if (status == 137 && spec.eval_cmd_timeout_s > 0)
    fail(ErrorCode::InvalidInput, "--eval-cmd timed out after " + std::to_string(spec.eval_cmd_timeout_s) + " s");
  if (status != 0) fail(ErrorCode::InvalidInput, "--eval-cmd exited with status " + std::to_string(status));
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(read_file(out_json));
  } catch (const nlohmann::json::exception&) {
    fail(ErrorCode::InvalidInput, "--eval-cmd wrote no JSON to " + out_json);
  }
  if (!j.contains("metric") || !j["metric"].is_number())
    fail(ErrorCode::InvalidInput, out_json + ": no numeric \"metric\" key");
  double v = j["metric"];
  if (!std::isfinite(v)) fail(ErrorCode::InvalidInput, out_json + ": the metric is not finite");
  return v;
}

}  // namespace

}  // namespace tuning

void run_tune_trial(const std::string& dir) {
  using namespace tuning;
  auto start = std::chrono::steady_clock::now();
  TrialSpec spec = TrialSpec::from_json(nlohmann::json::parse(read_file(dir + "/trial.json")));
  TrialMetrics m;
  Scores scores;
  try {
    std::ofstream log(dir + "/log.txt");
    QuantizeOptions o;
    o.model = spec.model;
    o.target = spec.target;
    o.calib = spec.calib;
    o.setting_file = dir + "/setting.yaml";
    o.out_dir = dir + "/out";
    auto ctx = run_quantize(o, log);
    m.calib_algorithm = calib_algorithm_name(ctx->calibration_report.algorithm);
    if (ctx->report) m.output_noise_ratio = ctx->report->output_noise_ratio;
    m.deployable = find_deployable(o.out_dir);
    for (const auto& [name, c] : ctx->plan.values)
      if (c.role == QuantRole::Activation && (c.state == QuantState::Float || (has_integer_grid(&c) && c.bits > 8)))
        ++m.wide_units;
    for (const auto& op : ctx->graph->ops())
      for (const Value* v : op->inputs)
        if (v && v->is_constant())
          if (const QuantConfig* c = ctx->plan.find(v->name); c && c->role == QuantRole::Weight)
            m.weight_bytes += v->data->numel() * (has_integer_grid(c) ? (c->bits + 7) / 8 : 4);
    MetricKind kind = parse_metric(spec.metric);
    auto data = open_dataset(spec.eval, ctx->setting().preprocess);
    auto float_graph = load_model(spec.model);
    SampleScores s;
    EvaluateReport r =
        evaluate_models(*float_graph, *ctx->graph, ctx->plan, *data, 100, spec.eval_limit, &ctx->target, &s);
    if (kind == MetricKind::Top1 && !r.labelled)
      fail(ErrorCode::InvalidInput, spec.eval + ": metric top1 needs labelled evaluation data");
    scores.correct.assign(s.correct.begin(), s.correct.end());
    scores.agree.assign(s.agree.begin(), s.agree.end());
    scores.signal = s.signal;
    scores.noise = s.noise;
    scores.dot = s.dot;
    scores.quant2 = s.quant2;
    if (kind == MetricKind::Command) {
      if (m.deployable.empty()) fail(ErrorCode::InvalidInput, "--eval-cmd needs a deployable file (format none?)");
      m.value = run_eval_cmd(spec, dir, m.deployable);
      m.float_value = std::nan("");
    } else {
      m.value = aggregate(kind, scores);
      // The float model's own score: its top-1, or the perfect agreement with itself.
      m.float_value = kind == MetricKind::Top1        ? r.float_accuracy.top1
                      : kind == MetricKind::Agreement ? 100.0
                      : kind == MetricKind::Cosine    ? 1.0
                                                      : 200.0;
    }
    m.ok = true;
  } catch (const Error& e) {
    m.ok = false;
    m.reason = e.what();
  } catch (const std::exception& e) {
    m.ok = false;
    m.reason = std::string("internal error: ") + e.what();
  }
  m.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (m.ok) write_file_atomic(dir + "/scores.json", scores.to_json().dump() + "\n");
  nlohmann::json j = m.to_json();
  if (m.ok) j["seconds"] = m.seconds;
  write_file_atomic(dir + "/metrics.json", j.dump(1) + "\n");
}

}  // namespace edgequant
