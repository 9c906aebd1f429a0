// `edgequant tune`: the automatic tuning loop. Rules of tuning/playbook.yaml propose settings from
// the measured error analysis; every trial is measured and a change is kept only when it beats
// the incumbent by more than the metric's noise (paired bootstrap over the evaluation samples).
// Phases: baseline -> calibrators -> training with the best calibrators -> one lever at a time ->
// stacking -> calibrators on the stack -> ablation -> best/. Deterministic and resumable: the
// state of every finished trial is on disk, and a rerun replays the same decisions.
#pragma once
#include <iosfwd>
#include <string>
#include <vector>

#include "edgequant/error.h"

namespace edgequant {

struct TuneOptions {
  std::string model, target, calib;  // as for quantize
  std::string eval;                  // evaluation data (labelled for top1)
  int64_t eval_limit = 0;            // evaluate only the first N samples (0: all)
  // top1 (labelled data) | agreement (top-1 agreement with the float model, %) | sqnr (dB) |
  // cosine | cmd (--eval-cmd); "" = top1 on labelled data, else sqnr.
  std::string metric;
  // A user program run on each trial's deployable: "{model}" and "{out_json}" are replaced; it
  // writes {"metric": value}. Direction: eval_cmd_maximize.
  std::string eval_cmd;
  bool eval_cmd_maximize = true;
  double eval_cmd_noise = 0;  // the program's noise (its metric has no samples to resample)
  double target_metric = 0;   // stop when reached (has_target_metric)
  bool has_target_metric = false;
  int budget = 16;             // trials at most
  double time_limit_s = 0;     // 0: none; checked before each trial is started
  double trial_timeout_s = 0;  // a trial running longer is killed and marked failed (0: none)
  int jobs = 1;                // trials run at once (each on cores / jobs threads)
  double noise_k = 2;          // keep a change when it gains more than noise_k x the noise
  std::string setting_file;    // the base setting ("" = the target's defaults)
  std::string playbook;        // rules file ("" = the shipped tuning/playbook.yaml)
  std::string out_dir;         // DIR: trials/, best/, report.json, final_report.md
  bool resume = false;         // continue DIR (its tune.json gives the options)
  std::string worker;          // the edgequant executable that runs a trial ("" = this process's)
};

struct TuneResult {
  int trials = 0, trials_run = 0;  // in the history; run by this call (the rest were resumed)
  std::string best_trial;          // "trials/NNN"
  double best_metric = 0, baseline_metric = 0, float_metric = 0;
  std::string metric;
  std::string stop_reason;
  std::vector<std::string> best_changes;  // the levers of the best setting
};

// Throws edgequant::Error (InvalidInput for bad options, data or a --resume directory of another run).
TuneResult tune(const TuneOptions& options, std::ostream& log);

// The worker: runs the trial described by DIR/trial.json and DIR/setting.yaml and writes
// DIR/metrics.json (and DIR/scores.json, DIR/out/) atomically. `edgequant tune-trial DIR`.
void run_tune_trial(const std::string& dir);

}  // namespace edgequant
