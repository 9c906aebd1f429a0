// Broadcasting binary, variadic and selection ops (numpy broadcasting as ONNX specifies).
#include <ATen/ATen.h>

#include "exec/ops/factories.h"

namespace edgequant::exec {

// Opset < 7 binary ops broadcast B onto A starting at `axis` (legacy "broadcast=1, axis").
static at::Tensor legacy_align(const at::Tensor& a, const at::Tensor& b, int64_t axis) {
  if (axis < 0) return b;
  std::vector<int64_t> shape(b.sizes().begin(), b.sizes().end());
  while (static_cast<int64_t>(shape.size()) + axis < a.dim()) shape.push_back(1);
  return b.reshape(shape);
}

namespace {
using BinaryFn = at::Tensor (*)(const at::Tensor&, const at::Tensor&);

// One kernel shape for every broadcasting binary op; the function is the table's choice.
Kernel binary_kernel(const Op& op, int64_t opset, BinaryFn fn) {
  int64_t legacy_axis = (opset < 7 && op.attr_int("broadcast", 0)) ? op.attr_int("axis", -1) : -1;
  return [fn, legacy_axis](const Tensors& in) -> Tensors {
    if (legacy_axis >= 0) return {fn(in[0], legacy_align(in[0], in[1], legacy_axis))};
    return {fn(in[0], in[1])};
  };
}

at::Tensor onnx_div(const at::Tensor& a, const at::Tensor& b) {
  // ONNX integer division truncates like C (ONNX Runtime behaviour).
  if (at::isIntegralType(a.scalar_type(), false)) return at::div(a, b, "trunc");
  return at::div(a, b);
}
}  // namespace

#define EQ_BINARY(factory, expr)                                                                                  \
  Kernel factory(const Op& op, int64_t opset) {                                                                   \
    return binary_kernel(op, opset, [](const at::Tensor& a, const at::Tensor& b) -> at::Tensor { return expr; }); \
  }
EQ_BINARY(make_add, at::add(a, b))
EQ_BINARY(make_sub, at::sub(a, b))
EQ_BINARY(make_mul, at::mul(a, b))
EQ_BINARY(make_div, onnx_div(a, b))
EQ_BINARY(make_pow, at::pow(a, b).to(a.scalar_type()))
EQ_BINARY(make_equal, at::eq(a, b))
EQ_BINARY(make_greater, at::gt(a, b))
EQ_BINARY(make_less, at::lt(a, b))
EQ_BINARY(make_greater_or_equal, at::ge(a, b))
EQ_BINARY(make_less_or_equal, at::le(a, b))
EQ_BINARY(make_and, at::logical_and(a, b))
EQ_BINARY(make_or, at::logical_or(a, b))
EQ_BINARY(make_xor, at::logical_xor(a, b))
EQ_BINARY(make_bitwise_and, at::bitwise_and(a, b))
EQ_BINARY(make_bitwise_or, at::bitwise_or(a, b))
EQ_BINARY(make_bitwise_xor, at::bitwise_xor(a, b))
#undef EQ_BINARY

// Mod: fmod=1 takes the dividend's sign (C fmod; required for floats), fmod=0 the divisor's.
// fmod=1: C's fmod (the dividend's sign); x mod 0 is 0 for floats, as ESP-DL computes it (ONNX
// leaves it undefined, numpy and ONNX Runtime give NaN), so a quantized Mod whose divisor rounds to
// 0 simulates what the chip computes. fmod=0: the divisor's sign (integer types, per ONNX).
Kernel make_mod(const Op& op, int64_t) {
  bool c_fmod = op.attr_int("fmod", 0) != 0;
  return [c_fmod](const Tensors& in) -> Tensors {
    if (!c_fmod) return {at::remainder(in[0], in[1])};
    at::Tensor r = at::fmod(in[0], in[1]);
    if (!at::isFloatingType(r.scalar_type())) return {r};
    return {at::where(in[1] == 0, at::zeros({}, r.options()), r)};
  };
}

namespace {
// Max, Min, Sum, Mean: a left fold of the inputs with `fold`; Mean divides by their count.
Kernel variadic_kernel(BinaryFn fold, bool mean) {
  return [fold, mean](const Tensors& in) -> Tensors {
    at::Tensor acc = in[0];
    for (size_t i = 1; i < in.size(); ++i) acc = fold(acc, in[i]);
    if (mean) acc = acc / static_cast<double>(in.size());
    return {in.size() == 1 ? acc.clone() : acc};
  };
}
at::Tensor add(const at::Tensor& a, const at::Tensor& b) { return at::add(a, b); }
}  // namespace

Kernel make_max(const Op&, int64_t) {
  return variadic_kernel([](const at::Tensor& a, const at::Tensor& b) { return at::maximum(a, b); }, false);
}
Kernel make_min(const Op&, int64_t) {
  return variadic_kernel([](const at::Tensor& a, const at::Tensor& b) { return at::minimum(a, b); }, false);
}
Kernel make_sum(const Op&, int64_t) { return variadic_kernel(add, false); }
Kernel make_mean(const Op&, int64_t) { return variadic_kernel(add, true); }

Kernel make_where(const Op&, int64_t) {
  return [](const Tensors& in) -> Tensors { return {at::where(in[0].to(at::kBool), in[1], in[2])}; };
}

// BitShift (unsigned integers; ATen 1.13 has uint8 only among them).
Kernel make_bit_shift(const Op& op, int64_t) {
  std::string direction = op.attr_string("direction", "");
  if (direction != "LEFT" && direction != "RIGHT")
    fail(ErrorCode::InvalidModel,
         op.describe() + ": BitShift direction must be LEFT or RIGHT, got '" + direction + "'");
  bool left = direction == "LEFT";
  return [left](const Tensors& in) -> Tensors {
    return {left ? at::bitwise_left_shift(in[0], in[1]) : at::bitwise_right_shift(in[0], in[1])};
  };
}

}  // namespace edgequant::exec
