// Greedy activation memory planning (see memory_plan.h).
#include "runtime/memory_plan.h"

#include <algorithm>
#include <vector>

namespace edgequant::runtime {

MemoryPlan plan_memory(const IntGraph& g) {
  MemoryPlan plan;
  for (const auto& [name, t] : g.initializers)
    plan.parameter_bytes[t.dtype] += size_t(t.numel()) * std::max<size_t>(dtype_size(t.dtype), 1);
  struct Life {
    std::string name;
    size_t bytes;
    size_t first, last;
  };
  std::map<std::string, Life> lives;
  auto touch = [&](const std::string& v, size_t step) {
    if (v.empty() || g.initializers.count(v) || !g.values.count(v)) return;
    auto it = lives.find(v);
    if (it == lives.end()) {
      const ValueInfo& vi = g.values.at(v);
      size_t bytes = size_t(std::max<int64_t>(shape_numel(vi.shape), 0)) * std::max<size_t>(dtype_size(vi.dtype), 1);
      lives[v] = Life{v, (bytes + 15) / 16 * 16, step, step};
    } else {
      it->second.last = std::max(it->second.last, step);
    }
  };
  for (const std::string& in : g.inputs) touch(in, 0);
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    for (const std::string& in : g.nodes[i].inputs) touch(in, i + 1);
    for (const std::string& out : g.nodes[i].outputs) touch(out, i + 1);
  }
  for (const std::string& out : g.outputs)
    if (lives.count(out)) lives[out].last = g.nodes.size() + 1;  // outputs live to the end
  std::vector<Life> order;
  for (const auto& [_, l] : lives) order.push_back(l);
  std::stable_sort(order.begin(), order.end(), [](const Life& a, const Life& b) { return a.bytes > b.bytes; });
  std::vector<std::pair<Life, size_t>> placed;
  for (const Life& l : order) {
    std::vector<std::pair<size_t, size_t>> busy;  // [offset, end) of overlapping lifetimes
    for (const auto& [p, off] : placed)
      if (!(p.last < l.first || l.last < p.first)) busy.push_back({off, off + p.bytes});
    std::sort(busy.begin(), busy.end());
    size_t off = 0;
    for (const auto& [b, e] : busy) {
      if (off + l.bytes <= b) break;
      off = std::max(off, e);
    }
    placed.push_back({l, off});
    plan.offsets[l.name] = off;
    plan.arena_bytes = std::max(plan.arena_bytes, off + l.bytes);
  }
  for (size_t step = 0; step <= g.nodes.size() + 1; ++step) {
    size_t live = 0;
    for (const auto& [_, l] : lives)
      if (l.first <= step && step <= l.last) live += l.bytes;
    if (live > plan.peak_live_bytes) {
      plan.peak_live_bytes = live;
      plan.peak_node = step == 0 ? "(inputs)" : step <= g.nodes.size() ? g.nodes[step - 1].name : "(outputs)";
    }
  }
  return plan;
}

}  // namespace edgequant::runtime
