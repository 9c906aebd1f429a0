// Calibration observer: observe() once per batch with bounded state (min/max plus a fixed
// 2x4096-bin histogram that re-bins by powers of two as the range grows), so memory does not
// depend on the number of calibration samples. One observation serves every calibrator:
// finalize() gives the clip range of minmax, percentile, KL or MSE from the same state, so
// switching calib_algorithm costs no data pass.
#pragma once
#include <ATen/core/Tensor.h>

#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "ir/quant_config.h"

namespace edgequant::quant {

struct Range {
  double min = 0, max = 0;
};

// Bins of width `bin_width` on each side of zero (state exposed for tests).
class HistogramObserver {
 public:
  static constexpr int kBins = 4096;  // per side: 32 * 2^(8-1), ESP-PPQ's KL resolution at 8 bits
  // One batch: accumulate(x) then end_batch().
  void observe(const at::Tensor& x);
  // Part of a batch (a chunk of its samples, when the executor runs a batch in pieces); the
  // counts stay in per-thread tables until end_batch() adds them, so a batch seen in pieces
  // gives the same state as seen whole (up to the histogram's first range, taken from the first
  // nonzero piece).
  void accumulate(const at::Tensor& x);
  void end_batch();
  // False: the portable binning loop even where the CPU has AVX-512 (tests compare the two).
  static bool vector_binning;
  // ESP-PPQ's percentile semantics (TorchPercentileObserver): each observe() call (one batch)
  // contributes its own lower and upper `p`-quantiles of the signed values; finalize(Percentile,
  // p) returns their means. Set before the first observe(); 0 disables it (finalize then takes
  // one quantile of the union histogram).
  void track_batch_percentile(double p) { batch_p_ = p; }
  // The clip range for `config` (bits, symmetry, scale kind decide KL levels and MSE grids).
  Range finalize(const QuantConfig& config, CalibAlgorithm algorithm, double percentile = 0.9999) const;
  bool seen() const { return seen_; }
  double bin_width() const { return limit_ / kBins; }
  double total() const;
  const std::vector<double>& positive() const { return pos_; }
  const std::vector<double>& negative() const { return neg_; }
  double min() const { return min_; }
  double max() const { return max_; }

 private:
  void grow(double new_abs_max);
  double percentile_threshold(const std::vector<double>& side, double tail_count) const;
  double kl_threshold(int bits) const;
  double mse_threshold(const QuantConfig& c) const;
  double limit_ = 0;  // histogram covers [-limit_, limit_]
  double min_ = 0, max_ = 0;
  bool seen_ = false;
  std::vector<double> pos_ = std::vector<double>(kBins, 0.0), neg_ = std::vector<double>(kBins, 0.0);
  struct ThreadPart {
    double limit = 0;  // this thread's copy of the range (grown by powers of two)
    float lo = INFINITY, hi = -INFINITY;
  };
  std::vector<ThreadPart> parts_;           // per thread, for the batch being accumulated
  std::vector<uint32_t> scratch_;           // per-thread counts of the batch being accumulated
  double pending_ = 0, pending_zeros_ = 0;  // values accumulated in this batch; of them, counted before any range
  void add_batch_percentiles(const std::vector<double>& pos, const std::vector<double>& neg, double n);
  double batch_p_ = 0;
  double batch_lo_sum_ = 0, batch_hi_sum_ = 0;
  int64_t percentile_batches_ = 0;
};

// Per-channel (or per-tensor) weight ranges along config.axis: minmax, or the clip minimising
// the weight's own quantization MSE.
std::vector<Range> weight_ranges(const at::Tensor& w, const QuantConfig& config, bool mse);

// Sets scales/zero points from ranges (one per channel or one). Power-of-two configs round the
// exponent by `rule`. A zero range gets scale 1 (2^0): every value is 0 and maps to code 0.
void set_scale_from_ranges(QuantConfig& c, const std::vector<Range>& ranges, Pow2Rule rule);

}  // namespace edgequant::quant
