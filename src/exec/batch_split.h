// Cache blocking across the batch: a graph whose ops treat every sample on its own can run a
// large batch a few samples at a time, so each op's output is still in cache when the next op
// reads it. MobileNetV2 at batch 32 writes 150 MB per expansion convolution; in chunks of 4 the
// same float run is ~1.3x faster on this 2-core machine (bench/float_throughput.py), with results
// identical sample by sample.
#pragma once
#include <cstddef>
#include <cstdint>

#include "ir/graph.h"

namespace edgequant::exec {

// The number of samples to run at a time so the largest intermediate of one chunk stays within
// `budget_bytes`; 0 when some op mixes samples (or a shape is unknown), so the batch must run whole.
int64_t batch_chunk_size(const Graph& graph, size_t budget_bytes);

}  // namespace edgequant::exec
