// The quantizer: given a Graph, a Target and a Setting, assign a QuantConfig to every tensor the
// target quantizes (activations, weights, biases, constants), fuse activations into their
// producers, make data-movement outputs and biases passive, and align elementwise inputs.
// Scales are filled in later by calibration (quant/calibrate.h).
#pragma once
#include "ir/graph.h"
#include "ir/quant_config.h"
#include "target/setting.h"
#include "target/target.h"

namespace edgequant::quant {

// Throws InvalidSetting for unknown op/value names in the dispatching table or custom scales
// (listing valid names), bit widths the target does not allow, or non power-of-two custom scales
// on a power-of-two target.
QuantPlan assign_quant_configs(const Graph& graph, const Target& target, const Setting& setting);

// Op classes the quantizer and calibration share.
bool is_compute_op(const std::string& type);       // Conv, ConvTranspose, Gemm, MatMul
bool is_passive_op(const Op& op);                  // output values are a subset of input 0's
bool is_aligned_op(const std::string& type);       // Add, Sub, Concat, ...: inputs share a scale
std::vector<size_t> data_inputs(const Op& op);     // inputs carrying tensor data (not shapes/axes)

}  // namespace edgequant::quant
