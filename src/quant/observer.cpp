// Observer implementations and range -> scale conversion.
#include "quant/observer.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

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

bool HistogramObserver::vector_binning = true;

namespace {
constexpr int kSideBins = HistogramObserver::kBins;
constexpr size_t kPerThread = 2 * kSideBins;  // a thread's counts: positive then negative bins

// Adds a chunk's nonzero bins to kTables 16-bit tables (2 * kBins counts each); the loop
// rotates over them so that runs of equal indices (ReLU6's saturated values, a peak near zero)
// do not serialise on one counter. The caller flushes them before a count could reach 2^16.
constexpr int kTables = 4;
using BinTables = uint16_t[kTables][2 * kSideBins];
void count_bins(const int32_t* idx, int m, BinTables& t) {
  int j = 0;
  for (; j + kTables <= m; j += kTables)
    for (int k = 0; k < kTables; ++k) ++t[k][idx[j + k]];
  for (int k = 0; j < m; ++j, ++k) ++t[k][idx[j]];
}

// One pass over a chunk: its min and max, and the bin of every nonzero value at `inv` bins per
// unit, compacted into `idx` (negatives in the upper half); returns how many. Exact zeros (ReLU's
// dead half, padding) all fall in bin 0 and are counted at once by the caller: one increment
// each would serialise on that single counter. Values beyond the range land in the last bin; the
// caller grows the range and bins the chunk again when max |value| exceeds it.
int chunk_bins_portable(const float* q, int len, float inv, int32_t* idx, float& lo, float& hi) {
  int m = 0;
  for (int j = 0; j < len; ++j) {
    float v = q[j];
    lo = v < lo ? v : lo;
    hi = v > hi ? v : hi;
    float a = std::fabs(v) * inv;
    a = a < float(kSideBins - 1) ? a : float(kSideBins - 1);  // NaN lands in the last bin
    idx[m] = static_cast<int32_t>(a) + (v < 0 ? kSideBins : 0);
    m += v != 0;
  }
  return m;
}

#if defined(__x86_64__)
// Also counts the previous chunk's `pending` indices into `t`, a few per 16 values binned: the
// counting (one store per value) then runs on the load/store ports while the binning keeps the
// vector ports busy, instead of the two phases taking turns.
__attribute__((target("avx512f"))) int chunk_bins_avx512(const float* q, int len, float inv, int32_t* idx, float& lo,
                                                         float& hi, const int32_t* pending, int pending_count,
                                                         BinTables* t) {
  const __m512 scale = _mm512_set1_ps(inv), top = _mm512_set1_ps(float(kSideBins - 1)), zero = _mm512_setzero_ps();
  const __m512i negative_half = _mm512_set1_epi32(kSideBins);
  __m512 vlo = _mm512_set1_ps(lo), vhi = _mm512_set1_ps(hi);
  int m = 0, j = 0;
  const int32_t* const pending_end = pending + pending_count;
  // Per 16 values binned, a multiple of kTables indices counted, so each table keeps its share.
  const int per_step = ((pending_count + len / 16) / std::max(1, len / 16) + kTables - 1) / kTables * kTables;
  for (; j + 16 <= len; j += 16) {
    for (int s = 0; s < per_step && pending + kTables <= pending_end; s += kTables, pending += kTables)
      for (int k = 0; k < kTables; ++k) ++(*t)[k][pending[k]];
    _mm_prefetch(reinterpret_cast<const char*>(q + j + 1024), _MM_HINT_T0);
    __m512 v = _mm512_loadu_ps(q + j);
    vlo = _mm512_min_ps(v, vlo);  // a NaN in v keeps vlo, as the portable comparisons do
    vhi = _mm512_max_ps(v, vhi);
    // min(NaN, top) is top: NaN lands in the last bin, as in the portable loop.
    __m512i i = _mm512_cvttps_epi32(_mm512_min_ps(_mm512_mul_ps(_mm512_abs_ps(v), scale), top));
    i = _mm512_mask_add_epi32(i, _mm512_cmp_ps_mask(v, zero, _CMP_LT_OQ), i, negative_half);
    __mmask16 nonzero = _mm512_cmp_ps_mask(v, zero, _CMP_NEQ_UQ);
    // Compress in a register and store all 16 lanes: Intel's compress-to-memory form is several
    // times slower. The lanes past the popcount are overwritten by the next store (idx has slack).
    _mm512_storeu_si512(idx + m, _mm512_maskz_compress_epi32(nonzero, i));
    m += __builtin_popcount(nonzero);
  }
  alignas(64) float los[16], his[16];  // (GCC 12's _mm512_reduce_min_ps trips -Wuninitialized)
  _mm512_store_ps(los, vlo);
  _mm512_store_ps(his, vhi);
  for (int l = 0; l < 16; ++l) {
    lo = std::min(lo, los[l]);
    hi = std::max(hi, his[l]);
  }
  if (pending != pending_end) count_bins(pending, static_cast<int>(pending_end - pending), *t);
  return m + chunk_bins_portable(q + j, len - j, inv, idx + m, lo, hi);
}
#endif

// Bins a chunk (see chunk_bins_portable) and counts the previous chunk's `pending` indices
// into `t` (which may be null when there are none).
int chunk_bins(const float* q, int len, float inv, int32_t* idx, float& lo, float& hi, const int32_t* pending = nullptr,
               int pending_count = 0, BinTables* t = nullptr) {
  lo = INFINITY;
  hi = -INFINITY;
#if defined(__x86_64__)
  static const bool avx512 = __builtin_cpu_supports("avx512f");
  if (avx512 && HistogramObserver::vector_binning)
    return chunk_bins_avx512(q, len, inv, idx, lo, hi, pending, pending_count, t);
#endif
  if (pending_count > 0) count_bins(pending, pending_count, *t);
  return chunk_bins_portable(q, len, inv, idx, lo, hi);
}

// Adds the 16-bit tables to the 32-bit counts `h` and clears them.
void flush_bins(BinTables& t, uint32_t* h) {
  for (int i = 0; i < 2 * kSideBins; ++i) {
    uint32_t sum = 0;
    for (int k = 0; k < kTables; ++k) sum += t[k][i];
    h[i] += sum;
  }
  std::memset(t, 0, sizeof(BinTables));
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

void HistogramObserver::observe(const at::Tensor& x) {
  accumulate(x);
  end_batch();
}

void HistogramObserver::accumulate(const at::Tensor& x_in) {
  if (x_in.numel() == 0) return;
  // Element order does not matter for a histogram: read the bytes in memory order.
  at::Tensor x = exec::per_sample_view(x_in.to(at::kCPU).to(at::kFloat));
  const float* p = x.data_ptr<float>();
  int64_t n = x.numel();
  int threads = at::get_num_threads();
  if (parts_.size() != static_cast<size_t>(threads)) {
    if (!parts_.empty()) end_batch();  // the thread count changed mid-batch: close what was counted
    parts_.assign(static_cast<size_t>(threads), ThreadPart{});
    scratch_.assign(static_cast<size_t>(threads) * kPerThread, 0);  // kept between calls (no mmap)
  }
  pending_ += static_cast<double>(n);
  if (limit_ <= 0) {
    // First nonzero data: one pass for the range, so every later chunk can grow from a fixed base.
    auto [lo, hi] = at::aminmax(x);
    float l = lo.item<float>(), h = hi.item<float>();
    ThreadPart& first = parts_[0];
    first.lo = std::min(first.lo, l);
    first.hi = std::max(first.hi, h);
    double amax = std::max(std::fabs(double(l)), std::fabs(double(h)));
    if (amax <= 0) {
      pending_zeros_ += static_cast<double>(n);
      return;
    }
    limit_ = amax;
    for (ThreadPart& part : parts_) part.limit = limit_;
  }
  // One fused pass: each thread tracks min/max per 1024-element chunk and grows its own copy of
  // the range by powers of two when a chunk exceeds it; copies merge exactly in end_batch().
  // A share of at least 32 Ki values: each share clears and flushes its tables (64 KiB) once.
  at::parallel_for(0, n, 1 << 15, [&](int64_t begin, int64_t end) {
    int t = at::get_thread_num();
    ThreadPart& L = parts_[t];
    if (L.limit <= 0) L.limit = limit_;
    uint32_t* h = scratch_.data() + static_cast<size_t>(t) * kPerThread;
    float inv = static_cast<float>(kBins / L.limit);
    // Two index buffers: a chunk's bins are counted while the next chunk is binned. 16 lanes of
    // slack each for the vector loop's full stores.
    int32_t idx[2][1024 + 16];
    int32_t* binned = idx[0];    // the current chunk's bins
    int32_t* counting = idx[1];  // the previous chunk's bins, not yet counted
    int uncounted = 0;
    BinTables tables = {};
    int since_flush = 0;  // chunks counted into the tables: each adds at most 1024 / kTables to a counter
    for (int64_t c = begin; c < end; c += 1024) {
      int len = static_cast<int>(std::min<int64_t>(1024, end - c));
      const float* q = p + c;
      float lo, hi;
      int m = chunk_bins(q, len, inv, binned, lo, hi, counting, uncounted, &tables);
      if (uncounted > 0 && ++since_flush == 65535 / (1024 / kTables)) {
        flush_bins(tables, h);
        since_flush = 0;
      }
      uncounted = 0;
      double amax = std::max(std::fabs(lo), std::fabs(hi));
      if (amax > L.limit) {  // rare: the range grows (every count so far is merged), the chunk is binned again
        flush_bins(tables, h);
        since_flush = 0;
        int factor = 1;
        while (L.limit * factor < amax) factor *= 2;
        merge_bins(h, factor);
        merge_bins(h + kBins, factor);
        L.limit *= factor;
        inv = static_cast<float>(kBins / L.limit);
        m = chunk_bins(q, len, inv, binned, lo, hi);
      }
      h[0] += static_cast<uint32_t>(len - m);  // the zeros
      std::swap(binned, counting);
      uncounted = m;
      L.lo = std::min(L.lo, lo);
      L.hi = std::max(L.hi, hi);
    }
    count_bins(counting, uncounted, tables);
    flush_bins(tables, h);
  });
}

void HistogramObserver::end_batch() {
  if (pending_ <= 0) return;
  double global = limit_;
  for (const ThreadPart& L : parts_) global = std::max(global, L.limit);
  if (global > 0) grow(global);
  std::vector<double> call_pos, call_neg;  // this batch's own histogram (per-batch percentiles)
  if (batch_p_ > 0) {
    call_pos.assign(kBins, 0.0);
    call_neg.assign(kBins, 0.0);
    call_pos[0] = pending_zeros_;
  }
  pos_[0] += pending_zeros_;
  for (size_t t = 0; t < parts_.size(); ++t) {
    ThreadPart& L = parts_[t];
    if (L.lo <= L.hi) {
      min_ = seen_ ? std::min(min_, double(L.lo)) : L.lo;
      max_ = seen_ ? std::max(max_, double(L.hi)) : L.hi;
      seen_ = true;
    }
    if (L.limit > 0) {
      uint32_t* h = scratch_.data() + t * kPerThread;
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
      std::fill(h, h + kPerThread, 0u);
    }
    L = ThreadPart{};
  }
  if (batch_p_ > 0) {
    if (limit_ > 0)
      add_batch_percentiles(call_pos, call_neg, pending_);
    else
      ++percentile_batches_;  // every value was 0: this batch's quantiles are 0
  }
  pending_ = pending_zeros_ = 0;
}

// ESP-PPQ takes torch.kthvalue at k = int(n * p) + 1 (upper) and k = int(n * (1 - p)) + 1
// (lower) of the batch's signed values; on the histogram that is the bin holding the k-th value,
// taken at its outer edge (the value is inside the bin; the edge never clips it).
void HistogramObserver::add_batch_percentiles(const std::vector<double>& pos, const std::vector<double>& neg,
                                              double n) {
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
    case CalibAlgorithm::MinMax:
      return {min_, max_};
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
