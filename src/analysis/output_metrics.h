// Accumulates OutputMetrics (include/edgequant/metrics.h) over batches: float vs quantized outputs.
#pragma once
#include <ATen/core/Tensor.h>

#include <nlohmann/json.hpp>
#include <string>

#include "edgequant/metrics.h"

namespace edgequant::analysis {

class OutputMetricsAccumulator {
 public:
  explicit OutputMetricsAccumulator(std::string name = "") : name_(std::move(name)) {}
  // Batch-major float and quantized outputs of one graph output.
  void add(const at::Tensor& f, const at::Tensor& q);
  OutputMetrics result() const;
  nlohmann::json to_json() const;

 private:
  std::string name_;
  double signal2_ = 0, noise2_ = 0, dot_ = 0, quant2_ = 0, max_abs_diff_ = 0;
  int64_t samples_ = 0, agree_ = 0;
  bool classifier_ = true;
};

}  // namespace edgequant::analysis
