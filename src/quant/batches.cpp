// BatchStream: copies samples into one contiguous float batch.
#include "quant/batches.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cstring>

#include "edgequant/error.h"

namespace edgequant::quant {

BatchStream::BatchStream(const Dataset& data, int64_t batch_size, int64_t steps, int64_t offset)
    : data_(data), batch_size_(batch_size), offset_(std::min(offset, data.size())),
      end_(std::min(data.size(), offset + batch_size * steps)), cursor_(offset_) {}

bool BatchStream::next(at::Tensor& batch) {
  if (cursor_ >= end_) return false;
  int64_t n = std::min(batch_size_, end_ - cursor_);
  Tensor first = data_.sample(cursor_);
  std::vector<int64_t> shape = {n};
  shape.insert(shape.end(), first.shape().begin(), first.shape().end());
  batch = at::empty(shape, at::kFloat);
  size_t per = static_cast<size_t>(first.numel());
  float* dst = batch.data_ptr<float>();
  std::memcpy(dst, first.data<float>(), per * sizeof(float));
  for (int64_t i = 1; i < n; ++i) {
    Tensor s = data_.sample(cursor_ + i);
    if (s.shape() != first.shape())
      fail(ErrorCode::InvalidInput, data_.describe(cursor_ + i) + " has shape " + shape_str(s.shape()) + ", expected " +
                                        shape_str(first.shape()));
    std::memcpy(dst + i * per, s.data<float>(), per * sizeof(float));
  }
  cursor_ += n;
  return true;
}

}  // namespace edgequant::quant
