// Batches of model inputs drawn from a Dataset, one tensor per graph input. Single-input models
// take the dataset's samples; multi-input models take a dataset whose samples name their inputs
// (an .npz keyed by input name): float and non-float inputs alike, shared inputs fed whole.
#pragma once
#include <ATen/core/Tensor.h>

#include <vector>

#include "data/dataset.h"
#include "ir/graph.h"

namespace edgequant::quant {

class BatchStream {
 public:
  // Up to `steps` batches of `batch_size` samples from [offset, end) (end < 0: the dataset's
  // end); fewer when the dataset is smaller (planned_samples() tells how many). With `inputs`,
  // batches hold one tensor per graph input (throws InvalidInput naming a missing input).
  BatchStream(const Dataset& data, int64_t batch_size, int64_t steps, int64_t offset = 0, int64_t end = -1,
              const std::vector<Value*>* inputs = nullptr);
  bool next(at::Tensor& batch);                // single-input: false when done
  bool next(std::vector<at::Tensor>& inputs);  // every graph input, in graph order
  void reset() { cursor_ = offset_; }
  int64_t planned_samples() const { return end_ - offset_; }
  int64_t batches() const { return (planned_samples() + batch_size_ - 1) / batch_size_; }
  int64_t cursor() const { return cursor_; }

 private:
  const Dataset& data_;
  int64_t batch_size_, offset_, end_, cursor_;
  // Per graph input: index into the sample's inputs, or -1 - index into shared inputs.
  std::vector<int> source_;
};

}  // namespace edgequant::quant
