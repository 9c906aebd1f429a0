// Batches of model inputs drawn from a Dataset (single-input models), on the executor's device.
#pragma once
#include <ATen/core/Tensor.h>

#include "data/dataset.h"

namespace edgequant::quant {

class BatchStream {
 public:
  // Up to `steps` batches of `batch_size` samples starting at `offset`; fewer when the dataset
  // is smaller (planned_samples() tells how many).
  BatchStream(const Dataset& data, int64_t batch_size, int64_t steps, int64_t offset = 0);
  bool next(at::Tensor& batch);  // false when done
  void reset() { cursor_ = offset_; }
  int64_t planned_samples() const { return end_ - offset_; }
  int64_t batches() const { return (planned_samples() + batch_size_ - 1) / batch_size_; }
  int64_t cursor() const { return cursor_; }

 private:
  const Dataset& data_;
  int64_t batch_size_, offset_, end_, cursor_;
};

}  // namespace edgequant::quant
