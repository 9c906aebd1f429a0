// The quantizer: given a Graph, a Target and a Setting, assign a QuantConfig to every tensor the
// target quantizes (activations, weights, biases, constants), fuse activations into their
// producers, make data-movement outputs and biases passive, and align elementwise inputs.
// Scales are filled in later by calibration (quant/calibrate.h).
#pragma once
#include "ir/graph.h"
#include "ir/op_traits.h"
#include "ir/quant_config.h"
#include "target/setting.h"
#include "target/target.h"

namespace edgequant::quant {

// Throws InvalidSetting for unknown op/value names in the dispatching table or custom scales
// (listing valid names), bit widths the target does not allow, or non power-of-two custom scales
// on a power-of-two target.
QuantPlan assign_quant_configs(const Graph& graph, const Target& target, const Setting& setting);

}  // namespace edgequant::quant
