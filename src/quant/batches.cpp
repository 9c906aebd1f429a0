// BatchStream: copies samples into one contiguous batch per graph input.
#include "quant/batches.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cstring>

#include "edgequant/error.h"
#include "exec/executor.h"
#include "exec/kernel.h"

namespace edgequant::quant {

BatchStream::BatchStream(const Dataset& data, int64_t batch_size, int64_t steps, int64_t offset, int64_t end,
                         const std::vector<Value*>* inputs)
    : data_(data), batch_size_(batch_size) {
  int64_t stop = end < 0 ? data.size() : std::min(end, data.size());
  offset_ = std::min(offset, stop);
  end_ = std::min(stop, offset_ + batch_size * steps);
  cursor_ = offset_;
  std::vector<std::string> names = data.input_names();
  if (!inputs) return;
  if (names.empty()) {
    if (inputs->size() != 1)
      fail(ErrorCode::InvalidInput, "the model has " + std::to_string(inputs->size()) +
                                        " inputs: give calibration data as an .npz keyed by input name");
    source_ = {0};
    return;
  }
  auto shared = data.shared_inputs();
  for (const Value* in : *inputs) {
    auto it = std::find(names.begin(), names.end(), in->name);
    if (it != names.end()) {
      source_.push_back(static_cast<int>(it - names.begin()));
      continue;
    }
    auto sh = std::find_if(shared.begin(), shared.end(), [&](const auto& s) { return s.first == in->name; });
    if (sh == shared.end()) {
      std::string have;
      for (const auto& n : names) have += (have.empty() ? "" : ", ") + n;
      for (const auto& s : shared) have += (have.empty() ? "" : ", ") + s.first;
      fail(ErrorCode::InvalidInput, "the data has no array for model input '" + in->name + "' (it has: " + have + ")");
    }
    source_.push_back(-1 - static_cast<int>(sh - shared.begin()));
  }
}

bool BatchStream::next(at::Tensor& batch) {
  std::vector<at::Tensor> all;
  if (!next(all)) return false;
  batch = all.at(0);
  return true;
}

bool BatchStream::next(std::vector<at::Tensor>& out) {
  if (cursor_ >= end_) return false;
  int64_t n = std::min(batch_size_, end_ - cursor_);
  std::vector<Tensor> first = data_.sample_inputs(cursor_);
  std::vector<at::Tensor> stacked(first.size());
  for (size_t k = 0; k < first.size(); ++k) {
    std::vector<int64_t> shape = {n};
    shape.insert(shape.end(), first[k].shape().begin(), first[k].shape().end());
    stacked[k] = at::empty(shape, exec::to_scalar_type(first[k].dtype()));
    std::memcpy(stacked[k].data_ptr(), first[k].raw(), first[k].nbytes());
  }
  for (int64_t i = 1; i < n; ++i) {
    std::vector<Tensor> s = data_.sample_inputs(cursor_ + i);
    for (size_t k = 0; k < s.size(); ++k) {
      if (s[k].shape() != first[k].shape() || s[k].dtype() != first[k].dtype())
        fail(ErrorCode::InvalidInput, data_.describe(cursor_ + i) + " has shape " + shape_str(s[k].shape()) +
                                          ", expected " + shape_str(first[k].shape()));
      std::memcpy(static_cast<char*>(stacked[k].data_ptr()) + i * first[k].nbytes(), s[k].raw(), s[k].nbytes());
    }
  }
  cursor_ += n;
  if (source_.empty()) {
    out = std::move(stacked);
    return true;
  }
  auto shared = data_.shared_inputs();
  out.clear();
  for (int src : source_)
    out.push_back(src >= 0 ? stacked.at(static_cast<size_t>(src)) : exec::to_aten(shared.at(static_cast<size_t>(-1 - src)).second));
  return true;
}

}  // namespace edgequant::quant
