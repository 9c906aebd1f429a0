// Observers, scale rules and rounding against hand-computed values.
#include "quant/observer.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/intmath.h"
#include "data/npy.h"
#include "exec/executor.h"
#include "quant/fake_quant.h"
#include "test_util.h"

using namespace edgequant;
using namespace edgequant::quant;

namespace {
QuantConfig int8_symmetric(ScaleKind kind, RoundingMode rounding = RoundingMode::HalfEven) {
  QuantConfig c;
  c.scale_kind = kind;
  c.rounding = rounding;
  c.set_range(8, true, false);
  return c;
}

TEST(MinMaxObserver, TracksExtremesAcrossBatches) {
  HistogramObserver obs;
  obs.observe(at::tensor({1.0f, -3.0f, 2.0f}));
  obs.observe(at::tensor({5.0f, 0.0f}));
  Range r = obs.finalize(int8_symmetric(ScaleKind::Float), CalibAlgorithm::MinMax);
  EXPECT_DOUBLE_EQ(r.min, -3.0);
  EXPECT_DOUBLE_EQ(r.max, 5.0);
}

TEST(ScaleRule, FloatAndPowerOfTwoExponentRounding) {
  QuantConfig f = int8_symmetric(ScaleKind::Float);
  set_scale_from_ranges(f, {{-3, 5}}, Pow2Rule::Ceil);
  EXPECT_DOUBLE_EQ(f.scales[0], 5.0 / 127.0);
  // log2(5/127) = -4.666: ceil -> 2^-4 (never clips), nearest -> 2^-5.
  QuantConfig up = int8_symmetric(ScaleKind::PowerOfTwo);
  set_scale_from_ranges(up, {{-3, 5}}, Pow2Rule::Ceil);
  EXPECT_DOUBLE_EQ(up.scales[0], 0.0625);
  EXPECT_EQ(up.exponents()[0], -4);
  QuantConfig near = int8_symmetric(ScaleKind::PowerOfTwo);
  set_scale_from_ranges(near, {{-3, 5}}, Pow2Rule::Nearest);
  EXPECT_DOUBLE_EQ(near.scales[0], 0.03125);
  // An exact power of two stays put under ceil: 127 * 2^-3 -> 2^-3.
  QuantConfig exact = int8_symmetric(ScaleKind::PowerOfTwo);
  set_scale_from_ranges(exact, {{0, 127 * 0.125}}, Pow2Rule::Ceil);
  EXPECT_DOUBLE_EQ(exact.scales[0], 0.125);
}

TEST(ScaleRule, AsymmetricUint8ZeroPoint) {
  QuantConfig c;
  c.symmetric = false;
  c.scale_kind = ScaleKind::Float;
  c.set_range(8, false, false);
  set_scale_from_ranges(c, {{-1.0, 3.0}}, Pow2Rule::Nearest);
  EXPECT_DOUBLE_EQ(c.scales[0], 4.0 / 255.0);
  EXPECT_EQ(c.zero_points[0], 64);  // round(0 - (-1) / (4/255)) = round(63.75)
}

TEST(ScaleRule, ZeroRangeGetsScaleOne) {
  HistogramObserver obs;
  obs.observe(at::zeros({100}));
  QuantConfig c = int8_symmetric(ScaleKind::PowerOfTwo);
  set_scale_from_ranges(c, {obs.finalize(c, CalibAlgorithm::KL)}, Pow2Rule::Nearest);
  EXPECT_DOUBLE_EQ(c.scales[0], 1.0);
  EXPECT_EQ(c.exponents()[0], 0);
  EXPECT_TRUE(at::equal(fake_quantize(at::zeros({3}), c), at::zeros({3})));
}

TEST(PercentileObserver, DropsTheOutlierTail) {
  // 9999 values of 1.0 and one of 100.0: the 0.9999 percentile excludes exactly the outlier.
  HistogramObserver obs;
  at::Tensor x = at::ones({10000});
  x[0] = 100.0f;
  obs.observe(x);
  Range r = obs.finalize(int8_symmetric(ScaleKind::Float), CalibAlgorithm::Percentile, 0.9999);
  // Bin width 100/4096; 1.0 lies in bin 40, whose upper edge is 41 * 100/4096.
  EXPECT_DOUBLE_EQ(r.max, 41 * 100.0 / 4096);
  EXPECT_DOUBLE_EQ(r.min, -r.max);
}

TEST(HistogramObserver, RebinningByPowersOfTwoKeepsCounts) {
  HistogramObserver obs;
  obs.observe(at::tensor({0.5f, -0.25f}));
  EXPECT_DOUBLE_EQ(obs.bin_width(), 0.5 / 4096);
  obs.observe(at::tensor({1.9f}));  // range grows 0.5 -> 2.0: bins merge 4 to 1
  EXPECT_DOUBLE_EQ(obs.bin_width(), 2.0 / 4096);
  EXPECT_DOUBLE_EQ(obs.total(), 3.0);
  EXPECT_DOUBLE_EQ(obs.positive()[1023], 1.0);  // 0.5 was in the last of 4096 bins -> bin 1023
  EXPECT_DOUBLE_EQ(obs.negative()[512], 1.0);   // -0.25 -> bin 2048 -> 512
}

TEST(KLObserver, UniformDataKeepsTheFullRange) {
  // With uniform data, clipping only moves mass into the last bin: KL is least (zero) when
  // nothing is clipped, so the threshold is the full range (plus half a bin).
  HistogramObserver obs;
  obs.observe(at::linspace(-1.0, 1.0, 200001));
  Range r = obs.finalize(int8_symmetric(ScaleKind::Float), CalibAlgorithm::KL);
  EXPECT_NEAR(r.max, 1.0 + 0.5 / 4096, 1e-9);
}

// Seeded data and thresholds computed by numpy (tools/gen_fixtures/observer_references.py).
struct Reference {
  at::Tensor data;
  double kl, mse, max_abs;
};
Reference reference(const std::string& name) {
  std::ifstream f(edgequant::testing::fixture("observers/expected.json"));
  nlohmann::json j = nlohmann::json::parse(f);
  return {exec::to_aten(read_npy(edgequant::testing::fixture("observers/" + name + ".npy"))),
          j[name]["kl"].get<double>(), j[name]["mse"].get<double>(), j[name]["max_abs"].get<double>()};
}

// The clip an int8 symmetric float-scale config gets from one observation of `data`.
double clip(const at::Tensor& data, CalibAlgorithm algorithm) {
  HistogramObserver obs;
  obs.observe(data);
  return obs.finalize(int8_symmetric(ScaleKind::Float), algorithm).max;
}

TEST(KLObserver, MatchesNumpyReferenceOnALongTail) {
  // Gaussian bulk with ten outliers at 60: the entropy threshold is the reference's, exactly.
  Reference outl = reference("gauss_outliers"), lap = reference("laplace");
  double t = clip(outl.data, CalibAlgorithm::KL);
  EXPECT_NEAR(t, outl.kl, 1e-9 * outl.kl);
  EXPECT_LT(t, outl.max_abs / 10);
  EXPECT_NEAR(clip(lap.data, CalibAlgorithm::KL), lap.kl, 1e-9 * lap.kl);
  // ReLU-like data with a spike of zeros: the threshold depends on the zeroed first bins.
  Reference relu = reference("relu_spike");
  EXPECT_NEAR(clip(relu.data, CalibAlgorithm::KL), relu.kl, 1e-9 * relu.kl);
}

TEST(KLObserver, NeverCollapsesOnSparseDataFarFromZero) {
  // Issue 12: a GlobalAveragePool output (320 values in [1.5, 17.1]) received +-0.89 from KL. The
  // smallest value sits in the last bin of the 256-bin candidate, so that candidate's clipped P
  // (319 outliers piled on that bin) and its Q are the same spike: KL = 0. Without the 1% clip
  // bound the numpy reference gives 1.07; with it, the full range.
  Reference sparse = reference("sparse_far_from_zero");
  double t = clip(sparse.data, CalibAlgorithm::KL);
  EXPECT_NEAR(t, sparse.kl, 1e-9 * sparse.kl);
  EXPECT_GT(t, 17.0);
  // Observed in 32 batches of 10 (the range grows by re-binning), it still keeps the range.
  HistogramObserver obs;
  for (int64_t b = 0; b < 32; ++b)
    obs.observe(sparse.data.slice(0, b * 10, std::min<int64_t>((b + 1) * 10, sparse.data.numel())));
  EXPECT_GT(obs.finalize(int8_symmetric(ScaleKind::Float), CalibAlgorithm::KL).max, 15.0);
}

TEST(PercentileObserver, EspPpqSemanticsAverageEachBatchsQuantiles) {
  // Batch A: 999 values in [0, 1) and one at 100; batch B: 1000 values in [0, 1). At p = 0.999
  // ESP-PPQ takes each batch's k-th value (k = int(n p) + 1 = 1000: the maximum) and averages:
  // (100 + ~1) / 2. One quantile of the union (2000 values, 2 in the tail) stays near 1.
  at::Tensor a = at::cat({at::linspace(0.0, 0.999, 999), at::full({1}, 100.0)});
  at::Tensor b = at::linspace(0.0, 0.999, 1000);
  QuantConfig c = int8_symmetric(ScaleKind::Float);
  HistogramObserver batched, union_;
  batched.track_batch_percentile(0.999);
  for (HistogramObserver* o : {&batched, &union_}) {
    o->observe(a);
    o->observe(b);
  }
  double w = batched.bin_width();  // 100 / 4096: quantiles are bin edges
  EXPECT_NEAR(batched.finalize(c, CalibAlgorithm::Percentile, 0.999).max, (100.0 + 0.999) / 2, w);
  EXPECT_NEAR(union_.finalize(c, CalibAlgorithm::Percentile, 0.999).max, 1.0, w);
  // Another percentile than the tracked one falls back to the union's quantile.
  EXPECT_NEAR(batched.finalize(c, CalibAlgorithm::Percentile, 0.99).max,
              union_.finalize(c, CalibAlgorithm::Percentile, 0.99).max, 1e-12);
  // Signed quantiles: the lower tail is taken on its own side (not folded into |x|).
  HistogramObserver s;
  s.track_batch_percentile(0.99);
  s.observe(at::linspace(-1.0, 3.0, 401));  // k = int(401 * 0.99) + 1 = 397 -> 2.96; lower k = 5 -> -0.96
  Range r = s.finalize(QuantConfig{}, CalibAlgorithm::Percentile, 0.99);
  EXPECT_NEAR(r.max, 2.96, s.bin_width() + 1e-9);
}

TEST(MSEObserver, MatchesNumpyReferenceInsideTheRange) {
  // Heavy-tailed data: the clip of least expected squared error lies well inside the range.
  Reference outl = reference("gauss_outliers"), lap = reference("laplace");
  double t = clip(lap.data, CalibAlgorithm::MSE);
  EXPECT_NEAR(t, lap.mse, 1e-9 * lap.mse);
  EXPECT_LT(t, 0.9 * lap.max_abs);
  EXPECT_NEAR(clip(outl.data, CalibAlgorithm::MSE), outl.mse, 1e-9 * outl.mse);
}

TEST(HistogramObserver, OneObservationServesEveryCalibrator) {
  // The same state yields each calibrator's range: minmax the extremes, the others clip.
  Reference ref = reference("laplace");
  HistogramObserver obs;
  obs.observe(ref.data);
  QuantConfig c = int8_symmetric(ScaleKind::Float);
  EXPECT_DOUBLE_EQ(std::max(-obs.finalize(c, CalibAlgorithm::MinMax).min, obs.finalize(c, CalibAlgorithm::MinMax).max),
                   ref.max_abs);
  EXPECT_NEAR(obs.finalize(c, CalibAlgorithm::MSE).max, ref.mse, 1e-9 * ref.mse);
  EXPECT_LT(obs.finalize(c, CalibAlgorithm::Percentile, 0.999).max, ref.max_abs);
}

TEST(Rounding, HalfEvenVersusHalfUpAtExactHalves) {
  at::Tensor x = at::tensor({0.5f, 1.5f, 2.5f, -0.5f, -1.5f, -2.5f});
  at::Tensor even = round_tensor(x, RoundingMode::HalfEven);
  at::Tensor up = round_tensor(x, RoundingMode::HalfUp);
  at::Tensor away = round_tensor(x, RoundingMode::HalfAwayFromZero);
  EXPECT_TRUE(at::equal(even, at::tensor({0.0f, 2.0f, 2.0f, -0.0f, -2.0f, -2.0f})));
  EXPECT_TRUE(at::equal(up, at::tensor({1.0f, 2.0f, 3.0f, 0.0f, -1.0f, -2.0f})));
  EXPECT_TRUE(at::equal(away, at::tensor({1.0f, 2.0f, 3.0f, -1.0f, -2.0f, -3.0f})));
  // The ATen form agrees with core/intmath's scalar definition.
  for (auto mode :
       {RoundingMode::HalfEven, RoundingMode::HalfUp, RoundingMode::HalfAwayFromZero, RoundingMode::Floor}) {
    at::Tensor r = round_tensor(x, mode);
    for (int64_t i = 0; i < x.numel(); ++i)
      EXPECT_EQ(r[i].item<float>(), static_cast<float>(round_value(x[i].item<float>(), mode)));
  }
}

TEST(FakeQuantize, Esp32s3RoundsHalfUpEsp32p4HalfEven) {
  // 2.5 and -1.5 codes at scale 2^-4.
  at::Tensor x = at::tensor({2.5f / 16, -1.5f / 16});
  QuantConfig s3 = int8_symmetric(ScaleKind::PowerOfTwo, RoundingMode::HalfUp);
  QuantConfig p4 = int8_symmetric(ScaleKind::PowerOfTwo, RoundingMode::HalfEven);
  s3.scales = p4.scales = {0.0625};
  s3.zero_points = p4.zero_points = {0};
  EXPECT_TRUE(at::equal(quantize_codes(x, s3), at::tensor({3.0f, -1.0f})));
  EXPECT_TRUE(at::equal(quantize_codes(x, p4), at::tensor({2.0f, -2.0f})));
  // Clamping at [-128, 127].
  EXPECT_TRUE(at::equal(quantize_codes(at::tensor({100.0f, -100.0f}), p4), at::tensor({127.0f, -128.0f})));
}

TEST(FakeQuantize, StraightThroughGradient) {
  QuantConfig c = int8_symmetric(ScaleKind::PowerOfTwo);
  c.scales = {0.5};
  c.zero_points = {0};
  at::Tensor x = at::tensor({0.3f, 10.0f, 100.0f}).set_requires_grad(true);
  fake_quantize(x, c).sum().backward();
  // Inside the range the gradient passes through; beyond 127 * 0.5 it is zero.
  EXPECT_TRUE(at::equal(x.grad(), at::tensor({1.0f, 1.0f, 0.0f})));
}

TEST(WeightRanges, PerChannelVersusPerTensor) {
  at::Tensor w = at::tensor({1.0f, -0.5f, 0.01f, -0.02f}).reshape({2, 2, 1, 1});
  QuantConfig pc = int8_symmetric(ScaleKind::Float);
  pc.granularity = Granularity::PerChannel;
  auto r = weight_ranges(w, pc, false);
  ASSERT_EQ(r.size(), 2u);
  EXPECT_DOUBLE_EQ(r[1].min, -0.02f);
  EXPECT_DOUBLE_EQ(r[1].max, 0.01f);
  QuantConfig pt = int8_symmetric(ScaleKind::Float);
  EXPECT_EQ(weight_ranges(w, pt, false).size(), 1u);
}
}  // namespace

