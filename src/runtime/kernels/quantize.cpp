// QuantizeLinear / RequantizeLinear / DequantizeLinear: ESP-DL's TensorBase::assign. float -> int:
// round(x * 2^-e), saturated; int -> float: q * 2^e; int -> int: shift_and_round by
// e_out - e_in (left shifts exact), saturated to the output dtype. The scale and zero-point
// inputs exist for ONNX's sake; the value infos' exponents decide.
#include <cmath>

#include "ir/lowered.h"
#include "runtime/kernels/kernels.h"

namespace edgequant::runtime {

EQ_RUNTIME_KERNEL(quantize_kernel) {
  const IntTensor& x = args.in(0);
  IntTensor& y = args.out();
  y.shape = x.shape;
  int64_t n = x.numel();
  if (y.is_float()) {
    y.floats.resize(size_t(n));
    for (int64_t i = 0; i < n; ++i) y.floats[size_t(i)] = static_cast<float>(real_value(x, i));
    return;
  }
  y.ints.resize(size_t(n));
  if (x.is_float()) {
    for (int64_t i = 0; i < n; ++i) store_real(y, i, x.floats[size_t(i)], args.rounding());
    return;
  }
  std::vector<int64_t> mult = args.node.attr_ints("requant_multiplier"), shifts = args.node.attr_ints("requant_shift");
  if (!mult.empty()) {  // float-scale grids: q31 multiplier and shift (TFLite)
    if (mult.size() != 1 || shifts.size() != 1) args.fail_node("per-tensor requant_multiplier/requant_shift expected");
    Requantization r{{int(shifts[0])}, {int32_t(mult[0])}, args.rounding()};
    int64_t zx = x.zero_point(), zy = y.zero_point();
    for (int64_t i = 0; i < n; ++i)
      y.ints[size_t(i)] =
          requantize(x.ints[size_t(i)] - zx, r, 0, dtype_min(y.dtype) - zy, dtype_max(y.dtype) - zy) + zy;
    return;
  }
  if (!x.is_pow2() || !y.is_pow2()) {
    for (int64_t i = 0; i < n; ++i) store_real(y, i, real_value(x, i), args.rounding());
    return;
  }
  int shift = y.exponent() - x.exponent();
  for (int64_t i = 0; i < n; ++i)
    y.ints[size_t(i)] = saturate_to(shift_round(x.ints[size_t(i)], shift, args.rounding()), y.dtype);
}

}  // namespace edgequant::runtime
