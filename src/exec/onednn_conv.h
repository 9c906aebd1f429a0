// 2-D float convolution inference straight on oneDNN (the library LibTorch's own convolution
// calls): the primitive is created once per input shape, the weights are reordered once into the
// layout oneDNN's kernel wants (ATen reorders them on every call), and a following ReLU/Clip runs
// inside the convolution as a post-op instead of as one more pass over the activation.
// ONNX Runtime's CPU margin on MobileNet-style models came from exactly these three things.
#pragma once
#include <ATen/core/Tensor.h>

#include <memory>
#include <optional>
#include <vector>

namespace edgequant::exec {

// An activation folded into the convolution: y = min(max(conv(x), lo), hi).
struct ClampPostOp {
  float lo, hi;
};

// ONNX semantics: dilation 1 is a dense kernel; pads are begin/end per spatial dim.
struct Conv2dGeometry {
  std::vector<int64_t> strides, dilations, pads_begin, pads_end;
  int64_t groups = 1;
};

class OneDnnConv2d {
 public:
  explicit OneDnnConv2d(std::optional<ClampPostOp> post_op = std::nullopt);
  ~OneDnnConv2d();
  // True when this path can run: CPU float32 4-D tensors and no autograd recording.
  static bool applies(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b);
  // Output in channels_last (the layout the next convolution reads, so no reorder between them).
  // Undefined when oneDNN has no implementation for the case: the caller falls back to ATen.
  at::Tensor run(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b, const Conv2dGeometry& geometry);

 private:
  struct State;
  std::optional<ClampPostOp> post_op_;
  std::unique_ptr<State> state_;
};

}  // namespace edgequant::exec