namespace {
TEST(FakeQuantize, FusedCpuPathMatchesTheAtenPath) {
  at::manual_seed(1);
  at::Tensor random = at::randn({4, 8, 5, 5}).contiguous(at::MemoryFormat::ChannelsLast) * 3;
  // Exact ties, (k + 1/2) steps of a 0.25 grid, where the rounding modes differ: the vector loop
  // must round them as the scalar rounding functions do.
  at::Tensor ties = (at::arange(-300, 300, at::kFloat) * 0.25f + 0.125f).reshape({4, 6, 5, 5});
  ties = ties.contiguous(at::MemoryFormat::ChannelsLast);
  for (auto mode : {RoundingMode::HalfEven, RoundingMode::HalfUp, RoundingMode::HalfAwayFromZero, RoundingMode::Floor,
                    RoundingMode::Ceil, RoundingMode::TowardZero})
    for (bool on_ties : {false, true}) {
      const at::Tensor& x = on_ties ? ties : random;
      QuantConfig c;
      c.rounding = mode;
      c.symmetric = false;
      c.set_range(8, false, false);
      c.scales = {on_ties ? 0.25 : 0.0371};
      c.zero_points = {on_ties ? 3 : 117};
      auto [s, z] = scale_tensors(c, x.dim(), x.options());
      at::Tensor fused = fake_quantize(x, c);
      at::Tensor aten = fake_quantize(x, s, z, c.quant_min, c.quant_max, c.rounding);
      EXPECT_TRUE(at::equal(fused, aten)) << rounding_mode_name(mode) << (on_ties ? " on ties" : "");
      EXPECT_TRUE(fused.is_contiguous(at::MemoryFormat::ChannelsLast));
    }
}
}  // namespace

