// Activation memory of an integer program before flashing: a greedy tensor-lifetime planner over
// the node order (ESP-DL's greedy memory manager: biggest tensors placed first at the lowest
// offset that no tensor alive at the same time overlaps), and parameter bytes per dtype.
#pragma once
#include <map>
#include <string>

#include "runtime/int_graph.h"

namespace edgequant::runtime {

struct MemoryPlan {
  size_t arena_bytes = 0;                   // the planner's activation arena (what the chip allocates)
  size_t peak_live_bytes = 0;               // lower bound: the most bytes alive at one node
  std::string peak_node;                    // where that peak occurs
  std::map<std::string, size_t> offsets;    // value -> offset in the arena
  std::map<DType, size_t> parameter_bytes;  // initializer bytes per dtype
};

// Value sizes come from the value infos' shapes (16-byte aligned, as ESP-DL aligns tensors).
MemoryPlan plan_memory(const IntGraph& g);

}  // namespace edgequant::runtime
