// Lowering: a calibrated QuantPlan -> the integer form (ir/lowered.h). Codes are computed with
// the same arithmetic the simulator uses, so simulating from the lowered form reproduces the
// plan's simulation bit for bit (tests/quant/lower_test.cpp).
#pragma once
#include "exec/executor.h"
#include "ir/lowered.h"
#include "target/target.h"

namespace edgequant::quant {

// Throws Internal if a Quantized config has no scale, InvalidModel if a bias code does not fit
// its width (the accumulator would overflow on the chip).
LoweredModel lower(const Graph& graph, const QuantPlan& plan, const Target& target, exec::Executor& executor);

}  // namespace edgequant::quant
