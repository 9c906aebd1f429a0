// Batches of model inputs drawn from a Dataset, one tensor per graph input. Single-input models
// take the dataset's samples; multi-input models take a dataset whose samples name their inputs
// (an .npz keyed by input name): float and non-float inputs alike, shared inputs fed whole.
#pragma once
#include <ATen/core/Tensor.h>

#include <string>
#include <vector>

#include "data/dataset.h"
#include "ir/graph.h"

namespace edgequant::exec {
class Executor;
}

namespace edgequant::quant {

// How many samples one run of the model may take. Exported detectors often declare a fixed
// batch ([1, 3, H, W]) or bake it into constant Reshape shapes with a free batch dim; every pass
// that feeds data runs such a model at its own batch, whatever --batch-size asks.
struct ModelBatch {
  int64_t fixed = 0;    // a per-sample input declares this leading dim: every run takes exactly it
  bool single = false;  // the leading dim is free, but the graph computes one sample at a time
  std::string why;      // one line for the log when runs are limited ("" otherwise)

  bool exact() const { return fixed > 0; }
  // The most samples one run may take; 0: any.
  int64_t limit() const { return fixed > 0 ? fixed : single ? 1 : 0; }
  // Samples per run for a requested batch size.
  int64_t run_size(int64_t requested) const {
    if (fixed > 0) return fixed;
    return single ? 1 : requested;
  }
};

// The model's batch: the static leading dim of a per-sample input if any; otherwise a probe on
// sample `first` of `data` (one float run of it alone, one of it twice in a batch of 2): a run
// at 2 that fails, or whose per-sample outputs differ from the single run's, means the graph
// computes one sample at a time. Errors of the single run propagate (they are the model's).
ModelBatch probe_model_batch(const Graph& graph, exec::Executor& executor, const Dataset& data, int64_t first);

class BatchStream {
 public:
  // Up to `steps` batches of `batch_size` samples from [offset, end) (end < 0: the dataset's
  // end); fewer when the dataset is smaller (planned_samples() tells how many). With `inputs`,
  // batches hold one tensor per graph input (throws InvalidInput naming a missing input).
  // `exact`: every batch holds exactly `batch_size` samples (a model with a fixed batch); a
  // shorter tail is left out.
  BatchStream(const Dataset& data, int64_t batch_size, int64_t steps, int64_t offset = 0, int64_t end = -1,
              const std::vector<Value*>* inputs = nullptr, bool exact = false);
  bool next(at::Tensor& batch);                // single-input: false when done
  bool next(std::vector<at::Tensor>& inputs);  // every graph input, in graph order
  void reset() { cursor_ = offset_; }
  int64_t planned_samples() const { return end_ - offset_; }
  int64_t batches() const { return (planned_samples() + batch_size_ - 1) / batch_size_; }
  int64_t cursor() const { return cursor_; }
  int64_t batch_size() const { return batch_size_; }
  bool exact() const { return exact_; }
  // Whether graph input `i` takes one row per sample (false: a shared input fed whole).
  bool per_sample(size_t i) const { return source_.empty() || source_.at(i) >= 0; }

 private:
  const Dataset& data_;
  int64_t batch_size_, offset_, end_, cursor_;
  bool exact_ = false;
  // Per graph input: index into the sample's inputs, or -1 - index into shared inputs.
  std::vector<int> source_;
};

}  // namespace edgequant::quant
