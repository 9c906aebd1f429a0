// The search of `edgequant tune` (edgequant/tune.h): phases, decisions by measured gain against
// the metric's noise, the state on disk, resume by replay, and the reports.
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "api/load.h"
#include "core/files.h"
#include "data/dataset.h"
#include "edgequant/tune.h"
#include "target/setting.h"
#include "target/target.h"
#include "tune/launcher.h"
#include "tune/metric.h"
#include "tune/playbook.h"
#include "tune/trial.h"

namespace edgequant {
namespace tuning {
namespace {

namespace fs = std::filesystem;
using clock = std::chrono::steady_clock;

// Why the search stopped. Target and Plateau end the search but still let ablation remove cost;
// Budget and Time end it at once.
enum class Stop { None, Target, Plateau, Budget, Time, Complete };

// The search's phases, in order (docs/tuning.md).
enum class Phase { Baseline, Calibrator, Training, Lever, Stack, CalibratorOnStack, Ablation };
const char* phase_name(Phase p) {
  switch (p) {
    case Phase::Baseline:
      return "baseline";
    case Phase::Calibrator:
      return "calibrator";
    case Phase::Training:
      return "training";
    case Phase::Lever:
      return "lever";
    case Phase::Stack:
      return "stack";
    case Phase::CalibratorOnStack:
      return "calibrator-on-stack";
    case Phase::Ablation:
      return "ablation";
  }
  return "?";
}
// Lever, stack and calibrator-on-stack trials: where a plateau ends the search.
bool exploring(Phase p) { return p == Phase::Lever || p == Phase::Stack || p == Phase::CalibratorOnStack; }

// A candidate setting: the calibrator ("" = the base setting's) and the levers applied, in the
// playbook's order.
struct Candidate {
  std::string calibrator;
  std::vector<std::string> levers;
  Phase phase = Phase::Baseline;
  std::string change, why;
  int parent = -1;
};

struct Trial {
  int index = 0;
  Candidate c;
  std::string setting;  // the setting file's text
  TrialMetrics m;
  Scores scores;
  nlohmann::json analysis;
  double cost = 0;
  std::string outcome;  // baseline | adopted | kept-incumbent | failed
  double delta = 0, noise = 0;
  bool resumed = false;
  std::string dir() const {
    std::ostringstream s;
    s << "trials/" << std::setw(3) << std::setfill('0') << index;
    return s.str();
  }
};

// Deep merge: mappings merge key by key, anything else replaces.
void merge(YAML::Node into, const YAML::Node& from) {
  for (const auto& kv : from) {
    std::string key = kv.first.as<std::string>();
    if (kv.second.IsMap() && into[key] && into[key].IsMap())
      merge(into[key], kv.second);
    else
      into[key] = YAML::Clone(kv.second);
  }
}

std::string join(const std::vector<std::string>& v, const char* sep) {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : sep) + x;
  return s;
}

// A Markdown table cell: '|' would end it.
std::string cell(const std::string& text) {
  std::string s;
  for (char ch : text) s += ch == '|' ? std::string("\\|") : std::string(1, ch);
  return s;
}

std::string fixed(double v, int digits) {
  std::ostringstream s;
  s << std::fixed << std::setprecision(digits) << v;
  return s.str();
}

class Tuner {
 public:
  Tuner(TuneOptions o, std::ostream& log) : o_(std::move(o)), log_(log) {}

  TuneResult run();

 private:
  void open_run();
  std::string setting_text(const Candidate& c) const;
  double cost_of(const Candidate& c) const;
  std::vector<Trial*> measure(std::vector<Candidate> batch);
  // Compares `t` with the incumbent and adopts it when it gains more than the noise (or ties
  // and is cheaper). Returns whether it was adopted.
  bool decide(Trial& t, bool adopt_allowed = true);
  double signed_value(const Trial& t) const { return maximize_ ? t.m.value : -t.m.value; }
  bool stopped() const { return stop_ != Stop::None; }
  void stop(Stop why, std::string text) {
    stop_ = why;
    stop_reason_ = std::move(text);
  }
  void check_stop_after(const Trial& t);
  std::vector<const Lever*> fired(const Trial& incumbent, Facts* facts_out) const;
  bool applies(const Lever& l) const;
  std::vector<std::string> ordered(std::vector<std::string> levers) const;
  void write_decision(const Trial& t, const nlohmann::json& extra) const;
  void finalize();
  std::string describe(const Candidate& c) const;

