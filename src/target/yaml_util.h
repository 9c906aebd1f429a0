// Strict YAML reading: unknown keys are errors that list the valid ones.
#pragma once
#include <yaml-cpp/yaml.h>

#include <set>
#include <string>

#include "edgequant/error.h"

namespace edgequant {

inline void check_keys(const YAML::Node& node, const std::set<std::string>& valid, const std::string& where,
                       ErrorCode code) {
  if (!node || node.IsNull()) return;
  if (!node.IsMap()) fail(code, where + ": expected a mapping");
  for (const auto& kv : node) {
    std::string key = kv.first.as<std::string>();
    if (!valid.count(key)) {
      std::string list;
      for (const auto& v : valid) list += (list.empty() ? "" : ", ") + v;
      fail(code, where + ": unknown key '" + key + "' (valid: " + list + ")");
    }
  }
}

template <class T>
T get_or(const YAML::Node& node, const std::string& key, const T& fallback, const std::string& where, ErrorCode code) {
  if (!node || !node[key]) return fallback;
  try {
    return node[key].as<T>();
  } catch (const YAML::Exception&) {
    fail(code, where + ": key '" + key + "' has an invalid value");
  }
}

}  // namespace edgequant
