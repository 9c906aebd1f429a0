// quant_config.json reading and writing.
#include "quant/plan_io.h"

#include "core/files.h"
#include "edgequant/error.h"

namespace edgequant::quant {

namespace {
nlohmann::json config_to_json(const QuantConfig& c) {
  nlohmann::json t = {{"state", quant_state_name(c.state)},
                      {"role", quant_role_name(c.role)},
                      {"bits", c.bits},
                      {"signed", c.is_signed},
                      {"symmetric", c.symmetric},
                      {"granularity", c.granularity == Granularity::PerChannel ? "per_channel" : "per_tensor"},
                      {"axis", c.axis},
                      {"scale_kind", c.scale_kind == ScaleKind::PowerOfTwo ? "power_of_two" : "float"},
                      {"rounding", rounding_mode_name(c.rounding)},
                      {"quant_min", c.quant_min},
                      {"quant_max", c.quant_max},
                      {"scales", c.scales},
                      {"zero_points", c.zero_points},
                      {"range", {c.range_min, c.range_max}}};
  if (c.scale_kind == ScaleKind::PowerOfTwo && c.has_scale()) t["exponents"] = c.exponents();
  if (!c.master.empty()) t["master"] = c.master;
  if (c.source != RangeSource::None) t["observer"] = range_source_name(c.source);
  if (!c.fused_into.empty()) t["fused_into"] = c.fused_into;
  if (c.align_to_large) t["align_to_large"] = true;
  if (c.custom_scale) t["custom_scale"] = true;
  return t;
}

QuantConfig config_from_json(const nlohmann::json& t, const std::string& name, const std::string& where) {
  QuantConfig c;
  c.state = parse_quant_state(t.at("state").get<std::string>());
  c.role = parse_quant_role(t.value("role", "activation"));
  c.bits = t.at("bits").get<int>();
  c.is_signed = t.at("signed").get<bool>();
  c.symmetric = t.at("symmetric").get<bool>();
  c.granularity =
      t.at("granularity").get<std::string>() == "per_channel" ? Granularity::PerChannel : Granularity::PerTensor;
  c.axis = t.at("axis").get<int64_t>();
  c.scale_kind = t.at("scale_kind").get<std::string>() == "power_of_two" ? ScaleKind::PowerOfTwo : ScaleKind::Float;
  c.rounding = parse_rounding_mode(t.at("rounding").get<std::string>());
  c.quant_min = t.at("quant_min").get<int64_t>();
  c.quant_max = t.at("quant_max").get<int64_t>();
  c.scales = t.at("scales").get<std::vector<double>>();
  c.zero_points = t.at("zero_points").get<std::vector<int64_t>>();
  c.range_min = t.at("range")[0].get<double>();
  c.range_max = t.at("range")[1].get<double>();
  c.master = t.value("master", "");
  c.source = parse_range_source(t.value("observer", ""));
  c.fused_into = t.value("fused_into", "");
  c.align_to_large = t.value("align_to_large", false);
  c.custom_scale = t.value("custom_scale", false);
  if (c.zero_points.size() != c.scales.size())
    fail(ErrorCode::InvalidInput, where + ": tensor '" + name + "' has " + std::to_string(c.scales.size()) +
                                      " scales but " + std::to_string(c.zero_points.size()) + " zero points");
  return c;
}
}  // namespace

nlohmann::json plan_to_json(const QuantPlan& plan) {
  nlohmann::json j;
  j["format"] = "edgequant-quant-config";
  j["version"] = 1;
  j["target"] = plan.target_name;
  j["tensors"] = nlohmann::json::object();
  for (const auto& [name, c] : plan.values) j["tensors"][name] = config_to_json(c);
  j["requants"] = nlohmann::json::array();
  for (const auto& r : plan.requants) {
    nlohmann::json e = {{"op", r.op}, {"input", r.index}, {"target", r.target}};
    if (r.grid) e["grid"] = config_to_json(*r.grid);
    j["requants"].push_back(e);
  }
  j["notes"] = plan.notes;
  return j;
}

QuantPlan plan_from_json(const nlohmann::json& j, const std::string& where) {
  QuantPlan plan;
  try {
    if (j.value("format", "") != "edgequant-quant-config")
      fail(ErrorCode::InvalidInput, where + ": not an EdgeQuant quant_config.json");
    plan.target_name = j.at("target").get<std::string>();
    for (const auto& [name, t] : j.at("tensors").items()) plan.values[name] = config_from_json(t, name, where);
    for (const auto& r : j.at("requants")) {
      InputRequant q{r.at("op").get<std::string>(), r.at("input").get<int>(), r.at("target").get<std::string>(), {}};
      if (r.contains("grid")) q.grid = config_from_json(r.at("grid"), q.target, where);
      plan.requants.push_back(q);
    }
    plan.notes = j.value("notes", std::vector<std::string>{});
  } catch (const nlohmann::json::exception& e) {
    fail(ErrorCode::InvalidInput, where + ": malformed quant config (" + std::string(e.what()) + ")");
  } catch (Error& e) {
    throw e.add_context(where);
  }
  return plan;
}

QuantPlan read_plan(const std::string& path) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(read_file(path));
  } catch (const nlohmann::json::exception& e) {
    fail(ErrorCode::InvalidInput, path + ": not valid JSON (" + std::string(e.what()) + ")");
  }
  return plan_from_json(j, path);
}

}  // namespace edgequant::quant