  TuneOptions o_;
  std::ostream& log_;
  Playbook playbook_;
  MetricKind kind_ = MetricKind::Top1;
  bool maximize_ = true;
  bool power_of_two_ = true;
  YAML::Node base_;
  Facts weights_;
  nlohmann::json identity_;
  std::unique_ptr<Launcher> launcher_;
  std::vector<std::unique_ptr<Trial>> trials_;
  Trial* incumbent_ = nullptr;
  Stop stop_ = Stop::None;
  std::string stop_reason_;
  clock::time_point start_ = clock::now();
  int run_now_ = 0;
  std::vector<nlohmann::json> facts_log_;
};

std::string Tuner::describe(const Candidate& c) const {
  std::string s = c.calibrator.empty() ? "base calibrator" : "calib " + c.calibrator;
  for (const auto& l : c.levers) s += " +" + l;
  return s;
}

void Tuner::open_run() {
  if (o_.out_dir.empty()) fail(ErrorCode::InvalidInput, "tune needs --out DIR");
  std::string state = o_.out_dir + "/tune.json";
  if (o_.resume) {
    if (!fs::exists(state)) fail(ErrorCode::InvalidInput, o_.out_dir + ": no tune.json to resume");
    nlohmann::json saved = nlohmann::json::parse(read_file(state));
    const auto& so = saved.at("options");
    // The run's own options; a model or target given with --resume must be the run's.
    auto check = [&](const std::string& given, const char* key, const char* what) {
      if (!given.empty() && given != so.at(key).get<std::string>())
        fail(ErrorCode::InvalidInput, o_.out_dir + ": tuned " + what + " '" + so.at(key).get<std::string>() +
                                          "', not '" + given + "'; use another --out");
    };
    check(o_.model, "model", "the model");
    check(o_.target, "target", "for target");
    o_.model = so.at("model");
    o_.target = so.at("target");
    o_.calib = so.at("calib");
    o_.eval = so.at("eval");
    o_.eval_limit = so.at("eval_limit");
    o_.metric = so.at("metric");
    o_.eval_cmd = so.value("eval_cmd", "");
    o_.eval_cmd_maximize = so.value("eval_cmd_maximize", true);
    o_.eval_cmd_noise = so.value("eval_cmd_noise", 0.0);
    o_.has_target_metric = so.value("has_target_metric", false);
    o_.target_metric = so.value("target_metric", 0.0);
    o_.budget = so.at("budget");
    o_.noise_k = so.at("noise_k");
    o_.setting_file = so.value("setting_file", "");
    o_.playbook = so.value("playbook", "");
    o_.trial_timeout_s = so.value("trial_timeout_s", 0.0);
    // The files must still be the ones tuned: a changed model, setting or playbook would
    // silently mix trials of two runs.
    const auto& si = saved.at("identity");
    for (const auto& [key, path] : std::map<std::string, std::string>{
             {"model", o_.model}, {"setting", o_.setting_file}, {"playbook", o_.playbook}})
      if (si.value(key, "") != file_hash(path))
        fail(ErrorCode::InvalidInput,
             o_.out_dir + ": " + key + " file '" + path + "' changed since this run started; resume refused");
  } else if (fs::exists(state)) {
    fail(ErrorCode::InvalidInput, o_.out_dir + " holds a tuning run already: --resume it or choose another --out");
  }
  if (o_.playbook.empty()) o_.playbook = default_playbook_path();
  playbook_ = load_playbook(o_.playbook);
  Target target = load_target(o_.target);
  power_of_two_ = target.scale_kind == ScaleKind::PowerOfTwo;
  if (!o_.setting_file.empty()) load_setting(o_.setting_file);  // refuse a bad base before any trial
  if (o_.eval.empty()) fail(ErrorCode::InvalidInput, "tune needs --eval DATA (samples the scales never saw)");
  if (o_.metric.empty()) {
    if (!o_.eval_cmd.empty()) {
      o_.metric = "cmd";
    } else {
      Setting s = o_.setting_file.empty() ? Setting{} : load_setting(o_.setting_file);
      o_.metric = open_dataset(o_.eval, s.preprocess)->has_labels() ? "top1" : "sqnr";
    }
  }
  kind_ = parse_metric(o_.metric);
  if (kind_ == MetricKind::Command && o_.eval_cmd.empty()) fail(ErrorCode::InvalidInput, "metric cmd needs --eval-cmd");
  maximize_ = kind_ != MetricKind::Command || o_.eval_cmd_maximize;
  base_ = o_.setting_file.empty() ? YAML::Node(YAML::NodeType::Map) : YAML::LoadFile(o_.setting_file);
  if (!base_.IsMap()) base_ = YAML::Node(YAML::NodeType::Map);
  weights_ = weight_facts(*load_model(o_.model));
  std::string worker = o_.worker;
  if (worker.empty()) worker = fs::read_symlink("/proc/self/exe").string();
  launcher_ = local_launcher(worker, o_.jobs, o_.trial_timeout_s);
  identity_ = {{"model", file_hash(o_.model)},
               {"setting", file_hash(o_.setting_file)},
               {"playbook", file_hash(o_.playbook)},
               {"target", target.name}};
  make_directories(o_.out_dir + "/trials");
  if (!o_.resume) {
    nlohmann::json so = {{"model", o_.model},
                         {"target", o_.target},
                         {"calib", o_.calib},
                         {"eval", o_.eval},
                         {"eval_limit", o_.eval_limit},
                         {"metric", o_.metric},
                         {"eval_cmd", o_.eval_cmd},
                         {"eval_cmd_maximize", o_.eval_cmd_maximize},
                         {"eval_cmd_noise", o_.eval_cmd_noise},
                         {"has_target_metric", o_.has_target_metric},
                         {"target_metric", o_.target_metric},
                         {"budget", o_.budget},
                         {"noise_k", o_.noise_k},
                         {"setting_file", o_.setting_file},
                         {"playbook", o_.playbook},
                         {"trial_timeout_s", o_.trial_timeout_s}};
    write_file_atomic(state, nlohmann::json{{"options", so}, {"identity", identity_}}.dump(1) + "\n");
  }
}

std::vector<std::string> Tuner::ordered(std::vector<std::string> levers) const {
  auto rank = [this](const std::string& n) {
    int i = 0;
    for (const auto* list : {&playbook_.training, &playbook_.levers})
      for (const Lever& l : *list) {
        if (l.name == n) return i;
        ++i;
      }
    return i;
  };
  std::stable_sort(levers.begin(), levers.end(),
                   [&](const std::string& a, const std::string& b) { return rank(a) < rank(b); });
  return levers;
}

std::string Tuner::setting_text(const Candidate& c) const {
  YAML::Node s = YAML::Clone(base_);
  if (!c.calibrator.empty()) s["calib_algorithm"] = c.calibrator;
  for (const auto& name : c.levers) merge(s, playbook_.find(name)->set);
  YAML::Emitter e;
  e << s;
  return std::string(e.c_str()) + "\n";
}

double Tuner::cost_of(const Candidate& c) const {
  double cost = 0;
  for (const auto& name : c.levers) cost += playbook_.find(name)->cost;
  return cost;
}

bool Tuner::applies(const Lever& l) const {
  return l.scale == ScaleScope::Any || (l.scale == ScaleScope::PowerOfTwo) == power_of_two_;
}

std::vector<Trial*> Tuner::measure(std::vector<Candidate> batch) {
  std::vector<Trial*> out;
  // A setting already measured is not measured twice (the history keeps the first): compared
  // as the setting file the worker would run, so a calibrator named or inherited, or levers
  // listed in another order, are the same trial.
  std::set<std::string> seen;
  for (const auto& t : trials_) seen.insert(t->setting);
  for (auto it = batch.begin(); it != batch.end();) {
    it->levers = ordered(it->levers);
    it = seen.insert(setting_text(*it)).second ? it + 1 : batch.erase(it);
  }
  if (stopped() || batch.empty()) return out;
  if (o_.time_limit_s > 0 && std::chrono::duration<double>(clock::now() - start_).count() > o_.time_limit_s) {
    stop(Stop::Time, "time limit (" + fixed(o_.time_limit_s, 0) + " s) reached");
    return out;
  }
  int room = o_.budget - static_cast<int>(trials_.size());
  if (room <= 0) {
    stop(Stop::Budget, "trial budget (" + std::to_string(o_.budget) + ") used");
    return out;
  }
  if (static_cast<int>(batch.size()) > room) batch.resize(static_cast<size_t>(room));
  std::vector<std::string> launch;
  for (auto& c : batch) {
    auto t = std::make_unique<Trial>();
    t->index = static_cast<int>(trials_.size());
    t->c = c;
    t->cost = cost_of(c);
    t->setting = setting_text(c);
    std::string dir = o_.out_dir + "/" + t->dir();
    const std::string& setting = t->setting;
    TrialSpec spec{o_.model,    o_.target,          o_.calib,
                   o_.eval,     o_.eval_limit,      o_.metric,
                   o_.eval_cmd, o_.trial_timeout_s, launcher_->threads_per_trial()};
    std::string spec_text = spec.to_json().dump(1) + "\n";
    // Resume: a trial that finished with this very setting is read back, not run again.
    bool done = fs::exists(dir + "/metrics.json") && fs::exists(dir + "/setting.yaml") &&
                read_file(dir + "/setting.yaml") == setting;
    if (!done) {
      std::error_code ec;
      fs::remove_all(dir, ec);
      make_directories(dir);
      write_file_atomic(dir + "/setting.yaml", setting);
      write_file_atomic(dir + "/trial.json", spec_text);
      launch.push_back(dir);
    } else {
      t->resumed = true;
    }
    trials_.push_back(std::move(t));
    out.push_back(trials_.back().get());
  }
  if (!launch.empty()) {
    log_ << "  running " << launch.size() << " trial" << (launch.size() == 1 ? "" : "s") << " (" << out.front()->dir()
         << (out.size() > 1 ? " .. " + out.back()->dir() : "") << ")\n"
         << std::flush;
    launcher_->run(launch);
    run_now_ += static_cast<int>(launch.size());
  }
  for (Trial* t : out) {
    std::string dir = o_.out_dir + "/" + t->dir();
    t->m = TrialMetrics::from_json(nlohmann::json::parse(read_file(dir + "/metrics.json")));
    if (t->m.ok && fs::exists(dir + "/scores.json"))
      t->scores = Scores::from_json(nlohmann::json::parse(read_file(dir + "/scores.json")));
    if (t->m.ok && fs::exists(dir + "/out/analysis.json"))
      t->analysis = nlohmann::json::parse(read_file(dir + "/out/analysis.json"));
  }
  return out;
}

void Tuner::write_decision(const Trial& t, const nlohmann::json& extra) const {
  nlohmann::json d = {
      {"trial", t.dir()},         {"phase", phase_name(t.c.phase)},
      {"change", t.c.change},     {"why", t.c.why},
      {"setting", describe(t.c)}, {"parent", t.c.parent >= 0 ? trials_[static_cast<size_t>(t.c.parent)]->dir() : ""},
      {"outcome", t.outcome}};
  if (t.m.ok) {
    d["value"] = t.m.value;
    d["delta"] = t.delta;
    d["noise"] = t.noise;
    d["threshold"] = o_.noise_k * t.noise;
  } else {
    d["reason"] = t.m.reason;
  }
  d["cost"] = t.cost;
  d.update(extra);
  write_file_atomic(o_.out_dir + "/" + t.dir() + "/decision.json", d.dump(1) + "\n");
}

bool Tuner::decide(Trial& t, bool adopt_allowed) {
  bool adopted = false;
  if (!t.m.ok) {
    t.outcome = "failed";
  } else if (!incumbent_) {
    t.outcome = "baseline";
    incumbent_ = &t;
    adopted = true;
  } else {
    t.delta = signed_value(t) - signed_value(*incumbent_);
    t.noise = kind_ == MetricKind::Command ? o_.eval_cmd_noise : paired_noise(kind_, t.scores, incumbent_->scores);
    double threshold = o_.noise_k * t.noise;
    bool better = t.delta > threshold;
    bool tie_cheaper = std::fabs(t.delta) <= threshold && t.cost < incumbent_->cost;
    if (adopt_allowed && (better || tie_cheaper)) {
      t.outcome = better ? "adopted" : "adopted (tie, cheaper)";
      incumbent_ = &t;
      adopted = true;
    } else {
      t.outcome = better ? "helped (not adopted)" : "kept incumbent";
    }
  }
  write_decision(t, nlohmann::json::object());
  std::string value = t.m.ok ? fixed(t.m.value, 3) + metric_unit(kind_) : "FAILED: " + t.m.reason;
  log_ << "[" << (t.index + 1) << "/" << o_.budget << "] " << t.dir() << " " << phase_name(t.c.phase) << ": "
       << describe(t.c) << " -> " << value;
  if (t.m.ok && t.outcome != "baseline")
    log_ << " (delta " << (t.delta >= 0 ? "+" : "") << fixed(t.delta, 3) << ", noise " << fixed(t.noise, 3) << ")";
  // ETA: the budget's remaining trials at the mean pace so far (training trials are slower).
  double elapsed = std::chrono::duration<double>(clock::now() - start_).count();
  int left = o_.budget - (t.index + 1);
  log_ << " " << t.outcome << (t.resumed ? " [resumed]" : "") << "; best "
       << fixed(incumbent_ ? incumbent_->m.value : 0, 3) << metric_unit(kind_) << "; " << fixed(elapsed, 0) << " s";
  if (left > 0 && run_now_ > 0) log_ << ", ~" << fixed(elapsed / (t.index + 1) * left, 0) << " s left for the budget";
  log_ << "\n" << std::flush;
  check_stop_after(t);
  return adopted;
}

void Tuner::check_stop_after(const Trial& t) {
  if (stopped() || !incumbent_) return;
  if (t.c.phase == Phase::Ablation) {  // only removes cost: the budget is its only stop
    if (static_cast<int>(trials_.size()) >= o_.budget)
      stop(Stop::Budget, "trial budget (" + std::to_string(o_.budget) + ") used");
    return;
  }
  if (o_.has_target_metric &&
      (maximize_ ? incumbent_->m.value >= o_.target_metric : incumbent_->m.value <= o_.target_metric)) {
    stop(Stop::Target, "target metric " + fixed(o_.target_metric, 3) + " reached");
    return;
  }
  // Plateau after the calibrator and training phases: the last three trials all within 0.1 %
  // (relative) of the best.
  if (exploring(t.c.phase)) {
    int near = 0;
    for (size_t i = trials_.size(); i-- > 0 && near < 3;) {
      const Trial& x = *trials_[i];
      if (!exploring(x.c.phase)) break;
      if (!x.m.ok || std::fabs(x.m.value - incumbent_->m.value) > 1e-3 * std::fabs(incumbent_->m.value)) break;
      if (&x == incumbent_) break;
      ++near;
    }
    if (near >= 3) stop(Stop::Plateau, "plateau: the last 3 trials were within 0.1 % of the best");
  }
  if (static_cast<int>(trials_.size()) >= o_.budget && !stopped())
    stop(Stop::Budget, "trial budget (" + std::to_string(o_.budget) + ") used");
}

std::vector<const Lever*> Tuner::fired(const Trial& inc, Facts* facts_out) const {
  Facts f = trial_facts(inc.analysis, inc.m.value, inc.m.float_value,
                        kind_ == MetricKind::Top1 || kind_ == MetricKind::Agreement, inc.c.levers, weights_);
  if (facts_out) *facts_out = f;
  std::vector<const Lever*> out;
  for (const Lever& l : playbook_.levers) {
    if (!applies(l)) continue;
    if (std::find(inc.c.levers.begin(), inc.c.levers.end(), l.name) != inc.c.levers.end()) continue;
    bool conflict = false;
    for (const auto& have : inc.c.levers) conflict = conflict || playbook_.conflict(l.name, have);
    if (conflict) continue;
    bool all = true;
    for (const Condition& c : l.when) all = all && c.holds(f.at(c.fact));
    if (all) out.push_back(&l);
  }
  return out;
}

TuneResult Tuner::run() {
  open_run();
  log_ << "tune " << o_.model << " for " << o_.target << ": metric " << o_.metric << " on " << o_.eval << ", budget "
       << o_.budget << " trials, " << o_.jobs << " job" << (o_.jobs == 1 ? "" : "s") << ", playbook " << o_.playbook
       << "\n";
  // 1. Baseline: the base setting as given.
  Candidate base{"", {}, Phase::Baseline, "the base setting", "the target's defaults and the user's setting", -1};
  for (Trial* t : measure({base})) decide(*t);
  if (!incumbent_) {
    std::string why = trials_.empty() ? stop_reason_ : trials_[0]->m.reason;
    fail(ErrorCode::InvalidInput, "the baseline trial failed: " + why);
  }
  Trial* baseline = incumbent_;
  // 2. Calibrators (their order is the playbook's; the base's own is not repeated).
  std::vector<Candidate> calibs;
  for (const auto& c : playbook_.calibrators)
    if (c != baseline->m.calib_algorithm)
      calibs.push_back(
          {c, {}, Phase::Calibrator, "calib_algorithm: " + c, "phase 2: every calibrator", baseline->index});
  std::vector<Trial*> calib_trials = measure(calibs);
  for (Trial* t : calib_trials) decide(*t);
  // Calibrators ranked by their measured value (the baseline's included).
  std::vector<Trial*> ranked = calib_trials;
  ranked.push_back(baseline);
  ranked.erase(std::remove_if(ranked.begin(), ranked.end(), [](Trial* t) { return !t->m.ok; }), ranked.end());
  std::stable_sort(ranked.begin(), ranked.end(),
                   [this](Trial* a, Trial* b) { return signed_value(*a) > signed_value(*b); });
  // 3. Training with the best calibrators.
  std::vector<Trial*> trained;
  for (const Lever& l : playbook_.training) {
    if (!applies(l) || stopped()) continue;
    std::vector<Candidate> train;
    for (size_t i = 0; i < ranked.size() && static_cast<int>(i) < playbook_.training_calibrators; ++i)
      train.push_back({ranked[i]->c.calibrator.empty() ? ranked[i]->m.calib_algorithm : ranked[i]->c.calibrator,
                       {l.name},
                       Phase::Training,
                       "+" + l.name + " with calib " + ranked[i]->m.calib_algorithm,
                       l.why,
                       ranked[i]->index});
    for (Trial* t : measure(train)) {
      decide(*t);
      if (t->m.ok) trained.push_back(t);
    }
  }
  Trial* after_training = incumbent_;
  // 4. One lever at a time, as the rules propose them on the measurements of the incumbent and
  // of the best training trial when that was not adopted (a gain within the noise: its own
  // levers, longer or finer training, may still carry it past). All are judged against the
  // incumbent; the best that helped is adopted.
  std::vector<std::pair<Trial*, double>> helped;
  if (!stopped()) {
    std::vector<Trial*> starts = {incumbent_};
    std::stable_sort(trained.begin(), trained.end(),
                     [this](Trial* a, Trial* b) { return signed_value(*a) > signed_value(*b); });
    if (!trained.empty() && trained.front() != incumbent_) starts.push_back(trained.front());
    std::vector<Candidate> one;
    for (Trial* from : starts) {
      Facts facts;
      std::vector<const Lever*> levers = fired(*from, &facts);
      nlohmann::json fj = facts;
      facts_log_.push_back({{"trial", from->dir()}, {"facts", fj}});
      write_file_atomic(o_.out_dir + "/" + from->dir() + "/facts.json", fj.dump(1) + "\n");
      for (const Lever* l : levers) {
        std::vector<std::string> when;
        for (const auto& c : l->when) when.push_back(c.text + " (" + fixed(facts.at(c.fact), 3) + ")");
        Candidate c{from->c.calibrator,
                    from->c.levers,
                    Phase::Lever,
                    "+" + l->name + (from == incumbent_ ? "" : " on " + from->dir()),
                    l->why + (when.empty() ? "" : "; fired on " + join(when, ", ")),
                    from->index};
        c.levers.push_back(l->name);
        one.push_back(c);
      }
    }
    for (Trial* t : measure(one)) {
      decide(*t, false);
      if (t->m.ok && t->delta > o_.noise_k * t->noise) helped.push_back({t, t->delta});
    }
    std::stable_sort(helped.begin(), helped.end(), [](const auto& a, const auto& b) { return a.second > b.second; });
    if (!helped.empty()) {
      incumbent_ = helped.front().first;
      incumbent_->outcome = "adopted";
      write_decision(*incumbent_, nlohmann::json::object());
      log_ << "  adopted " << incumbent_->dir() << " (" << incumbent_->c.change << ")\n";
    }
  }
  // 5. Stack the other settings that helped, best gain first: the incumbent with their levers
  // added, each kept only if it still helps.
  for (size_t i = 1; i < helped.size() && !stopped(); ++i) {
    std::vector<std::string> levers = incumbent_->c.levers, added;
    bool conflict = false;
    for (const auto& name : helped[i].first->c.levers) {
      if (std::find(levers.begin(), levers.end(), name) != levers.end()) continue;
      for (const auto& have : levers) conflict = conflict || playbook_.conflict(name, have);
      levers.push_back(name);
      added.push_back(name);
    }
    if (conflict || added.empty()) continue;
    Candidate c{incumbent_->c.calibrator,
                levers,
                Phase::Stack,
                "+" + join(added, " +"),
                "helped alone (" + helped[i].first->dir() + ")",
                incumbent_->index};
    for (Trial* t : measure({c})) decide(*t);
  }
  // 6. Calibrators again on the stack when it grew after training.
  if (!stopped() && incumbent_->c.levers != after_training->c.levers) {
    std::vector<Candidate> again;
    std::string current = incumbent_->m.calib_algorithm;
    for (size_t i = 0; i < ranked.size() && static_cast<int>(i) < playbook_.training_calibrators; ++i) {
      std::string cal = ranked[i]->m.calib_algorithm;
      if (cal == current) continue;
      again.push_back({cal, incumbent_->c.levers, Phase::CalibratorOnStack, "calib " + cal,
                       "phase 6: calibrators re-tested on the stack", incumbent_->index});
    }
    for (Trial* t : measure(again)) decide(*t);
  }
  // 7. Ablation: drop each lever of the final stack; a tie goes to the cheaper setting. It runs
  // after a plateau or the target too (it only removes cost), not past the budget or time.
  if (stop_ == Stop::None || stop_ == Stop::Target || stop_ == Stop::Plateau) {
    Stop why = stop_;
    std::string text = stop_reason_;
    stop(Stop::None, "");
    std::vector<std::string> stack = incumbent_->c.levers;
    for (const auto& name : stack) {
      if (stopped()) break;
      Candidate c{incumbent_->c.calibrator, {}, Phase::Ablation, "-" + name, "ablation: does " + name + " still pay?",
                  incumbent_->index};
      for (const auto& l : incumbent_->c.levers)
        if (l != name) c.levers.push_back(l);
      if (c.levers.size() == incumbent_->c.levers.size()) continue;
      for (Trial* t : measure({c})) decide(*t);
    }
    if (stop_ != Stop::Budget && stop_ != Stop::Time) {
      if (why == Stop::None)
        stop(Stop::Complete, "search complete: every proposed lever measured");
      else
        stop(why, text);
    }
  }
  finalize();
  TuneResult r;
  r.trials = static_cast<int>(trials_.size());
  r.trials_run = run_now_;
  r.best_trial = incumbent_->dir();
  r.best_metric = incumbent_->m.value;
  r.baseline_metric = baseline->m.value;
  r.float_metric = baseline->m.float_value;
  r.metric = o_.metric;
  r.stop_reason = stop_reason_;
  r.best_changes = incumbent_->c.levers;
  if (!incumbent_->c.calibrator.empty())
    r.best_changes.insert(r.best_changes.begin(), "calib " + incumbent_->c.calibrator);
  return r;
}

void Tuner::finalize() {
  Trial& best = *incumbent_;
  std::string from = o_.out_dir + "/" + best.dir();
  std::string to = o_.out_dir + "/best";
  std::error_code ec;
  fs::remove_all(to + ".tmp", ec);
  make_directories(to + ".tmp");
  fs::copy(from + "/out", to + ".tmp", fs::copy_options::recursive, ec);
  if (ec) fail(ErrorCode::Internal, to + ": cannot copy " + from + "/out (" + ec.message() + ")");
  fs::copy_file(from + "/setting.yaml", to + ".tmp/setting.yaml", fs::copy_options::overwrite_existing);
  fs::copy_file(from + "/metrics.json", to + ".tmp/metrics.json", fs::copy_options::overwrite_existing);
  fs::remove_all(to, ec);
  fs::rename(to + ".tmp", to);

  const Trial& baseline = *trials_.front();
  double total_seconds = 0;
  nlohmann::json history = nlohmann::json::array();
  for (const auto& t : trials_) {
    total_seconds += t->m.seconds;
    nlohmann::json h = {{"trial", t->dir()}, {"phase", phase_name(t->c.phase)}, {"change", t->c.change},
                        {"why", t->c.why},   {"setting", describe(t->c)},       {"outcome", t->outcome},
                        {"cost", t->cost},   {"seconds", t->m.seconds}};
    if (t->m.ok) {
      h["value"] = t->m.value;
      h["delta"] = t->delta;
      h["noise"] = t->noise;
      h["weight_bytes"] = t->m.weight_bytes;
      h["wide_units"] = t->m.wide_units;
    } else {
      h["reason"] = t->m.reason;
    }
    history.push_back(h);
  }
  // Accuracy against cost: the trials no other trial beats on both (value up, cost down).
  nlohmann::json pareto = nlohmann::json::array();
  for (const auto& t : trials_) {
    if (!t->m.ok) continue;
    bool dominated = false;
    for (const auto& u : trials_)
      if (u != t && u->m.ok && signed_value(*u) >= signed_value(*t) && u->cost <= t->cost &&
          (signed_value(*u) > signed_value(*t) || u->cost < t->cost))
        dominated = true;
    if (!dominated)
      pareto.push_back({{"trial", t->dir()}, {"value", t->m.value}, {"cost", t->cost}, {"setting", describe(t->c)}});
  }
  nlohmann::json report = {
      {"metric", o_.metric},
      {"maximize", maximize_},
      {"float", baseline.m.float_value},
      {"baseline", {{"trial", baseline.dir()}, {"value", baseline.m.value}}},
      {"best",
       {{"trial", best.dir()},
        {"value", best.m.value},
        {"calibrator", best.m.calib_algorithm},
        {"levers", best.c.levers},
        {"setting", "best/setting.yaml"},
        {"deployable", best.m.deployable.empty() ? "" : "best/" + fs::path(best.m.deployable).filename().string()}}},
      {"stop_reason", stop_reason_},
      {"trials", trials_.size()},
      {"trial_seconds", total_seconds},
      {"baseline_seconds", baseline.m.seconds},
      {"facts", facts_log_},
      {"pareto", pareto},
      {"history", history}};
  write_file_atomic(o_.out_dir + "/report.json", report.dump(1) + "\n");

  std::ostringstream md;
  std::string unit = metric_unit(kind_);
  md << "# Tuning report: " << o_.model << " for " << o_.target << "\n\n"
     << "Metric: " << o_.metric << " on " << o_.eval << " (" << (maximize_ ? "higher" : "lower") << " is better). "
     << "A change was kept only when it gained more than " << fixed(o_.noise_k, 1)
     << " x the paired-bootstrap noise of the difference, or tied and cost less.\n\n"
     << "| | value |\n|---|---|\n"
     << "| float | " << fixed(baseline.m.float_value, 3) << unit << " |\n"
     << "| baseline (" << baseline.dir() << ") | " << fixed(baseline.m.value, 3) << unit << " |\n"
     << "| best (" << best.dir() << ": " << describe(best.c) << ") | " << fixed(best.m.value, 3) << unit << " |\n\n"
     << "Stop: " << stop_reason_ << ". " << trials_.size() << " trials, " << fixed(total_seconds, 1)
     << " s of trial time; a from-scratch quantize (the baseline) took " << fixed(baseline.m.seconds, 1) << " s.\n\n"
     << "## History\n\n| trial | phase | change | why | value | delta | noise | outcome | cost | s |\n"
     << "|---|---|---|---|---|---|---|---|---|---|\n";
  for (const auto& t : trials_) {
    md << "| " << t->dir() << " | " << phase_name(t->c.phase) << " | " << cell(t->c.change) << " | " << cell(t->c.why)
       << " | ";
    if (t->m.ok)
      md << fixed(t->m.value, 3) << " | " << fixed(t->delta, 3) << " | " << fixed(t->noise, 3);
    else
      md << "failed: " << cell(t->m.reason) << " | | ";
    md << " | " << t->outcome << " | " << t->cost << " | " << fixed(t->m.seconds, 1) << " |\n";
  }
  md << "\n## Best setting\n\n```yaml\n"
     << read_file(from + "/setting.yaml") << "```\n\n## What helped, what did not\n\n";
  for (const auto& t : trials_)
    if (t->m.ok && t->outcome != "baseline" && t->c.phase != Phase::Ablation)
      md << "- " << t->c.change << ": " << (t->delta >= 0 ? "+" : "") << fixed(t->delta, 3) << unit << " ("
         << (t->delta > o_.noise_k * t->noise               ? "helped"
             : std::fabs(t->delta) <= o_.noise_k * t->noise ? "within noise"
                                                            : "hurt")
         << ")\n";
  md << "\n## Remaining gap\n\n";
  if (kind_ == MetricKind::Top1 || kind_ == MetricKind::Agreement)
    md << "Best is " << fixed(best.m.float_value - best.m.value, 3) << " points below float. ";
  md << "Not tried by this search: wider per-layer precision beyond the playbook's int16 levers, "
        "longer training than the playbook allows, quantization-aware training.\n";
  write_file_atomic(o_.out_dir + "/final_report.md", md.str());
  log_ << "best: " << best.dir() << " (" << describe(best.c) << ") " << o_.metric << " " << fixed(best.m.value, 3)
       << unit << " (baseline " << fixed(baseline.m.value, 3) << ", float " << fixed(baseline.m.float_value, 3)
       << "); stop: " << stop_reason_ << "; " << o_.out_dir << "/best, report.json, final_report.md\n";
}

}  // namespace
}  // namespace tuning

TuneResult tune(const TuneOptions& options, std::ostream& log) { return tuning::Tuner(options, log).run(); }

}  // namespace edgequant