namespace {
// The ATen chain fake quantization was before it had a fused gradient: every step an autograd op.
at::Tensor aten_chain(const at::Tensor& x, const at::Tensor& s, const at::Tensor& z, const QuantConfig& c) {
  at::Tensor v = x / s;
  at::Tensor r = v + (round_tensor(v, c.rounding) - v).detach();
  at::Tensor q = at::clamp(r + z, static_cast<double>(c.quant_min), static_cast<double>(c.quant_max));
  return (q - z) * s;
}

// Forward, the input's gradient and the scale's gradient (reduced over the broadcast) of the fused
// autograd function against that chain: the same float operations per element and the same
// at::sum_to over tensors of the same layout, so the same bits (a case that only comes close
// would be a different computation). Per-tensor activations in both layouts, per-channel weights,
// asymmetric grids, every rounding mode, exact ties and values beyond the clamp.
TEST(FakeQuantize, FusedGradientIsTheAtenChainBitForBit) {
  at::manual_seed(3);
  struct Case {
    std::vector<int64_t> shape;
    bool channels_last, per_channel, x_grad;
    bool grad_other_layout = false;  // the incoming gradient in the other memory layout
  };
  for (const Case& k : {Case{{4, 8, 6, 6}, false, false, true}, Case{{4, 8, 6, 6}, true, false, true},
                        Case{{4, 8, 6, 6}, true, false, false}, Case{{6, 3, 3, 3}, false, true, true},
                        Case{{6, 3, 3, 3}, true, true, true}, Case{{4, 8, 6, 6}, true, false, true, true},
                        Case{{4, 8, 6, 6}, false, false, true, true}, Case{{6, 3, 3, 3}, true, true, true, true}})
    for (auto mode : {RoundingMode::HalfEven, RoundingMode::HalfUp, RoundingMode::HalfAwayFromZero, RoundingMode::Floor,
                      RoundingMode::Ceil, RoundingMode::TowardZero}) {
      auto format = k.channels_last ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous;
      at::Tensor x0 = at::randn(k.shape) * 5;
      // Every 7th value an exact tie of the 0.25 grid (k + 1/2 steps).
      at::Tensor ties = at::floor(at::randn(k.shape) * 40) * 0.25f + 0.125f;
      x0 = at::where(at::arange(x0.numel()).reshape(k.shape) % 7 == 0, ties, x0).contiguous(format);
      int64_t channels = k.per_channel ? k.shape[0] : 1;
      std::vector<int64_t> sshape = k.per_channel ? std::vector<int64_t>{channels, 1, 1, 1} : std::vector<int64_t>{};
      at::Tensor s0 = (at::rand({channels}) * 0.2 + 0.05).reshape(sshape);
      s0.view({-1})[0] = 0.25f;
      at::Tensor z = at::randint(-3, 4, {channels}).to(at::kFloat).reshape(sshape);
      at::Tensor g = at::randn(k.shape).contiguous(
          k.grad_other_layout == k.channels_last ? at::MemoryFormat::Contiguous : at::MemoryFormat::ChannelsLast);
      QuantConfig c;
      c.rounding = mode;
      c.symmetric = false;
      c.set_range(8, true, false);
      std::vector<at::Tensor> y(2), gx(2), gs(2);
      for (int fused = 0; fused < 2; ++fused) {
        // x a non-leaf whose gradient is caught as handed on (a leaf's .grad is recopied into the
        // leaf's layout, which would hide the layout the op produced).
        at::Tensor s = s0.clone().set_requires_grad(true), x = x0;
        if (k.x_grad) {
          x = x0.clone().set_requires_grad(true) * 1.0f;
          x.register_hook([&gx, fused](const at::Tensor& grad) { gx[fused] = grad.clone(at::MemoryFormat::Preserve); });
        }
        ASSERT_EQ(fused_gradient_applies(x, s, z), true);
        y[fused] = fused ? fake_quantize(x, s, z, c.quant_min, c.quant_max, mode) : aten_chain(x, s, z, c);
        y[fused].backward(g);
        gs[fused] = s.grad();
      }
      std::string what = std::string(rounding_mode_name(mode)) + (k.per_channel ? " per-channel" : " per-tensor") +
                         (k.channels_last ? " channels_last" : "") + (k.grad_other_layout ? ", gradient not" : "");
      EXPECT_TRUE(at::equal(y[0], y[1])) << what;
      if (k.x_grad) EXPECT_TRUE(at::equal(gx[0], gx[1]) && gx[0].strides() == gx[1].strides()) << what;
      EXPECT_TRUE(at::equal(gs[0], gs[1])) << what << ": " << gs[0] << " vs " << gs[1];
      EXPECT_GT(gs[0].abs().sum().item<float>(), 0.0f) << what;
    }
}
}  // namespace

