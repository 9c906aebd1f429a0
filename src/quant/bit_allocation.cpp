// Exact multiple-choice knapsack on the Pareto front (see bit_allocation.h).
#include "quant/bit_allocation.h"

#include <algorithm>

#include "edgequant/error.h"

namespace edgequant::quant {

namespace {
struct Node {
  int64_t cost;
  double error;
  int parent;  // index in the previous layer's front
  int option;  // this layer's option
};

// Sorted by cost; keeps each point whose error is strictly below every cheaper point's.
std::vector<Node> prune(std::vector<Node> nodes) {
  std::sort(nodes.begin(), nodes.end(),
            [](const Node& a, const Node& b) { return a.cost != b.cost ? a.cost < b.cost : a.error < b.error; });
  std::vector<Node> kept;
  for (const Node& n : nodes)
    if (kept.empty() || n.error < kept.back().error) {
      if (!kept.empty() && kept.back().cost == n.cost) continue;  // same cost, the first has less error
      kept.push_back(n);
    }
  return kept;
}

std::vector<Node> thin(const std::vector<Node>& front, size_t max_points) {
  int64_t lo = front.front().cost, hi = front.back().cost;
  int64_t step = std::max<int64_t>(1, (hi - lo) / static_cast<int64_t>(max_points));
  std::vector<Node> out;
  // Each point of the (pruned) front has less error than the cheaper ones: within a cost bucket
  // the last point is the best; the cheapest point is always kept (the minimum reachable).
  out.push_back(front.front());
  for (size_t i = 1; i < front.size(); ++i) {
    if ((front[i].cost - lo) / step == (out.back().cost - lo) / step && out.size() > 1)
      out.back() = front[i];
    else
      out.push_back(front[i]);
  }
  return out;
}
}  // namespace

std::vector<ParetoPoint> pareto_front(const std::vector<AllocationLayer>& layers, size_t max_points, bool* thinned) {
  if (thinned) *thinned = false;
  std::vector<std::vector<Node>> levels;
  std::vector<Node> front = {{0, 0.0, -1, -1}};
  for (const AllocationLayer& layer : layers) {
    if (layer.options.empty()) fail(ErrorCode::Internal, "bit allocation: layer '" + layer.name + "' has no width");
    std::vector<Node> next;
    next.reserve(front.size() * layer.options.size());
    for (size_t p = 0; p < front.size(); ++p)
      for (size_t o = 0; o < layer.options.size(); ++o)
        next.push_back({front[p].cost + layer.options[o].cost, front[p].error + layer.options[o].error,
                        static_cast<int>(p), static_cast<int>(o)});
    front = prune(std::move(next));
    if (front.size() > max_points) {
      front = thin(front, max_points);
      if (thinned) *thinned = true;
    }
    levels.push_back(front);
  }
  std::vector<ParetoPoint> out;
  for (size_t i = 0; i < front.size(); ++i) {
    ParetoPoint p;
    p.cost = front[i].cost;
    p.error = front[i].error;
    p.choice.assign(layers.size(), 0);
    int idx = static_cast<int>(i);
    for (size_t l = layers.size(); l-- > 0;) {
      const Node& n = levels[l][static_cast<size_t>(idx)];
      p.choice[l] = n.option;
      idx = n.parent;
    }
    out.push_back(std::move(p));
  }
  return out;
}

std::optional<ParetoPoint> best_within(const std::vector<ParetoPoint>& front, int64_t budget) {
  std::optional<ParetoPoint> best;
  for (const ParetoPoint& p : front)
    if (p.cost <= budget && (!best || p.error < best->error)) best = p;
  return best;
}

}  // namespace edgequant::quant
