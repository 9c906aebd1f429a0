// Target loading and validation from targets/*.yaml.
#include "target/target.h"

#include <algorithm>
#include <cstdlib>
#include <filesystem>

#include "target/yaml_util.h"

namespace fs = std::filesystem;

namespace edgequant {

namespace {
constexpr ErrorCode kCode = ErrorCode::InvalidTarget;

Granularity parse_granularity(const std::string& s, const std::string& where) {
  if (s == "per_tensor") return Granularity::PerTensor;
  if (s == "per_channel") return Granularity::PerChannel;
  fail(kCode, where + ": granularity must be per_tensor or per_channel, not '" + s + "'");
}

TensorSpec parse_spec(const YAML::Node& n, const std::string& where, TensorSpec base) {
  check_keys(n, {"bits", "signed", "symmetric", "narrow_range", "granularity"}, where, kCode);
  if (!n) return base;
  base.bits = get_or(n, "bits", base.bits, where, kCode);
  base.is_signed = get_or(n, "signed", base.is_signed, where, kCode);
  base.symmetric = get_or(n, "symmetric", base.symmetric, where, kCode);
  base.narrow_range = get_or(n, "narrow_range", base.narrow_range, where, kCode);
  if (n["granularity"]) base.granularity = parse_granularity(n["granularity"].as<std::string>(), where);
  if (base.bits < 2 || base.bits > 16) fail(kCode, where + ": bits must be 2..16");
  return base;
}

Pow2Rule parse_pow2_rule(const std::string& s, const std::string& where) {
  if (s == "ceil") return Pow2Rule::Ceil;
  if (s == "nearest") return Pow2Rule::Nearest;
  if (s == "floor") return Pow2Rule::Floor;
  fail(kCode, where + ": power-of-two rule must be ceil, nearest or floor, not '" + s + "'");
}

std::set<std::string> string_set(const YAML::Node& n) {
  std::set<std::string> out;
  if (n)
    for (const auto& v : n) out.insert(v.as<std::string>());
  return out;
}

std::vector<std::string> search_dirs() {
  std::vector<std::string> dirs;
  if (const char* env = std::getenv("EDGEQUANT_TARGETS")) dirs.push_back(env);
  dirs.push_back(EQ_TARGETS_DIR);
  return dirs;
}
}  // namespace

int Target::bias_bits_for(int weight_bits) const {
  auto it = bias_bits.lower_bound(weight_bits);
  if (it == bias_bits.end()) return bias_bits.empty() ? 32 : bias_bits.rbegin()->second;
  return it->second;
}

int Target::accumulator_bits_for(int activation_bits) const {
  auto it = accumulator_bits.lower_bound(activation_bits);
  if (it != accumulator_bits.end()) return it->second;
  return activation_bits > 8 ? 64 : 32;
}

Pow2Rule Target::pow2_rule_for(CalibAlgorithm calib) const {
  auto it = pow2_rule.find(calib);
  return it == pow2_rule.end() ? Pow2Rule::Nearest : it->second;
}

std::string targets_dir() { return search_dirs().front(); }

std::vector<std::string> available_targets() {
  std::set<std::string> names;
  for (const auto& d : search_dirs()) {
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(d, ec))
      if (e.path().extension() == ".yaml") names.insert(e.path().stem().string());
  }
  return {names.begin(), names.end()};
}

namespace {
std::string find_target_file(const std::string& name_or_path);

// A target file may start from another (`base: esp32p4`): the base's keys, then this file's on
// top (a chip that computes as another one differs in name and description only). Depth-limited
// against cycles.
YAML::Node load_with_base(const std::string& path, int depth, bool* based = nullptr) {
  YAML::Node root;
  try {
    root = YAML::LoadFile(path);
  } catch (const YAML::Exception& e) {
    fail(kCode, path + ": " + e.what());
  }
  if (!root.IsMap()) fail(kCode, path + ": a target file is a YAML mapping");
  if (!root["base"]) return root;
  if (based) *based = true;
  if (depth > 4) fail(kCode, path + ": base targets nest too deep (a cycle?)");
  std::string base = root["base"].as<std::string>();
  YAML::Node merged = YAML::Clone(load_with_base(find_target_file(base), depth + 1));
  merged.remove("name");
  merged.remove("description");
  for (const auto& kv : root)
    if (kv.first.as<std::string>() != "base") merged[kv.first.as<std::string>()] = kv.second;
  return merged;
}

std::string find_target_file(const std::string& name_or_path) {
  std::string path;
  bool is_path = name_or_path.find('/') != std::string::npos ||
                 (name_or_path.size() > 5 && name_or_path.substr(name_or_path.size() - 5) == ".yaml");
  if (is_path) {
    path = name_or_path;
  } else {
    for (const auto& d : search_dirs())
      if (fs::exists(d + "/" + name_or_path + ".yaml")) {
        path = d + "/" + name_or_path + ".yaml";
        break;
      }
  }
  if (path.empty() || !fs::exists(path)) {
    std::string list;
    for (const auto& n : available_targets()) list += (list.empty() ? "" : ", ") + n;
    fail(kCode, "unknown target '" + name_or_path + "' (available: " + list + ")");
  }
  return path;
}
}  // namespace

