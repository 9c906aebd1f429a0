// Output metrics of a quantized model against its float model, for any model (no labels needed):
// per graph output, aggregated over every element of every sample.
#pragma once
#include <cstdint>
#include <string>

namespace edgequant {

struct OutputMetrics {
  std::string name;
  // 10 log10(sum f^2 / sum (q - f)^2) over all elements and samples: robust where a sigmoid
  // output sits near 0 for most elements (per-sample ratios blow up there). +inf when exact.
  double sqnr_db = 0;
  double cosine = 0;           // sum f q / sqrt(sum f^2 sum q^2)
  double max_abs_diff = 0;     // max |q - f|
  double top1_agreement = -1;  // classifier-like outputs ([N, C], C >= 2): argmax agreement; -1 otherwise
  int64_t samples = 0;
  std::string line()
      const;  // "output 'y': SQNR 38.21 dB, cosine 0.99990, max |diff| 0.0312, top-1 agreement 99.80% (512 samples)"
};

}  // namespace edgequant