namespace {
// Bin counts computed here from the definition (bin = floor(|v| * 4096 / limit), capped at the
// last bin, negatives on their own side), in the same float arithmetic as the observer.
std::pair<std::vector<double>, std::vector<double>> reference_bins(const at::Tensor& x, double limit) {
  constexpr int kBins = HistogramObserver::kBins;
  std::vector<double> pos(kBins, 0.0), neg(kBins, 0.0);
  float inv = static_cast<float>(kBins / limit);
  at::Tensor c = x.contiguous();
  const float* p = c.data_ptr<float>();
  for (int64_t i = 0; i < c.numel(); ++i) {
    float a = std::min(std::fabs(p[i]) * inv, float(kBins - 1));
    (p[i] < 0 ? neg : pos)[static_cast<size_t>(a)] += 1;
  }
  return {pos, neg};
}

at::Tensor with_zeros_and_saturation(int64_t n, uint64_t seed) {
  at::Generator gen = at::detail::createCPUGenerator(seed);
  at::Tensor x = at::randn({n}, gen) * 2.0;
  x.masked_fill_(x.abs() < 0.7, 0.0);           // ~27% exact zeros (the counted-at-once path)
  return at::clamp(x, -6.0, 6.0).contiguous();  // spikes at +-6, as after ReLU6
}
// One observe() of x with the AVX-512 binning loop (where the CPU has it) or the portable one.
HistogramObserver observed_with(const at::Tensor& x, bool vector) {
  HistogramObserver::vector_binning = vector;
  HistogramObserver obs;
  obs.observe(x);
  HistogramObserver::vector_binning = true;
  return obs;
}
}  // namespace

