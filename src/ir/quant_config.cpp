// QuantConfig helpers.
#include "ir/quant_config.h"

#include <cmath>

#include "edgequant/error.h"

namespace edgequant {

const char* quant_state_name(QuantState s) {
  switch (s) {
    case QuantState::Quantized: return "quantized";
    case QuantState::Passive: return "passive";
    case QuantState::Fused: return "fused";
    case QuantState::Float: return "float";
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
