// Check before work: every op a target cannot run or a deployable format cannot express, with the
// reason and the remedy, from the graph and the assigned plan alone (no calibration). `edgequant
// check` prints them; `quantize` stops on them before calibrating (unless --format none).
#pragma once
#include <string>
#include <vector>

#include "ir/quant_config.h"
#include "target/setting.h"
#include "target/target.h"

namespace edgequant::deploy {

struct Finding {
  std::string node, op_type, reason, remedy;
  std::string line() const;  // "'node' (Op): reason; remedy: ..."
};

// `format` must be resolved (not Auto). Notes that are not blocking (TI CPU fallbacks) are not findings.
std::vector<Finding> check_deployable(const Graph& g, const QuantPlan& plan, const Target& target, ExportFormat format);

}  // namespace edgequant::deploy
