// Bit-width allocation under a budget: each layer takes one of its width options (cost, predicted
// error); minimise the summed error with the summed cost within a budget (a multiple-choice
// knapsack). Solved exactly on the Pareto front of (cost, error): layers are added one at a time
// and every partial allocation that costs more and predicts no less error than another is
// dropped, so the front holds the optimum for every budget at once (and the trade-off to print).
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace edgequant::quant {

struct WidthOption {
  int bits = 8;      // 0 = float
  int64_t cost = 0;  // in the budget's unit (bits of weights, or bits of parameters)
  double error = 0;  // predicted error of the layer at this width (additive over layers)
};

struct AllocationLayer {
  std::string name;
  std::vector<WidthOption> options;
};

struct ParetoPoint {
  int64_t cost = 0;
  double error = 0;
  std::vector<int> choice;  // per layer: the index of its option
};

// Every Pareto-optimal allocation, cost ascending (error descending). When the front would grow
// beyond `max_points`, points closer in cost than (cost range / max_points) are merged (the one of
// least error kept) and `thinned` is set: the result is then optimal to within that cost step.
std::vector<ParetoPoint> pareto_front(const std::vector<AllocationLayer>& layers, size_t max_points = 50000,
                                      bool* thinned = nullptr);

// The allocation of least predicted error whose cost is at most `budget`; nullopt when even the
// cheapest allocation costs more.
std::optional<ParetoPoint> best_within(const std::vector<ParetoPoint>& front, int64_t budget);

}  // namespace edgequant::quant
