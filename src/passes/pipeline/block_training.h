// Block-wise training of quantization parameters (block_training.cpp), shared by the tqt and lsq
// passes.
#pragma once
#include "passes/pipeline.h"

namespace edgequant {

enum class BlockTraining {
  Tqt,       // power-of-two scales trained as alpha = log2 s, straight-through exponent
  Lsq,       // float scales trained directly, gradient scaled by 1/sqrt(N * Qp)
  AdaRound,  // learned rounding of each weight (up or down), scales frozen
};

// Whether a config's scale trains in `mode`: TQT trains symmetric power-of-two scales (as log2),
// LSQ float scales; never fixed (custom) or unquantized ones.
bool trainable_scale(const QuantConfig* config, BlockTraining mode);
// LSQ's N: elements per sample of an activation (static dims after the batch), or a constant's size.
double element_count(const Value* v);

PassResult train_blocks(QuantContext& context, const TqtSetting& setting, BlockTraining mode);

}  // namespace edgequant
