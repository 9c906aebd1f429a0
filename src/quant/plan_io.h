// QuantPlan <-> JSON (quant_config.json): every tensor's bits, scales (and power-of-two
// exponents), zero points, granularity, state; per-use requantization; notes. Round-trips
// exactly, so quantization state can be saved, inspected, edited and reloaded.
#pragma once
#include <nlohmann/json.hpp>
#include <string>

#include "ir/quant_config.h"

namespace edgequant::quant {

nlohmann::json plan_to_json(const QuantPlan& plan);
QuantPlan plan_from_json(const nlohmann::json& j, const std::string& where);  // throws InvalidInput
QuantPlan read_plan(const std::string& path);

}  // namespace edgequant::quant
