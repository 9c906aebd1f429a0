// BatchStream: copies samples into one contiguous batch per graph input.
#include "quant/batches.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <exception>

#include "edgequant/error.h"
#include "exec/executor.h"
#include "exec/kernel.h"

namespace edgequant::quant {

BatchStream::BatchStream(const Dataset& data, int64_t batch_size, int64_t steps, int64_t offset, int64_t end,
                         const std::vector<Value*>* inputs, bool exact)
    : data_(data), batch_size_(batch_size), exact_(exact) {
  int64_t stop = end < 0 ? data.size() : std::min(end, data.size());
  offset_ = std::min(offset, stop);
  end_ = std::min(stop, offset_ + batch_size * steps);
  if (exact) end_ -= (end_ - offset_) % batch_size;
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
    out.push_back(src >= 0 ? stacked.at(static_cast<size_t>(src))
                           : exec::to_aten(shared.at(static_cast<size_t>(-1 - src)).second));
  return true;
}

namespace {
// Why the outputs of a batch of two copies of a sample are not the single run's twice over
// ("" when they are): shapes first, then values within a float tolerance (the two runs may take
// different kernels: batch-dependent blocking changes the summation order, never a value by
// more than a few ULPs of the output's scale).
std::string not_per_sample(const Graph& g, const std::vector<at::Tensor>& one, const std::vector<at::Tensor>& two) {
  for (size_t k = 0; k < one.size() && k < two.size(); ++k) {
    const std::string name = k < g.outputs.size() ? "output '" + g.outputs[k]->name + "'" : "an output";
    const at::Tensor &a = one[k], &b = two[k];
    if (a.dim() == 0 || a.size(0) != 1)
      return name + " has shape " + shape_str(Shape(a.sizes().begin(), a.sizes().end())) + " for one sample";
    std::vector<int64_t> want(a.sizes().begin(), a.sizes().end());
    want[0] = 2;
    if (b.sizes() != at::IntArrayRef(want))
      return name + " has shape " + shape_str(Shape(b.sizes().begin(), b.sizes().end())) + " for two samples, " +
             shape_str(Shape(a.sizes().begin(), a.sizes().end())) + " for one";
    at::Tensor ad = a.to(at::kDouble), bd = b.to(at::kDouble);
    double scale = ad.abs().max().item<double>();
    if (!std::isfinite(scale)) continue;
    double diff = (bd - at::cat({ad, ad}, 0)).abs().max().item<double>();
    if (!(diff <= 1e-4 * scale + 1e-6))
      return name + " of two copies of a sample differs from the sample's own by " + std::to_string(diff) +
             " (max |y| " + std::to_string(scale) + ")";
  }
  return "";
}
}  // namespace

ModelBatch probe_model_batch(const Graph& g, exec::Executor& ex, const Dataset& data, int64_t first) {
  ModelBatch mb;
  BatchStream one_stream(data, 1, 1, first, -1, &g.inputs);
  for (size_t i = 0; i < g.inputs.size(); ++i) {
    const Value* in = g.inputs[i];
    if (!one_stream.per_sample(i) || !in->shape || in->shape->empty() || (*in->shape)[0] <= 0) continue;
    mb.fixed = (*in->shape)[0];
    mb.why = "input '" + in->name + "' has the fixed shape " + shape_str(*in->shape);
    return mb;
  }
  std::vector<at::Tensor> one;
  if (!one_stream.next(one)) return mb;
  std::vector<at::Tensor> two;
  for (size_t i = 0; i < one.size(); ++i)
    two.push_back(one_stream.per_sample(i) ? at::cat({one[i], one[i]}, 0) : one[i]);
  at::NoGradGuard no_grad;
  std::vector<at::Tensor> y1 = ex.run(one);
  std::string why;
  try {
    why = not_per_sample(g, y1, ex.run(two));
  } catch (const std::exception& e) {
    why = "at a batch of 2: " + std::string(e.what());
    why = why.substr(0, why.find('\n'));
  }
  if (!why.empty()) {
    mb.single = true;
    mb.why = "the graph computes only at batch 1 (" + why + ")";
  }
  return mb;
}

}  // namespace edgequant::quant
