// The bit allocation's Pareto front against every allocation of a small instance: for every
// budget, the allocation it picks has the least summed error of all that fit (brute force over
// 3^7), the front is exactly the set of non-dominated allocations, and thinning keeps the
// cheapest point.
#include "quant/bit_allocation.h"

#include <gtest/gtest.h>

#include <random>

using namespace edgequant::quant;

namespace {
std::vector<AllocationLayer> instance(uint64_t seed, int layers) {
  std::mt19937_64 rng(seed);
  std::vector<AllocationLayer> out;
  for (int l = 0; l < layers; ++l) {
    AllocationLayer a;
    a.name = "l" + std::to_string(l);
    int64_t n = 1 + static_cast<int64_t>(rng() % 50);
    double sens = std::uniform_real_distribution<double>(0.01, 3)(rng);
    for (int bits : {2, 4, 8})  // error shrinks about 4x per extra bit, cost grows with the bits
      a.options.push_back({bits, n * bits, sens * std::pow(4.0, -bits) * (1 + 0.3 * (rng() % 3))});
    out.push_back(a);
  }
  return out;
}

struct Brute {
  int64_t cost;
  double error;
};
std::vector<Brute> every(const std::vector<AllocationLayer>& layers) {
  std::vector<Brute> all = {{0, 0}};
  for (const auto& l : layers) {
    std::vector<Brute> next;
    for (const Brute& b : all)
      for (const auto& o : l.options) next.push_back({b.cost + o.cost, b.error + o.error});
    all = next;
  }
  return all;
}

TEST(BitAllocation, PicksTheLeastErrorWithinEveryBudgetLikeBruteForce) {
  for (uint64_t seed : {1, 2, 3}) {
    std::vector<AllocationLayer> layers = instance(seed, 7);
    std::vector<Brute> all = every(layers);
    std::vector<ParetoPoint> front = pareto_front(layers);
    ASSERT_FALSE(front.empty());
    for (size_t i = 1; i < front.size(); ++i) {
      EXPECT_GT(front[i].cost, front[i - 1].cost);
      EXPECT_LT(front[i].error, front[i - 1].error);
    }
    // Each point's choice reproduces its cost and error.
    for (const ParetoPoint& p : front) {
      int64_t c = 0;
      double e = 0;
      for (size_t l = 0; l < layers.size(); ++l) {
        c += layers[l].options[static_cast<size_t>(p.choice[l])].cost;
        e += layers[l].options[static_cast<size_t>(p.choice[l])].error;
      }
      EXPECT_EQ(c, p.cost);
      EXPECT_NEAR(e, p.error, 1e-12);
    }
    int64_t lo = all.front().cost, hi = all.front().cost;
    for (const Brute& b : all) lo = std::min(lo, b.cost), hi = std::max(hi, b.cost);
    for (int64_t budget = lo - 1; budget <= hi + 1; ++budget) {
      double want = INFINITY;
      for (const Brute& b : all)
        if (b.cost <= budget) want = std::min(want, b.error);
      std::optional<ParetoPoint> got = best_within(front, budget);
      if (std::isinf(want)) {
        EXPECT_FALSE(got) << "budget " << budget;
        continue;
      }
      ASSERT_TRUE(got) << "budget " << budget;
      EXPECT_LE(got->cost, budget);
      EXPECT_NEAR(got->error, want, 1e-12) << "seed " << seed << " budget " << budget;
    }
  }
}

TEST(BitAllocation, ThinningKeepsTheCheapestPointAndSaysSo) {
  std::vector<AllocationLayer> layers = instance(7, 12);
  bool thinned = false;
  std::vector<ParetoPoint> full = pareto_front(layers, 1000000, &thinned);
  EXPECT_FALSE(thinned);
  std::vector<ParetoPoint> thin = pareto_front(layers, 8, &thinned);
  EXPECT_TRUE(thinned);
  ASSERT_FALSE(thin.empty());
  EXPECT_EQ(thin.front().cost, full.front().cost);  // the minimum reachable survives
  EXPECT_LT(thin.size(), full.size());
}
}  // namespace
