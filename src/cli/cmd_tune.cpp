// `edgequant tune` (the automatic tuning loop) and its worker `tune-trial`.
#include <iostream>

#include "cli/commands.h"
#include "edgequant/tune.h"

namespace edgequant::cli {

namespace {
// "30m", "90s", "2h" or plain seconds.
double parse_duration(const std::string& text) {
  if (text.empty()) return 0;
  size_t used = 0;
  double v = 0;
  try {
    v = std::stod(text, &used);
  } catch (const std::exception&) {
    fail(ErrorCode::InvalidInput, "--time-limit '" + text + "' is not a duration (e.g. 90s, 30m, 2h)");
  }
  std::string unit = text.substr(used);
  if (unit.empty() || unit == "s") return v;
  if (unit == "m") return v * 60;
  if (unit == "h") return v * 3600;
  fail(ErrorCode::InvalidInput, "--time-limit '" + text + "' is not a duration (e.g. 90s, 30m, 2h)");
}
}  // namespace

void add_tune_commands(CLI::App& app, Action& action) {
  static TuneOptions t;
  static std::string time_limit, direction = "max";
  static double target_metric = 0;
  auto* tc = app.add_subcommand("tune",
                                "Automatic tuning: measured trials of calibrators, training and the playbook's "
                                "levers, kept only when they beat the metric's noise");
  tc->add_option("model", t.model, "float ONNX model (omit with --resume)");
  tc->add_option("--target,-t", t.target, "target name or .yaml file");
  tc->add_option("--calib,-c", t.calib, "calibration data");
  tc->add_option("--eval,-e", t.eval, "evaluation data (labelled for top1), never used for calibration");
  tc->add_option("--eval-limit", t.eval_limit, "evaluate only the first N samples");
  tc->add_option("--metric", t.metric,
                 "top1 | agreement | sqnr | cosine | cmd (default: top1 when labelled, else sqnr)");
  tc->add_option("--eval-cmd", t.eval_cmd,
                 "program scoring each trial's deployable: '{model}' and '{out_json}' are replaced; it writes "
                 "{\"metric\": value}");
  tc->add_option("--eval-cmd-direction", direction, "max | min: which way --eval-cmd's metric is better")
      ->check(CLI::IsMember({"max", "min"}));
  tc->add_option("--eval-cmd-noise", t.eval_cmd_noise, "the noise of --eval-cmd's metric (default 0)");
  auto* tm = tc->add_option("--target-metric", target_metric, "stop when the best reaches this value");
  tc->add_option("--budget", t.budget, "trials at most (default 16)");
  tc->add_option("--time-limit", time_limit, "no trial starts after this (e.g. 30m)");
  tc->add_option("--trial-timeout", t.trial_timeout_s, "seconds after which a trial is killed and marked failed");
  tc->add_option("--jobs,-j", t.jobs, "trials run at once (cores split between them)");
  tc->add_option("--noise-k", t.noise_k, "keep a change when it gains more than K x the noise (default 2)");
  tc->add_option("--setting,-s", t.setting_file, "base setting (YAML/JSON)");
  tc->add_option("--playbook", t.playbook, "rules file (default: the shipped tuning/playbook.yaml)");
  tc->add_option("--out,-o", t.out_dir, "output directory")->required();
  tc->add_flag("--resume", t.resume, "continue the run in --out (after a crash or kill)");
  tc->callback([&action, tm] {
    action = [tm] {
      t.has_target_metric = tm->count() > 0;
      t.target_metric = target_metric;
      t.eval_cmd_maximize = direction == "max";
      t.time_limit_s = parse_duration(time_limit);
      if (!t.resume)
        for (const auto& [value, name] :
             {std::pair{&t.model, "model"}, {&t.target, "--target"}, {&t.calib, "--calib"}, {&t.eval, "--eval"}})
          if (value->empty()) fail(ErrorCode::InvalidInput, std::string("tune needs ") + name + " (or --resume)");
      tune(t, std::cout);
    };
  });

  static std::string trial_dir;
  auto* wc = app.add_subcommand("tune-trial", "");  // the worker `tune` starts: no help entry
  wc->group("");
  wc->add_option("dir", trial_dir, "trial directory")->required();
  wc->callback([&action] { action = [] { run_tune_trial(trial_dir); }; });
}

}  // namespace edgequant::cli
