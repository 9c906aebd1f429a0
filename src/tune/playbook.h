// The tuning playbook (tuning/playbook.yaml): calibrators, training levers and levers with the
// measured conditions that propose them. Read strictly: an unknown key, fact or operator is
// refused by name. The facts are computed from a trial's error analysis and the float model.
#pragma once
#include <yaml-cpp/yaml.h>

#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace edgequant {
class Graph;
}

namespace edgequant::tuning {

struct Condition {
  std::string fact, op;  // op: < <= > >= == !=
  double value = 0;
  std::string text;  // as written
  bool holds(double x) const;
};

enum class ScaleScope { Any, PowerOfTwo, Float };

struct Lever {
  std::string name, why;
  std::vector<Condition> when;
  YAML::Node set;  // setting keys merged into the trial's setting
  double cost = 0;
  ScaleScope scale = ScaleScope::Any;
  std::vector<std::string> conflicts;
};

struct Playbook {
  std::string file;
  std::vector<std::string> calibrators;
  int training_calibrators = 2;
  std::vector<Lever> training, levers;
  const Lever* find(const std::string& name) const;
  bool conflict(const std::string& a, const std::string& b) const;
};

Playbook load_playbook(const std::string& path);  // throws InvalidSetting naming the file and key
std::string default_playbook_path();

using Facts = std::map<std::string, double>;
// The fact names a condition may use (docs/tuning.md describes each).
const std::vector<std::string>& fact_names();

// Weight statistics of the float model (weight_channel_ratio, weight_kurtosis, weight_max_over_std).
Facts weight_facts(const Graph& graph);
// Facts of a measured trial: its analysis.json, metric value and float value, and its levers.
Facts trial_facts(const nlohmann::json& analysis, double value, double float_value, bool gap_known,
                  const std::vector<std::string>& levers, const Facts& weights);

}  // namespace edgequant::tuning