TEST(HistogramObserver, BinsEqualTheDefinitionWithZerosAndSpikes) {
  // 300 001 values: several threads' shares, 1024-value chunks and a ragged tail; exact zeros
  // and saturated values exercise the zero count and the rotating tables.
  // Both binning loops: AVX-512 where the CPU has it, and the portable one.
  at::Tensor x = with_zeros_and_saturation(300001, 7);
  auto [pos, neg] = reference_bins(x, 6.0);
  EXPECT_GT(pos[0], 60000.0);  // the zeros are really there
  for (bool vector : {true, false}) {
    SCOPED_TRACE(vector ? "vector binning" : "portable binning");
    HistogramObserver obs = observed_with(x, vector);
    EXPECT_DOUBLE_EQ(obs.bin_width(), 6.0 / HistogramObserver::kBins);
    EXPECT_EQ(obs.positive(), pos);
    EXPECT_EQ(obs.negative(), neg);
    EXPECT_DOUBLE_EQ(obs.total(), 300001.0);
    EXPECT_DOUBLE_EQ(obs.min(), -6.0);
    EXPECT_DOUBLE_EQ(obs.max(), 6.0);
  }
}

TEST(HistogramObserver, ASpikeOfMillionsDoesNotOverflowTheSixteenBitTables) {
  // ReLU6's saturated half: 2^21 + 3 values at exactly 6 on one thread fill one bin of every
  // 16-bit table by 1024 / tables per chunk; the tables must be flushed before any reaches 2^16.
  edgequant::testing::ScopedThreads one(1);
  const int64_t n = (int64_t{1} << 21) + 3;
  at::Tensor x = at::full({n}, 6.0f);
  x.narrow(0, 0, 1000).fill_(0.0f);
  x.narrow(0, 1000, 5).fill_(-1.5f);
  for (bool vector : {true, false}) {
    SCOPED_TRACE(vector ? "vector binning" : "portable binning");
    HistogramObserver obs = observed_with(x, vector);
    EXPECT_DOUBLE_EQ(obs.positive()[HistogramObserver::kBins - 1], double(n - 1005));  // 6 is the range's end
    EXPECT_DOUBLE_EQ(obs.positive()[0], 1000.0);
    EXPECT_DOUBLE_EQ(obs.negative()[HistogramObserver::kBins / 4], 5.0);  // 1.5 / 6 of the side
    EXPECT_DOUBLE_EQ(obs.total(), double(n));
  }
}

