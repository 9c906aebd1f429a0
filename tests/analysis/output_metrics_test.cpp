// Output metrics against hand-computed values.
#include "analysis/output_metrics.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>

#include "analysis/error_analysis.h"
#include "test_util.h"

using edgequant::analysis::OutputMetricsAccumulator;

TEST(OutputMetrics, HandComputedSqnrCosineMaxDiffAgreement) {
  // f = [[1, 2], [3, 4]], q = [[1, 2.5], [2, 4]]: sum f^2 = 30, sum (q-f)^2 = 1.25,
  // SQNR = 10 log10(24) dB; sum f q = 28, sum q^2 = 27.25; max |diff| = 1; argmax rows agree.
  OutputMetricsAccumulator acc("y");
  acc.add(at::tensor({1.0, 2.0}, at::kFloat).reshape({1, 2}), at::tensor({1.0, 2.5}, at::kFloat).reshape({1, 2}));
  acc.add(at::tensor({3.0, 4.0}, at::kFloat).reshape({1, 2}), at::tensor({2.0, 4.0}, at::kFloat).reshape({1, 2}));
  auto m = acc.result();
  EXPECT_NEAR(m.sqnr_db, 10.0 * std::log10(24.0), 1e-12);
  EXPECT_NEAR(m.cosine, 28.0 / std::sqrt(30.0 * 27.25), 1e-12);
  EXPECT_DOUBLE_EQ(m.max_abs_diff, 1.0);
  EXPECT_DOUBLE_EQ(m.top1_agreement, 100.0);
  EXPECT_EQ(m.samples, 2);
  EXPECT_NE(m.line().find("SQNR 13.80 dB"), std::string::npos) << m.line();
}

TEST(OutputMetrics, AggregatedOverElementsNotPerSample) {
  // Sample 1 is a sigmoid output near 0 (signal 1e-7): a per-sample ratio would be 1e10; the
  // aggregate is dominated by the sample with signal, as it should be.
  OutputMetricsAccumulator acc("p");
  acc.add(at::full({1, 4, 4}, 1e-7, at::kFloat), at::full({1, 4, 4}, 1e-3, at::kFloat));
  acc.add(at::full({1, 4, 4}, 1.0, at::kFloat), at::full({1, 4, 4}, 1.0, at::kFloat));
  auto m = acc.result();
  double noise = 16 * std::pow(1e-3 - 1e-7, 2), signal = 16 * (1e-14 + 1.0);
  EXPECT_NEAR(m.sqnr_db, 10.0 * std::log10(signal / noise), 1e-3);
  EXPECT_LT(m.top1_agreement, 0);  // [N, 4, 4] is not classifier-like
  // The argmax changes on a [N, C] output: agreement 50 %.
  OutputMetricsAccumulator cls("logits");
  cls.add(at::tensor({0.1f, 0.9f, 0.7f, 0.2f}).reshape({2, 2}), at::tensor({0.1f, 0.9f, 0.1f, 0.2f}).reshape({2, 2}));
  EXPECT_DOUBLE_EQ(cls.result().top1_agreement, 50.0);
  // Identical outputs: infinite SQNR.
  OutputMetricsAccumulator same("s");
  same.add(at::ones({2, 3}), at::ones({2, 3}));
  EXPECT_TRUE(std::isinf(same.result().sqnr_db));
}

// The per-unit statistics of analysis.json (error_analysis.h's Moments).
TEST(Moments, HandComputedOverTwoAddsAndAgainstATenOnALargeTensor) {
  // [1, 2, 3, 4] then [-2]: mean 1.6, variance 34/5 - 1.6^2 = 4.24, third central moment
  // 92/5 - 3 * 1.6 * 34/5 + 2 * 1.6^3 = -6.048, fourth 205.136/5 = 41.0272.
  edgequant::analysis::Moments m;
  m.add(at::tensor({1.0f, 2.0f, 3.0f, 4.0f}).reshape({1, 4}));
  m.add(at::tensor({-2.0f}));
  EXPECT_DOUBLE_EQ(m.count, 5.0);
  EXPECT_NEAR(m.mean(), 1.6, 1e-12);
  EXPECT_NEAR(m.std(), std::sqrt(4.24), 1e-12);
  EXPECT_NEAR(m.skewness(), -6.048 / std::pow(4.24, 1.5), 1e-12);
  EXPECT_NEAR(m.kurtosis(), 41.0272 / (4.24 * 4.24), 1e-12);
  EXPECT_DOUBLE_EQ(m.min, -2.0);
  EXPECT_DOUBLE_EQ(m.max, 4.0);
  // A channels_last activation split between two threads, against ATen in double.
  edgequant::testing::ScopedThreads two(2);
  at::Generator gen = at::detail::createCPUGenerator(3);
  at::Tensor x = (at::randn({3, 5, 70, 70}, gen) * 2 + 0.5).exp().contiguous(at::MemoryFormat::ChannelsLast);
  edgequant::analysis::Moments big;
  big.add(x);
  at::Tensor d = x.to(at::kDouble);
  double mean = d.mean().item<double>(), sd = d.std(/*unbiased=*/false).item<double>();
  EXPECT_NEAR(big.mean(), mean, 1e-9 * mean);
  EXPECT_NEAR(big.std(), sd, 1e-9 * sd);
  double skew = ((d - mean) / sd).pow(3).mean().item<double>(), kurt = ((d - mean) / sd).pow(4).mean().item<double>();
  EXPECT_NEAR(big.skewness(), skew, 1e-6 * skew);
  EXPECT_NEAR(big.kurtosis(), kurt, 1e-6 * kurt);
  EXPECT_DOUBLE_EQ(big.max, x.max().item<double>());
  // NaN wins min and max, as at::min / at::max (a diverged unit must show in the report).
  edgequant::analysis::Moments nan;
  nan.add(at::tensor({1.0f, NAN, -1.0f}));
  EXPECT_TRUE(std::isnan(nan.min) && std::isnan(nan.max));
}
