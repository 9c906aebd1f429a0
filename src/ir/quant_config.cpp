// QuantConfig helpers.
#include "ir/quant_config.h"

#include <cmath>

#include "edgequant/error.h"

namespace edgequant {

const char* quant_state_name(QuantState s) {
  switch (s) {
    case QuantState::Quantized:
      return "quantized";
    case QuantState::Passive:
      return "passive";
    case QuantState::Fused:
      return "fused";
    case QuantState::Float:
      return "float";
  }
  return "?";
}

QuantState parse_quant_state(const std::string& s) {
  if (s == "quantized") return QuantState::Quantized;
  if (s == "passive") return QuantState::Passive;
  if (s == "fused") return QuantState::Fused;
  if (s == "float") return QuantState::Float;
  fail(ErrorCode::InvalidSetting, "unknown quantization state '" + s + "' (valid: quantized, passive, fused, float)");
}

const char* quant_role_name(QuantRole r) {
  switch (r) {
    case QuantRole::Input:
      return "input";
    case QuantRole::Activation:
      return "activation";
    case QuantRole::Weight:
      return "weight";
    case QuantRole::Bias:
      return "bias";
    case QuantRole::Constant:
      return "constant";
  }
  return "?";
}

QuantRole parse_quant_role(const std::string& s) {
  for (QuantRole r : {QuantRole::Input, QuantRole::Activation, QuantRole::Weight, QuantRole::Bias, QuantRole::Constant})
    if (s == quant_role_name(r)) return r;
  fail(ErrorCode::InvalidInput, "unknown tensor role '" + s + "' (valid: input, activation, weight, bias, constant)");
}

CalibAlgorithm parse_calib_algorithm(const std::string& name) {
  for (CalibAlgorithm a : {CalibAlgorithm::MinMax, CalibAlgorithm::Percentile, CalibAlgorithm::KL, CalibAlgorithm::MSE,
                           CalibAlgorithm::Auto})
    if (name == calib_algorithm_name(a)) return a;
  fail(ErrorCode::InvalidSetting, "unknown calib_algorithm '" + name + "' (valid: minmax, percentile, kl, mse, auto)");
}

const char* calib_algorithm_name(CalibAlgorithm a) {
  switch (a) {
    case CalibAlgorithm::MinMax:
      return "minmax";
    case CalibAlgorithm::Percentile:
      return "percentile";
    case CalibAlgorithm::KL:
      return "kl";
    case CalibAlgorithm::MSE:
      return "mse";
    case CalibAlgorithm::Auto:
      return "auto";
  }
  return "?";
}

const char* range_source_name(RangeSource s) {
  switch (s) {
    case RangeSource::None:
      return "";
    case RangeSource::MinMax:
      return "minmax";
    case RangeSource::Percentile:
      return "percentile";
    case RangeSource::KL:
      return "kl";
    case RangeSource::MSE:
      return "mse";
    case RangeSource::AlignToLarge:
      return "align_to_large";
    case RangeSource::Custom:
      return "custom";
    case RangeSource::Trained:
      return "trained";
  }
  return "?";
}

RangeSource parse_range_source(const std::string& s) {
  for (RangeSource r : {RangeSource::None, RangeSource::MinMax, RangeSource::Percentile, RangeSource::KL,
                        RangeSource::MSE, RangeSource::AlignToLarge, RangeSource::Custom, RangeSource::Trained})
    if (s == range_source_name(r)) return r;
  fail(ErrorCode::InvalidInput, "unknown range source '" + s + "'");
}

RangeSource range_source_of(CalibAlgorithm a) {
  switch (a) {
    case CalibAlgorithm::MinMax:
      return RangeSource::MinMax;
    case CalibAlgorithm::Percentile:
      return RangeSource::Percentile;
    case CalibAlgorithm::KL:
      return RangeSource::KL;
    case CalibAlgorithm::MSE:
      return RangeSource::MSE;
    case CalibAlgorithm::Auto:
      break;  // the chosen calibrator is the source
  }
  return RangeSource::None;
}

std::vector<int> QuantConfig::exponents() const {
  std::vector<int> e;
  for (double s : scales) e.push_back(static_cast<int>(std::lround(std::log2(s))));
  return e;
}

void QuantConfig::set_range(int b, bool sgn, bool narrow_range) {
  bits = b;
  is_signed = sgn;
  quant_min = int_min(b, sgn) + (narrow_range && sgn ? 1 : 0);
  quant_max = int_max(b, sgn);
}

const QuantConfig* QuantPlan::find(const std::string& value) const {
  auto it = values.find(value);
  return it == values.end() ? nullptr : &it->second;
}

QuantConfig* QuantPlan::find(const std::string& value) {
  auto it = values.find(value);
  return it == values.end() ? nullptr : &it->second;
}

const QuantConfig* QuantPlan::effective(const std::string& value) const {
  const QuantConfig* c = find(value);
  for (int guard = 0; c && c->state == QuantState::Passive && !c->master.empty() && guard < 1000; ++guard) {
    const QuantConfig* m = find(c->master);
    if (!m) break;
    c = m;
  }
  return c;
}

}  // namespace edgequant

namespace edgequant {
const QuantConfig* QuantPlan::requant_config(const InputRequant& r) const {
  return r.grid ? &*r.grid : effective(r.target);
}

const QuantConfig* QuantPlan::input_config(const Op& op, size_t index) const {
  for (const auto& r : requants)
    if (r.op == op.name && static_cast<size_t>(r.index) == index) return requant_config(r);
  const Value* v = op.input(index);
  return v ? effective(v->name) : nullptr;
}

void QuantPlan::verify(const Graph& g, ErrorCode code) const {
  auto bad = [&](const std::string& what) {
    fail(code, "quantization plan: " + what + " (was the graph rewritten without updating the plan?)");
  };
  for (const auto& [name, c] : values) {
    if (!g.find_value(name)) bad("tensor '" + name + "' is not in the graph");
    if (c.state == QuantState::Passive && !c.master.empty() && !find(c.master))
      bad("tensor '" + name + "' follows '" + c.master + "', which has no config");
    if (c.state == QuantState::Fused && !c.fused_into.empty() && !g.find_op(c.fused_into))
      bad("tensor '" + name + "' is fused into op '" + c.fused_into + "', which is not in the graph");
  }
  for (const auto& r : requants) {
    const Op* op = g.find_op(r.op);
    if (!op) bad("requantization of an input of op '" + r.op + "', which is not in the graph");
    if (r.index < 0 || static_cast<size_t>(r.index) >= op->inputs.size())
      bad("requantization of input " + std::to_string(r.index) + " of " + op->describe());
    if (!find(r.target)) bad("requantization of " + op->describe() + " to '" + r.target + "', which has no config");
  }
}
bool has_integer_grid(const QuantConfig* c) {
  return c && c->has_scale() && (c->state == QuantState::Quantized || c->state == QuantState::Passive);
}

}  // namespace edgequant
