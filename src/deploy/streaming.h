// Streaming models: the form of a whole-sequence temporal model that runs a few frames at a time,
// as ESP-PPQ 1.3.5 writes it for ESP-DL (`StreamingCache` before each temporal window; ESP-DL's
// dl_module_streaming_cache.hpp keeps the last window - 1 frames between runs).
#pragma once
#include <string>
#include <vector>

#include "runtime/int_graph.h"

namespace edgequant::deploy {

// The streaming program of a channels-last whole-sequence program (every activation [N, T, C],
// time on axis 1, as ESP-DL's NWC): each Conv/AveragePool/MaxPool whose window spans frames gets
// a StreamingCache of window d*(k-1)+1 before it and loses its pads, the inputs take `frames`
// frames per run, and value shapes follow. Needs causal windows (pads [d*(k-1), 0], stride 1)
// and per-frame ops elsewhere; anything else is refused (InvalidInput) naming the node and why.
// Test values, when the whole program has them, become its first `frames` frames and what the
// streaming program computes for them from reset. `notes` gets one line per cache.
runtime::IntGraph make_streaming(const runtime::IntGraph& whole, int64_t frames, std::vector<std::string>* notes);

}  // namespace edgequant::deploy