Target load_target(const std::string& name_or_path) {
  std::string path = find_target_file(name_or_path);
  bool based = false;
  YAML::Node root = load_with_base(path, 0, &based);
  try {
    check_keys(root,
               {"name",
                "description",
                "scale",
                "sub8bit_weight_scale",
                "rounding",
                "requant_rounding",
                "activation",
                "conv_weight",
                "gemm_weight",
                "matmul_weight",
                "bias_bits",
                "accumulator_bits",
                "int16_lut_step",
                "allowed_bits",
                "default_calib",
                "pow2_rule",
                "float_ops",
                "fused_activations",
                "lut_activations",
                "channel_rules",
                "export_format",
                "runtime_ops",
                "int8_only_ops",
                "espdl_filter_blocks",
                "fixed_output_grids",
                "input_grid_ops"},
               "target", kCode);
    Target t;
    t.file = path;
    if (based) {
      if (!root["name"]) root["name"] = fs::path(path).stem().string();
      t.yaml = "# " + path + " with its base target's keys merged in\n" + YAML::Dump(root) + "\n";
    }
    t.name = get_or<std::string>(root, "name", fs::path(path).stem().string(), "target", kCode);
    t.description = get_or<std::string>(root, "description", "", "target", kCode);
    auto scale = get_or<std::string>(root, "scale", "power_of_two", "target", kCode);
    if (scale != "power_of_two" && scale != "float") fail(kCode, "scale must be power_of_two or float");
    t.scale_kind = scale == "float" ? ScaleKind::Float : ScaleKind::PowerOfTwo;
    auto sub8 = get_or<std::string>(root, "sub8bit_weight_scale", scale, "target", kCode);
    t.sub8bit_weight_scale_kind = sub8 == "float" ? ScaleKind::Float : ScaleKind::PowerOfTwo;
    t.rounding = parse_rounding_mode(get_or<std::string>(root, "rounding", "half_even", "target", kCode));
    t.requant_rounding =
        root["requant_rounding"] ? parse_rounding_mode(root["requant_rounding"].as<std::string>()) : t.rounding;
    t.activation = parse_spec(root["activation"], "activation", TensorSpec{});
    t.conv_weight = parse_spec(root["conv_weight"], "conv_weight", TensorSpec{});
    t.gemm_weight = parse_spec(root["gemm_weight"], "gemm_weight", t.conv_weight);
    t.matmul_weight = parse_spec(root["matmul_weight"], "matmul_weight", t.gemm_weight);
    if (const YAML::Node& fg = root["fixed_output_grids"])
      for (const auto& kv : fg) {
        check_keys(kv.second, {"scale", "zero_point"}, "target: fixed_output_grids", kCode);
        Target::FixedGrid grid{kv.second["scale"].as<double>(0), kv.second["zero_point"].as<int64_t>(0)};
        if (!(grid.scale > 0) || grid.zero_point < -128 || grid.zero_point > 127)
          fail(kCode,
               "fixed_output_grids: " + kv.first.as<std::string>() + " needs a positive scale and an int8 zero_point");
        t.fixed_output_grids[kv.first.as<std::string>()] = grid;
      }
    t.input_grid_ops = string_set(root["input_grid_ops"]);
    if (root["bias_bits"])
      for (const auto& kv : root["bias_bits"]) t.bias_bits[kv.first.as<int>()] = kv.second.as<int>();
    if (root["espdl_filter_blocks"])
      for (const auto& kv : root["espdl_filter_blocks"])
        t.espdl_filter_blocks[kv.first.as<int>()] = kv.second.as<int>();
    if (root["accumulator_bits"])
      for (const auto& kv : root["accumulator_bits"]) t.accumulator_bits[kv.first.as<int>()] = kv.second.as<int>();
    t.int16_lut_step = get_or(root, "int16_lut_step", t.int16_lut_step, "target", kCode);
    if (t.int16_lut_step < 1 || t.int16_lut_step > 65536 || (t.int16_lut_step & (t.int16_lut_step - 1)))
      fail(kCode, "int16_lut_step must be a power of two in [1, 65536]");
    if (root["allowed_bits"])
      for (const auto& b : root["allowed_bits"]) t.allowed_bits.push_back(b.as<int>());
    else
      t.allowed_bits = {8, 16};
    try {
      t.default_calib = parse_calib_algorithm(get_or<std::string>(root, "default_calib", "minmax", "target", kCode));
      if (root["pow2_rule"])
        for (const auto& kv : root["pow2_rule"])
          t.pow2_rule[parse_calib_algorithm(kv.first.as<std::string>())] =
              parse_pow2_rule(kv.second.as<std::string>(), "pow2_rule");
    } catch (Error& e) {
      fail(kCode, e.message());
    }
    t.float_ops = string_set(root["float_ops"]);
    t.fused_activations = string_set(root["fused_activations"]);
    t.lut_activations = string_set(root["lut_activations"]);
    t.export_format = get_or<std::string>(root, "export_format", t.export_format, "target", kCode);
    if (t.export_format != "espdl" && t.export_format != "qdq" && t.export_format != "ti-onnx" &&
        t.export_format != "tflite")
      fail(kCode, "export_format must be espdl, qdq, ti-onnx or tflite, not '" + t.export_format + "'");
    t.runtime_ops = string_set(root["runtime_ops"]);
    t.int8_only_ops = string_set(root["int8_only_ops"]);
    if (const YAML::Node& cr = root["channel_rules"]) {
      check_keys(cr, {"first_conv_in_channels", "channel_multiple", "accelerated_ops"}, "channel_rules", kCode);
      t.channel_rules.enabled = true;
      t.channel_rules.first_conv_in_channels = get_or(cr, "first_conv_in_channels", 0, "channel_rules", kCode);
      t.channel_rules.channel_multiple = get_or(cr, "channel_multiple", 0, "channel_rules", kCode);
      t.channel_rules.accelerated_ops = string_set(cr["accelerated_ops"]);
    }
    return t;
  } catch (Error& e) {
    throw e.add_context(path);
  } catch (const YAML::Exception& e) {
    fail(kCode, path + ": " + e.what());
  }
}

}  // namespace edgequant