TEST(HistogramObserver, ARangeGrowingMidBatchGivesThePortableCounts) {
  // The vector loop counts each chunk's bins while it bins the next; when a chunk grows the
  // range, the previous chunk's bins (at the old range) must be counted before the counts merge.
  edgequant::testing::ScopedThreads one(1);
  at::Tensor first = with_zeros_and_saturation(50000, 4) * 0.25;  // range 1.5
  at::Tensor batch = at::cat({with_zeros_and_saturation(300001, 5) * 0.24, with_zeros_and_saturation(300001, 6)});
  std::vector<HistogramObserver> seen;
  for (bool vector : {true, false}) {
    HistogramObserver::vector_binning = vector;
    seen.emplace_back();
    seen.back().observe(first);
    seen.back().observe(batch);
    HistogramObserver::vector_binning = true;
  }
  EXPECT_DOUBLE_EQ(seen[0].bin_width(), 6.0 / HistogramObserver::kBins);
  EXPECT_EQ(seen[0].positive(), seen[1].positive());
  EXPECT_EQ(seen[0].negative(), seen[1].negative());
  EXPECT_DOUBLE_EQ(seen[0].total(), 650002.0);
}

TEST(HistogramObserver, ABatchSeenInPiecesEqualsItSeenWhole) {
  // The executor may show a batch a few samples at a time (accumulate per piece, end_batch
  // once). Once a first batch has set the range, the state is the same as for one observe():
  // bins, extremes and each batch's percentiles, also when a later piece grows the range.
  edgequant::testing::ScopedThreads two(2);  // per-thread counts at different ranges get merged
  ASSERT_EQ(at::get_num_threads(), 2);
  at::Tensor first = with_zeros_and_saturation(100000, 1) * 0.25;  // range 1.5
  // Grows it x4 to 6 in its second half only: with two threads, one thread's counts stay at
  // the first range and are merged 4 to 1 when the batch ends. (The first half stays below 1.5:
  // a value exactly at a range's end sits in its last bin, which merges into bin 1023 of the
  // grown range, while binned there directly it is bin 1024.)
  at::Tensor batch = at::cat({with_zeros_and_saturation(200000, 2) * 0.24, with_zeros_and_saturation(200000, 3)});
  HistogramObserver whole, pieces;
  for (HistogramObserver* o : {&whole, &pieces}) {
    o->track_batch_percentile(0.999);
    o->observe(first);
  }
  whole.observe(batch);
  for (int64_t start = 0; start < batch.numel(); start += 70000)
    pieces.accumulate(batch.narrow(0, start, std::min<int64_t>(70000, batch.numel() - start)));
  pieces.end_batch();
  EXPECT_EQ(pieces.positive(), whole.positive());
  EXPECT_EQ(pieces.negative(), whole.negative());
  EXPECT_DOUBLE_EQ(pieces.bin_width(), 6.0 / HistogramObserver::kBins);
  EXPECT_DOUBLE_EQ(pieces.min(), -6.0);
  EXPECT_DOUBLE_EQ(pieces.max(), 6.0);
  QuantConfig c = int8_symmetric(ScaleKind::Float);
  Range a = pieces.finalize(c, CalibAlgorithm::Percentile, 0.999),
        b = whole.finalize(c, CalibAlgorithm::Percentile, 0.999);
  EXPECT_DOUBLE_EQ(a.min, b.min);
  EXPECT_DOUBLE_EQ(a.max, b.max);
  // The mean of two batch quantiles (torch.kthvalue at k = int(n p) + 1, ESP-PPQ's rule), not
  // of seven pieces' quantiles: within a bin (quantiles are taken at the bin's outer edge).
  auto kth = [](const at::Tensor& t) {
    return std::get<0>(t.kthvalue(static_cast<int64_t>(t.numel() * 0.999) + 1)).item<double>();
  };
  EXPECT_NEAR(a.max, (kth(first) + kth(batch)) / 2, pieces.bin_width());
  // end_batch() without data does nothing.
  pieces.end_batch();
  EXPECT_EQ(pieces.positive(), whole.positive());
}
