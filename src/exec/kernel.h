// A Kernel is one op's float computation over ATen tensors. A KernelFactory reads and validates
// the op's attributes once (at executor construction) and returns the closure that Eval calls,
// so run-time calls carry no attribute parsing or checks (TFLM's Prepare/Eval split).
#pragma once
#include <ATen/core/Tensor.h>

#include <functional>
#include <string>
#include <vector>

#include "edgequant/error.h"
#include "ir/graph.h"

namespace edgequant::exec {

using Tensors = std::vector<at::Tensor>;
// Inputs omitted in the model arrive as undefined tensors.
using Kernel = std::function<Tensors(const Tensors& inputs)>;
using KernelFactory = Kernel (*)(const Op& op, int64_t opset);

// nullptr when the op type is not supported.
KernelFactory find_kernel_factory(const std::string& op_type);
// Runs `body` (a kernel call for `op`) and turns what ATen and the standard library throw on
// values taken from the model or the data into one InvalidInput error naming the op. A template
// so the executor's per-op call allocates nothing; the translation itself is out of line.
[[noreturn]] void rethrow_as_op_error(const Op& op);  // call from a catch block only
template <class Body>
void run_reporting_as_op(const Op& op, Body&& body) {
  try {
    body();
  } catch (...) {
    rethrow_as_op_error(op);
  }
}
std::vector<std::string> supported_op_types();

// Helpers shared by the op families.
[[noreturn]] void unsupported(const Op& op, const std::string& what);
std::vector<int64_t> int_values(const at::Tensor& t);  // 0-D or 1-D integer/float tensor
// The one value of a scalar input (TopK's K, CumSum's axis); InvalidInput naming it otherwise.
int64_t single_int(const at::Tensor& t, const std::string& where, const std::string& what);
int64_t normalize_axis(int64_t axis, int64_t rank, const Op& op);
int64_t normalize_axis(int64_t axis, int64_t rank, const std::string& where);
// Begin/end pads per spatial dim ([b0, b1, ..., e0, e1, ...] as ONNX orders them) after
// resolving auto_pad (NOTSET/VALID/SAME_UPPER/SAME_LOWER) for conv and pooling windows.
std::vector<int64_t> resolve_pads(const std::string& auto_pad, const std::vector<int64_t>& pads,
                                  at::IntArrayRef spatial, const std::vector<int64_t>& kernel,
                                  const std::vector<int64_t>& strides, const std::vector<int64_t>& dilations);
// ATen's pad list (last dim first) from ONNX begin/end pads over the trailing spatial dims.
std::vector<int64_t> aten_pad_list(const std::vector<int64_t>& pads);
bool pads_symmetric(const std::vector<int64_t>& pads);
// `x` with `before` and `after` zeros added along one axis.
at::Tensor pad_axis(const at::Tensor& x, int64_t axis, int64_t before, int64_t after);

// Attributes shared by Conv, ConvTranspose and the pooling ops.
struct WindowAttrs {
  std::string auto_pad;
  std::vector<int64_t> kernel, strides, dilations, pads;
  int64_t group = 1;
};
WindowAttrs read_window_attrs(const Op& op);
std::vector<int64_t> or_ones(const std::vector<int64_t>& v, size_t n);
at::ScalarType to_scalar_type(DType dtype);
DType from_scalar_type(at::ScalarType type);
// at::Tensor view of IR tensor data (no copy; must not be written to).
at::Tensor view_tensor(const Tensor& t);
Tensor to_ir_tensor(const at::Tensor& t);
// [N, rest] view of a batch in memory order (no copy when the batch is dense with dim 0
// outermost, as NCHW and channels_last both are). For order-insensitive reductions: ATen's
// full reductions over channels_last tensors are ~20x slower than over the same bytes viewed flat.
at::Tensor per_sample_view(const at::Tensor& x);

}  // namespace edgequant::exec
