#include "tune/playbook.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <set>
#include <sstream>

#include "exec/executor.h"
#include "ir/graph.h"
#include "ir/quant_config.h"
#include "target/yaml_util.h"

namespace edgequant::tuning {

bool Condition::holds(double x) const {
  if (op == "<") return x < value;
  if (op == "<=") return x <= value;
  if (op == ">") return x > value;
  if (op == ">=") return x >= value;
  if (op == "==") return x == value;
  return x != value;
}

const Lever* Playbook::find(const std::string& name) const {
  for (const auto* list : {&training, &levers})
    for (const Lever& l : *list)
      if (l.name == name) return &l;
  return nullptr;
}

bool Playbook::conflict(const std::string& a, const std::string& b) const {
  const Lever *la = find(a), *lb = find(b);
  auto lists = [](const Lever* l, const std::string& other) {
    return l && std::find(l->conflicts.begin(), l->conflicts.end(), other) != l->conflicts.end();
  };
  return lists(la, b) || lists(lb, a);
}

const std::vector<std::string>& fact_names() {
  static const std::vector<std::string> names = {"uses_tqt",
                                                 "uses_training",
                                                 "top_error_ratio",
                                                 "top3_noise_bias",
                                                 "hot_elementwise",
                                                 "act_kurtosis",
                                                 "act_max_over_std",
                                                 "weight_channel_ratio",
                                                 "weight_kurtosis",
                                                 "weight_max_over_std",
                                                 "gap",
                                                 "units",
                                                 "output_noise_ratio"};
  return names;
}

std::string default_playbook_path() { return EQ_PLAYBOOK_FILE; }

namespace {

Condition parse_condition(const std::string& text, const std::string& where) {
  std::istringstream in(text);
  Condition c;
  c.text = text;
  std::string value, rest;
  if (!(in >> c.fact >> c.op >> value) || (in >> rest))
    fail(ErrorCode::InvalidSetting, where + ": condition '" + text + "' is not 'fact op number'");
  const auto& facts = fact_names();
  if (std::find(facts.begin(), facts.end(), c.fact) == facts.end()) {
    std::string list;
    for (const auto& f : facts) list += (list.empty() ? "" : ", ") + f;
    fail(ErrorCode::InvalidSetting, where + ": unknown fact '" + c.fact + "' (facts: " + list + ")");
  }
  static const std::set<std::string> ops = {"<", "<=", ">", ">=", "==", "!="};
  if (!ops.count(c.op)) fail(ErrorCode::InvalidSetting, where + ": unknown operator '" + c.op + "' in '" + text + "'");
  try {
    size_t used = 0;
    c.value = std::stod(value, &used);
    if (used != value.size()) throw std::invalid_argument(value);
  } catch (const std::exception&) {
    fail(ErrorCode::InvalidSetting, where + ": '" + value + "' in '" + text + "' is not a number");
  }
  return c;
}

Lever parse_lever(const YAML::Node& n, const std::string& where) {
  check_keys(n, {"name", "why", "when", "set", "cost", "scale", "conflicts"}, where, ErrorCode::InvalidSetting);
  Lever l;
  l.name = get_or<std::string>(n, "name", "", where, ErrorCode::InvalidSetting);
  if (l.name.empty()) fail(ErrorCode::InvalidSetting, where + ": a lever needs a name");
  std::string at = where + " '" + l.name + "'";
  l.why = get_or<std::string>(n, "why", "", at, ErrorCode::InvalidSetting);
  l.cost = get_or<double>(n, "cost", 0.0, at, ErrorCode::InvalidSetting);
  std::string scale = get_or<std::string>(n, "scale", "any", at, ErrorCode::InvalidSetting);
  if (scale == "power_of_two")
    l.scale = ScaleScope::PowerOfTwo;
  else if (scale == "float")
    l.scale = ScaleScope::Float;
  else if (scale != "any")
    fail(ErrorCode::InvalidSetting, at + ": scale '" + scale + "' is not any, power_of_two or float");
  for (const auto& c : get_or<std::vector<std::string>>(n, "when", {}, at, ErrorCode::InvalidSetting))
    l.when.push_back(parse_condition(c, at));
  l.conflicts = get_or<std::vector<std::string>>(n, "conflicts", {}, at, ErrorCode::InvalidSetting);
  l.set = n["set"] ? YAML::Clone(n["set"]) : YAML::Node();
  if (!l.set.IsMap()) fail(ErrorCode::InvalidSetting, at + ": 'set' must be a mapping of setting keys");
  return l;
}

double kurtosis_of(const at::Tensor& x) {
  at::Tensor d = x.to(at::kDouble).flatten();
  d = d - d.mean();
  double var = (d * d).mean().item<double>();
  return var > 0 ? (d * d * d * d).mean().item<double>() / (var * var) : 0;
}

}  // namespace

Playbook load_playbook(const std::string& path) {
  YAML::Node root;
  try {
    root = YAML::LoadFile(path);
  } catch (const YAML::BadFile&) {
    fail(ErrorCode::InvalidSetting, path + ": cannot read the playbook");
  } catch (const YAML::Exception& e) {
    fail(ErrorCode::InvalidSetting, path + ": " + e.what());
  }
  Playbook p;
  p.file = path;
  try {
    check_keys(root, {"version", "calibrators", "training_calibrators", "training", "levers"}, path,
               ErrorCode::InvalidSetting);
    int version = get_or<int>(root, "version", 0, path, ErrorCode::InvalidSetting);
    if (version != 1)
      fail(ErrorCode::InvalidSetting, path + ": playbook version " + std::to_string(version) + " (this build reads 1)");
    p.calibrators = get_or<std::vector<std::string>>(root, "calibrators", {}, path, ErrorCode::InvalidSetting);
    for (const auto& c : p.calibrators) parse_calib_algorithm(c);
    p.training_calibrators = get_or<int>(root, "training_calibrators", 2, path, ErrorCode::InvalidSetting);
    for (const auto& n : root["training"]) p.training.push_back(parse_lever(n, path + ": training"));
    for (const auto& n : root["levers"]) p.levers.push_back(parse_lever(n, path + ": lever"));
  } catch (const YAML::Exception& e) {
    fail(ErrorCode::InvalidSetting, path + ": " + e.what());
  }
  std::set<std::string> names;
  for (const auto* list : {&p.training, &p.levers})
    for (const Lever& l : *list)
      if (!names.insert(l.name).second) fail(ErrorCode::InvalidSetting, path + ": lever '" + l.name + "' twice");
  for (const auto* list : {&p.training, &p.levers})
    for (const Lever& l : *list)
      for (const auto& c : l.conflicts)
        if (!names.count(c))
          fail(ErrorCode::InvalidSetting, path + ": lever '" + l.name + "' conflicts with unknown lever '" + c + "'");
  return p;
}

Facts weight_facts(const Graph& graph) {
  Facts f{{"weight_channel_ratio", 0}, {"weight_kurtosis", 0}, {"weight_max_over_std", 0}};
  at::NoGradGuard no_grad;
  for (const auto& op : graph.ops()) {
    if (op->type != "Conv" && op->type != "Gemm" && op->type != "MatMul" && op->type != "ConvTranspose") continue;
    if (op->inputs.size() < 2 || !op->inputs[1] || !op->inputs[1]->is_constant()) continue;
    at::Tensor w = exec::to_aten(*op->inputs[1]->data).to(at::kDouble);
    if (w.dim() < 2 || w.numel() < 2) continue;
    // Output channels: dim 0 of Conv/ConvTranspose-as-stored, the last dim of MatMul weights.
    at::Tensor per = op->type == "MatMul" ? w.abs().flatten(0, -2).amax(0) : w.abs().flatten(1).amax(1);
    double mean = per.mean().item<double>();
    if (mean > 0) f["weight_channel_ratio"] = std::max(f["weight_channel_ratio"], per.max().item<double>() / mean);
    f["weight_kurtosis"] = std::max(f["weight_kurtosis"], kurtosis_of(w));
    double sd = w.std().item<double>();
    if (sd > 0) f["weight_max_over_std"] = std::max(f["weight_max_over_std"], w.abs().max().item<double>() / sd);
  }
  return f;
}

Facts trial_facts(const nlohmann::json& analysis, double value, double float_value, bool gap_known,
                  const std::vector<std::string>& levers, const Facts& weights) {
  Facts f = weights;
  auto has = [&levers](const char* n) { return std::find(levers.begin(), levers.end(), n) != levers.end(); };
  f["uses_tqt"] = has("tqt") ? 1 : 0;
  f["uses_training"] = has("tqt") || has("lsq") || has("adaround") ? 1 : 0;
  f["gap"] = gap_known ? float_value - value : 0;
  f["output_noise_ratio"] = analysis.value("output_noise_ratio", -1.0);
  struct Unit {
    double layerwise;
    const nlohmann::json* j;
  };
  std::vector<Unit> units;
  double act_kurtosis = 0, act_max_over_std = 0;
  if (analysis.contains("units"))
    for (const auto& u : analysis["units"]) {
      if (u.contains("layerwise")) units.push_back({u["layerwise"].get<double>(), &u});
      if (u.contains("float")) {
        const auto& s = u["float"];
        act_kurtosis = std::max(act_kurtosis, s.value("kurtosis", 0.0));
        double sd = s.value("std", 0.0);
        double m = std::max(std::fabs(s.value("min", 0.0)), std::fabs(s.value("max", 0.0)));
        if (sd > 0) act_max_over_std = std::max(act_max_over_std, m / sd);
      }
    }
  // Worst first; equal errors keep the analysis' order (deterministic).
  std::stable_sort(units.begin(), units.end(), [](const Unit& a, const Unit& b) { return a.layerwise > b.layerwise; });
  f["units"] = static_cast<double>(units.size());
  f["act_kurtosis"] = act_kurtosis;
  f["act_max_over_std"] = act_max_over_std;
  size_t top = std::min<size_t>(5, units.size());
  double median = top > 0 ? units[top / 2].layerwise : 0;
  f["top_error_ratio"] = top >= 2 && median > 0 ? units[0].layerwise / median : 0;
  double bias = 0, hot = 0;
  static const std::set<std::string> elementwise = {"Add",    "Sum",         "Concat",           "Mul",
                                                    "Resize", "AveragePool", "GlobalAveragePool"};
  for (size_t i = 0; i < std::min<size_t>(3, units.size()); ++i) {
    const auto& u = *units[i].j;
    if (u.contains("noise")) {
      double sd = u["noise"].value("std", 0.0);
      if (sd > 0) bias = std::max(bias, std::fabs(u["noise"].value("mean", 0.0)) / sd);
    }
    if (elementwise.count(u.value("type", ""))) hot = 1;
  }
  f["top3_noise_bias"] = bias;
  f["hot_elementwise"] = hot;
  return f;
}

}  // namespace edgequant::tuning
