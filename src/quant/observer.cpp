// Observer implementations and range -> scale conversion.
#include "quant/observer.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "edgequant/error.h"
#include "exec/kernel.h"
#include "quant/fake_quant.h"

namespace edgequant::quant {

double HistogramObserver::total() const {
  double t = 0;
  for (int i = 0; i < kBins; ++i) t += pos_[i] + neg_[i];
  return t;
}

void HistogramObserver::grow(double new_abs_max) {
  if (limit_ <= 0) {
    limit_ = new_abs_max;
    return;
  }
  int factor = 1;
  while (limit_ * factor < new_abs_max) factor *= 2;
  if (factor == 1) return;
  // Doubling the range merges pairs of bins exactly: no count is smeared.
  for (auto* side : {&pos_, &neg_}) {
    std::vector<double> merged(kBins, 0.0);
    for (int i = 0; i < kBins; ++i) merged[i / factor] += (*side)[i];
    *side = std::move(merged);
  }
  limit_ *= factor;
}

namespace {
// Counts one chunk into `h` (2 * kBins bins, negatives in the upper half) at `inv` = bins per unit. The index loop has no branches so it vectorises (an AVX2 clone
// is picked at run time where the CPU has it); the counting loop alternates two tables so that
// runs of equal indices (ReLU zeros, small values) do not serialise on one counter.
__attribute__((target_clones("avx2", "default")))
void bin_chunk(const float* q, int len, float inv, uint32_t* h, uint32_t* h2) {
  constexpr int kBins = HistogramObserver::kBins;
  int32_t idx[1024];
  for (int j = 0; j < len; ++j) {
    float v = q[j];
    float a = std::fabs(v) * inv;
    a = a < float(kBins - 1) ? a : float(kBins - 1);
    idx[j] = static_cast<int32_t>(a) + (v < 0 ? kBins : 0);
  }
  int j = 0;
  for (; j + 2 <= len; j += 2) {
    ++h[idx[j]];
    ++h2[idx[j + 1]];
  }
  if (j < len) ++h[idx[j]];
}

// Min and max of a chunk in eight independent lanes (one running min/max would serialise on
// its own latency).
__attribute__((target_clones("avx2", "default")))
void chunk_range(const float* q, int len, float& lo, float& hi) {
  float lo8[8], hi8[8];
  for (int l = 0; l < 8; ++l) lo8[l] = hi8[l] = q[0];
  int j = 0;
  for (; j + 8 <= len; j += 8)
    for (int l = 0; l < 8; ++l) {
      float v = q[j + l];
      lo8[l] = v < lo8[l] ? v : lo8[l];
      hi8[l] = v > hi8[l] ? v : hi8[l];
    }
  for (; j < len; ++j) {
    lo8[0] = q[j] < lo8[0] ? q[j] : lo8[0];
    hi8[0] = q[j] > hi8[0] ? q[j] : hi8[0];
  }
  lo = lo8[0];
  hi = hi8[0];
  for (int l = 1; l < 8; ++l) {
    lo = std::min(lo, lo8[l]);
    hi = std::max(hi, hi8[l]);
  }
}

// Merges bins by `factor` (a power of two) in place: the range grew by that factor.
template <class T>
void merge_bins(T* side, int factor) {
  constexpr int kBins = HistogramObserver::kBins;
  for (int i = 0; i < kBins; ++i) {
    T v = side[i];
    side[i] = 0;
    side[i / factor] += v;
  }
}
}  // namespace

void HistogramObserver::observe(const at::Tensor& x_in) {
  if (x_in.numel() == 0) return;
  // Element order does not matter for a histogram: read the bytes in memory order.
  at::Tensor x = exec::per_sample_view(x_in.to(at::kCPU).to(at::kFloat));
  const float* p = x.data_ptr<float>();
  int64_t n = x.numel();
  if (limit_ <= 0) {
    // First data: one pass for the range, so every later batch can grow from a fixed base.
    auto [lo, hi] = at::aminmax(x);
    double l = lo.item<double>(), h = hi.item<double>();
    min_ = seen_ ? std::min(min_, l) : l;
    max_ = seen_ ? std::max(max_, h) : h;
    seen_ = true;
    double amax = std::max(std::abs(l), std::abs(h));
    if (amax <= 0) {
      pos_[0] += static_cast<double>(n);
      if (batch_p_ > 0) ++percentile_batches_;  // this batch's quantiles are 0
      return;
    }
    limit_ = amax;
  }
  // One fused pass: each thread tracks min/max per 1024-element chunk and grows its own copy of
  // the range by powers of two when a chunk exceeds it; copies merge exactly at the end.
  int threads = at::get_num_threads();
  struct Local {
    double limit;
    float lo, hi;
  };
  std::vector<Local> local(static_cast<size_t>(threads), Local{limit_, INFINITY, -INFINITY});
  const size_t table = 2 * kBins, per_thread = 2 * table;
  scratch_.assign(static_cast<size_t>(threads) * per_thread, 0);  // kept between batches (no mmap)
  at::parallel_for(0, n, 1 << 16, [&](int64_t begin, int64_t end) {
    int t = at::get_thread_num();
    Local& L = local[t];
    uint32_t* h = scratch_.data() + static_cast<size_t>(t) * per_thread;
    uint32_t* h2 = h + table;
    float inv = static_cast<float>(kBins / L.limit);
    for (int64_t c = begin; c < end; c += 1024) {
      int len = static_cast<int>(std::min<int64_t>(1024, end - c));
      const float* q = p + c;
      float lo, hi;
      chunk_range(q, len, lo, hi);
      double amax = std::max(std::fabs(lo), std::fabs(hi));
      if (amax > L.limit) {
        int factor = 1;
        while (L.limit * factor < amax) factor *= 2;
        for (uint32_t* side : {h, h + kBins, h2, h2 + kBins}) merge_bins(side, factor);
        L.limit *= factor;
        inv = static_cast<float>(kBins / L.limit);
      }
      bin_chunk(q, len, inv, h, h2);
      L.lo = std::min(L.lo, lo);
      L.hi = std::max(L.hi, hi);
    }
  });
  double global = limit_;
  for (const Local& L : local) global = std::max(global, L.limit);
  grow(global);
  std::vector<double> call_pos, call_neg;  // this call's own histogram (per-batch percentiles)
  if (batch_p_ > 0) {
    call_pos.assign(kBins, 0.0);
    call_neg.assign(kBins, 0.0);
  }
  for (int t = 0; t < threads; ++t) {
    const Local& L = local[t];
    if (L.lo > L.hi) continue;  // this thread saw no data
    min_ = seen_ ? std::min(min_, double(L.lo)) : L.lo;
    max_ = seen_ ? std::max(max_, double(L.hi)) : L.hi;
    seen_ = true;
    uint32_t* h = scratch_.data() + static_cast<size_t>(t) * per_thread;
    for (int i = 0; i < 2 * kBins; ++i) h[i] += h[i + table];  // fold the second table
    int factor = static_cast<int>(std::lround(global / L.limit));
    if (factor > 1) {
      merge_bins(h, factor);
      merge_bins(h + kBins, factor);
    }
    for (int i = 0; i < kBins; ++i) {
      pos_[i] += h[i];
      neg_[i] += h[i + kBins];
    }
    if (batch_p_ > 0)
      for (int i = 0; i < kBins; ++i) {
        call_pos[i] += h[i];
        call_neg[i] += h[i + kBins];
      }
  }
  if (batch_p_ > 0) add_batch_percentiles(call_pos, call_neg, static_cast<double>(n));
}

// ESP-PPQ takes torch.kthvalue at k = int(n * p) + 1 (upper) and k = int(n * (1 - p)) + 1
// (lower) of the batch's signed values; on the histogram that is the bin holding the k-th value,
// taken at its outer edge (the value is inside the bin; the edge never clips it).
void HistogramObserver::add_batch_percentiles(const std::vector<double>& pos, const std::vector<double>& neg, double n) {
  double w = bin_width();
  double above = std::floor(n - std::min(std::floor(n * batch_p_), n - 1) - 1);  // values beyond the upper k-th
  double below = std::floor(n * (1.0 - batch_p_));                               // values below the lower k-th
  auto upper = [&]() {
    double seen = 0;
    for (int i = kBins - 1; i >= 0; --i)
      if ((seen += pos[i]) > above) return (i + 1) * w;
    for (int i = 0; i < kBins; ++i)
      if ((seen += neg[i]) > above) return -i * w;
    return 0.0;
  };
  auto lower = [&]() {
    double seen = 0;
    for (int i = kBins - 1; i >= 0; --i)
      if ((seen += neg[i]) > below) return -(i + 1) * w;
    for (int i = 0; i < kBins; ++i)
      if ((seen += pos[i]) > below) return i * w;
    return 0.0;
  };
  batch_hi_sum_ += upper();
  batch_lo_sum_ += lower();
  ++percentile_batches_;
}

// Smallest bin edge with at most `tail_count` samples beyond it on this side.
double HistogramObserver::percentile_threshold(const std::vector<double>& side, double tail_count) const {
  double beyond = 0;
  for (int i = kBins - 1; i >= 0; --i) {
    if (beyond + side[i] > tail_count) return (i + 1) * bin_width();
    beyond += side[i];
  }
  return 0;
}

// TensorRT entropy calibration on the |x| histogram: for each candidate threshold (multiples of
// the number of quantization levels), compare the clipped reference distribution P with its
// quantized version Q and keep the threshold of least KL divergence.
namespace {
constexpr double kKlMaxClippedFraction = 0.01;
}  // namespace

double HistogramObserver::kl_threshold(int bits) const {
  std::vector<double> hist(kBins);
  for (int i = 0; i < kBins; ++i) hist[i] = pos_[i] + neg_[i];
  // ESP-PPQ zeroes the first 0.2% of bins: the spike of exact zeros (ReLU) would dominate.
  int skip = std::max(1, kBins / 500);
  for (int i = 0; i < skip; ++i) hist[i] = 0;
  int levels = 1 << (bits - 1);
  double best_kl = std::numeric_limits<double>::infinity();
  int best_i = kBins;
  double counted = 0;
  for (double v : hist) counted += v;
  for (int i = levels; i <= kBins; i += levels) {
    std::vector<double> p(hist.begin(), hist.begin() + i);
    double outliers = 0;
    for (int k = i; k < kBins; ++k) outliers += hist[k];
    // A candidate that clips most of the mass can score KL ~ 0: the clipped P is one spike in its
    // last bin and Q, spread over the nonzero bins only, reproduces that spike when a lone value
    // sits there (sparse data far from zero: a GAP output of 320 values in [1.5, 17.1] got +-0.89).
    // TensorRT's entropy calibration has the same blind spot; never clip more than 1% of values.
    if (outliers > kKlMaxClippedFraction * counted) continue;
    p[i - 1] += outliers;
    double psum = 0;
    for (double v : p) psum += v;
    if (psum <= 0) continue;
    // Q: merge the i bins into `levels` groups, spread each group's mass over its nonzero bins.
    std::vector<double> q(i, 0.0);
    double per = double(i) / levels;
    for (int g = 0; g < levels; ++g) {
      int start = static_cast<int>(std::floor(g * per)), end = static_cast<int>(std::floor((g + 1) * per));
      if (g == levels - 1) end = i;
      double mass = 0;
      int nonzero = 0;
      for (int k = start; k < end; ++k) {
        mass += hist[k];
        nonzero += hist[k] > 0;
      }
      for (int k = start; k < end; ++k)
        if (hist[k] > 0) q[k] = mass / nonzero;
    }
    double qsum = 0;
    for (double v : q) qsum += v;
    if (qsum <= 0) continue;
    double kl = 0;
    for (int k = 0; k < i; ++k) {
      if (p[k] <= 0) continue;
      double pk = p[k] / psum, qk = q[k] > 0 ? q[k] / qsum : 1e-12;
      kl += pk * std::log(pk / qk);
    }
    if (kl < best_kl) {
      best_kl = kl;
      best_i = i;
    }
  }
  return (best_i + 0.5) * bin_width();
}

// The clip whose quantization (with this config's grid, rounding and clamping) has the least
// expected squared error over the histogram, using bin centres.
double HistogramObserver::mse_threshold(const QuantConfig& c) const {
  double amax = std::max(std::abs(min_), std::abs(max_));
  if (amax <= 0) return 0;
  int64_t qmax = c.quant_max;
  std::vector<double> candidates;
  if (c.scale_kind == ScaleKind::PowerOfTwo) {
    int e_hi = static_cast<int>(std::ceil(std::log2(amax / qmax)));
    for (int e = e_hi - 8; e <= e_hi; ++e) candidates.push_back(std::ldexp(1.0, e) * qmax);
  } else {
    for (int k = 1; k <= 100; ++k) candidates.push_back(amax * k / 100.0);
  }
  double w = bin_width(), best = std::numeric_limits<double>::infinity(), best_t = amax;
  for (double t : candidates) {
    double s = t / qmax, err = 0;
    for (int i = 0; i < kBins; ++i) {
      double cnt = pos_[i] + neg_[i];
      if (cnt <= 0) continue;
      double x = (i + 0.5) * w;
      double q = std::min(std::floor(x / s + 0.5), double(qmax)) * s;
      err += cnt * (x - q) * (x - q);
    }
    if (err < best) {
      best = err;
      best_t = t;
    }
  }
  return best_t;
}

Range HistogramObserver::finalize(const QuantConfig& c, CalibAlgorithm algorithm, double percentile) const {
  if (!seen_) return {0, 0};
  double n = total();
  switch (algorithm) {
    case CalibAlgorithm::MinMax: return {min_, max_};
    case CalibAlgorithm::Percentile: {
      if (batch_p_ > 0 && percentile_batches_ > 0 && percentile == batch_p_) {
        // ESP-PPQ: the mean over batches of each batch's quantiles, within the observed range.
        double lo = std::max(min_, batch_lo_sum_ / double(percentile_batches_));
        double hi = std::min(max_, batch_hi_sum_ / double(percentile_batches_));
        if (c.symmetric) {
          double t = std::max(std::abs(lo), std::abs(hi));
          return {-t, t};
        }
        return {std::min(lo, 0.0), std::max(hi, 0.0)};
      }
      // The relative epsilon keeps (1 - 0.9999) * 10000 = 0.99999999... from meaning "0 samples".
      double tail = (1.0 - percentile) * n * (1 + 1e-9);
      if (c.symmetric) {
        std::vector<double> folded(kBins);
        for (int i = 0; i < kBins; ++i) folded[i] = pos_[i] + neg_[i];
        double t = std::min(percentile_threshold(folded, tail), std::max(std::abs(min_), std::abs(max_)));
        return {-t, t};
      }
      double hi = std::min(percentile_threshold(pos_, tail), std::max(max_, 0.0));
      double lo = -std::min(percentile_threshold(neg_, tail), std::max(-min_, 0.0));
      return {lo, hi};
    }
    case CalibAlgorithm::KL:
    case CalibAlgorithm::MSE: {
      double t = algorithm == CalibAlgorithm::KL ? kl_threshold(c.is_signed || c.symmetric ? c.bits : c.bits + 1)
                                                  : mse_threshold(c);
      if (c.symmetric) return {-t, t};
      return {std::max(min_, -t), std::min(max_, t)};
    }
    case CalibAlgorithm::Auto:
      fail(ErrorCode::Internal, "finalize(auto): auto chooses among the calibrators' ranges (quant/auto_calib.h)");
  }
  return {min_, max_};
}

std::vector<Range> weight_ranges(const at::Tensor& w_in, const QuantConfig& c, bool mse) {
  at::Tensor w = w_in.to(at::kCPU).to(at::kFloat).contiguous();
  bool per_channel = c.granularity == Granularity::PerChannel && w.dim() > 0;
  at::Tensor rows = per_channel ? w.movedim(c.axis, 0).reshape({w.size(c.axis), -1}) : w.reshape({1, -1});
  at::Tensor mins = std::get<0>(rows.min(1)), maxs = std::get<0>(rows.max(1));
  std::vector<Range> out;
  for (int64_t i = 0; i < rows.size(0); ++i) out.push_back({mins[i].item<double>(), maxs[i].item<double>()});
  if (!mse || !c.symmetric) return out;
  // Per channel, try clip ratios (power-of-two grids for power-of-two configs) on the weights.
  for (int64_t i = 0; i < rows.size(0); ++i) {
    double amax = std::max(std::abs(out[i].min), std::abs(out[i].max));
    if (amax <= 0) continue;
    at::Tensor row = rows[i];
    std::vector<double> candidates;
    if (c.scale_kind == ScaleKind::PowerOfTwo) {
      int e_hi = static_cast<int>(std::ceil(std::log2(amax / c.quant_max)));
      for (int e = e_hi - 4; e <= e_hi; ++e) candidates.push_back(std::ldexp(1.0, e) * c.quant_max);
    } else {
      for (int k = 50; k <= 100; ++k) candidates.push_back(amax * k / 100.0);
    }
    double best = std::numeric_limits<double>::infinity(), best_t = amax;
    for (double t : candidates) {
      double s = t / c.quant_max;
      at::Tensor q = at::clamp(round_tensor(row / s, c.rounding), double(c.quant_min), double(c.quant_max)) * s;
      double err = (q - row).pow(2).sum().item<double>();
      if (err < best) {
        best = err;
        best_t = t;
      }
    }
    out[i] = {-best_t, best_t};
  }
  return out;
}

void set_scale_from_ranges(QuantConfig& c, const std::vector<Range>& ranges, Pow2Rule rule) {
  c.scales.clear();
  c.zero_points.clear();
  double lo_all = 0, hi_all = 0;
  for (const Range& r : ranges) {
    double lo = std::min(r.min, 0.0), hi = std::max(r.max, 0.0);
    lo_all = std::min(lo_all, lo);
    hi_all = std::max(hi_all, hi);
    double s;
    int64_t z = 0;
    if (c.symmetric) {
      double amax = std::max(-lo, hi);
      s = amax / static_cast<double>(c.quant_max);
      if (!c.is_signed) z = 0;
    } else {
      s = (hi - lo) / static_cast<double>(c.quant_max - c.quant_min);
    }
    if (!(s > 0) || !std::isfinite(s)) s = 1.0;  // zero range: documented scale 2^0
    if (c.scale_kind == ScaleKind::PowerOfTwo) s = std::ldexp(1.0, pow2_exponent(s, rule));
    if (!c.symmetric) {
      z = static_cast<int64_t>(std::nearbyint(c.quant_min - lo / s));
      z = std::clamp(z, c.quant_min, c.quant_max);
    }
    c.scales.push_back(s);
    c.zero_points.push_back(z);
  }
  c.range_min = lo_all;
  c.range_max = hi_all;
}

}  // namespace edgequant::quant
