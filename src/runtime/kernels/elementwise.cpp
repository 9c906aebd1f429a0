// Add, Sub (ESP-DL: no rescale, y = sat(a +- b); every operand shares the output exponent, the
// program's RequantizeLinear nodes see to it), Mul (y = round(a * b * 2^(e_a + e_b - e_out))) and
// Mod (y = round(fmodf(a 2^e_a, b 2^e_b) 2^-e_out), 0 where b is 0), Div (kernels.h: DivForm) and
// Pow (y = round(powf(a 2^e_a, b 2^e_b) 2^-e_out)), in ESP-DL's float32 steps. NumPy broadcasting.
#include <cmath>

#include "runtime/kernels/kernels.h"

namespace edgequant::runtime {

namespace {
template <class F>
void broadcast_binary(const KernelArgs& args, F f) {
  const IntTensor& a = args.in(0);
  const IntTensor& b = args.in(1);
  IntTensor& y = args.out();
  set_output(args, y, broadcast_shape(args, a.shape, b.shape));
  int64_t n = shape_numel(y.shape);
  std::vector<int64_t> idx(y.shape.size(), 0);
  bool same = a.shape == y.shape && b.shape == y.shape;
  for (int64_t i = 0; i < n; ++i) {
    int64_t ia = same ? i : broadcast_index(a.shape, y.shape, idx);
    int64_t ib = same ? i : broadcast_index(b.shape, y.shape, idx);
    f(i, ia, ib);
    for (int64_t d = int64_t(idx.size()) - 1; d >= 0 && !same; --d) {
      if (++idx[size_t(d)] < y.shape[size_t(d)]) break;
      idx[size_t(d)] = 0;
    }
  }
}

void add_sub(const KernelArgs& args, int sign) {
  const IntTensor& a = args.in(0);
  const IntTensor& b = args.in(1);
  IntTensor& y = args.out();
  if (a.is_float() || b.is_float() || y.is_float()) {
    broadcast_binary(args, [&](int64_t i, int64_t ia, int64_t ib) {
      store_real(y, i, real_value(a, ia) + sign * real_value(b, ib), args.rounding());
    });
    return;
  }
  if (!same_grid(a, y) || !same_grid(b, y))
    args.fail_node("operand grids (exponents " + std::to_string(a.exponent()) + ", " + std::to_string(b.exponent()) +
                   ") differ from the output's (" + std::to_string(y.exponent()) + "): a RequantizeLinear is missing");
  // (a - z) +- (b - z) + z: zero points cancel to one (0 on power-of-two grids).
  int64_t z = y.zero_point();
  broadcast_binary(args, [&](int64_t i, int64_t ia, int64_t ib) {
    y.ints[size_t(i)] = saturate_to(a.ints[size_t(ia)] + sign * b.ints[size_t(ib)] + (sign > 0 ? -z : z), y.dtype);
  });
}
// Float tensors or float-scale grids: y = f(a, b) on real values, rounded once (no chip formula
// to follow). Returns false when every tensor is integer on a power-of-two grid.
template <class F>
bool computed_on_reals(const KernelArgs& args, F f) {
  const IntTensor& a = args.in(0);
  const IntTensor& b = args.in(1);
  IntTensor& y = args.out();
  if (!a.is_float() && !b.is_float() && !y.is_float() && a.is_pow2() && b.is_pow2() && y.is_pow2()) return false;
  broadcast_binary(args, [&](int64_t i, int64_t ia, int64_t ib) {
    store_real(y, i, f(real_value(a, ia), real_value(b, ib)), args.rounding());
  });
  return true;
}
}  // namespace

ElemwiseRow espdl_elemwise_row(Shape a, Shape b, Shape out) {
  size_t dims = out.size();
  if (dims == 0) return {};
  while (a.size() < dims) a.insert(a.begin(), 1);
  while (b.size() < dims) b.insert(b.begin(), 1);
  if (a.size() != dims || b.size() != dims) return {};
  size_t merged = dims;
  // dl_base_elemwise.cpp's merge, step for step: fold dim j into dim i while both operands agree
  // on both, or one of them is 1 on both.
  for (size_t i = 0; i < dims; ++i) {
    size_t j = i + 1;
    for (; j < dims; ++j) {
      if (a[i] == b[i] && a[j] == b[j]) {
        a[i] *= a[j];
        b[i] *= b[j];
        out[i] *= out[j];
        a[j] = b[j] = out[j] = 1;
      } else if (a[i] == 1 && a[j] == 1) {
        b[i] *= b[j];
        out[i] *= out[j];
        b[j] = out[j] = 1;
      } else if (b[i] == 1 && b[j] == 1) {
        a[i] *= a[j];
        out[i] *= out[j];
        a[j] = out[j] = 1;
      } else {
        break;
      }
    }
    if (j == dims) {
      merged = i + 1;
      break;
    }
  }
  return {a[merged - 1], b[merged - 1], merged};
}

DivForm espdl_div_form(const Shape& a, const Shape& b, const Shape& out, DType dtype) {
  ElemwiseRow r = espdl_elemwise_row(a, b, out);
  if (dtype == DType::Int8) {
    // elemwise_div<int8_t>: a scalar dividend row first (a lookup table when a has one element).
    if (r.a == 1) return shape_numel(a) == 1 ? DivForm::QuotientZeroByZeroIsMin : DivForm::Quotient;
    return r.b == 1 ? DivForm::ReciprocalProduct : DivForm::Quotient;
  }
  return r.b == 1 ? DivForm::ReciprocalProduct : DivForm::Quotient;  // elemwise_div<int16_t>
}

EQ_RUNTIME_KERNEL(add_kernel) { add_sub(args, 1); }
EQ_RUNTIME_KERNEL(sub_kernel) { add_sub(args, -1); }

EQ_RUNTIME_KERNEL(mul_kernel) {
  const IntTensor& a = args.in(0);
  const IntTensor& b = args.in(1);
  IntTensor& y = args.out();
  if (a.is_float() || b.is_float() || y.is_float()) {
    broadcast_binary(args, [&](int64_t i, int64_t ia, int64_t ib) {
      store_real(y, i, real_value(a, ia) * real_value(b, ib), args.rounding());
    });
    return;
  }
  if (!a.is_pow2() || !b.is_pow2() || !y.is_pow2()) {
    broadcast_binary(args, [&](int64_t i, int64_t ia, int64_t ib) {
      store_real(y, i, real_value(a, ia) * real_value(b, ib), args.rounding());
    });
    return;
  }
  // ESP-DL's C path (dl_base_mul.cpp): the integer product as float32 (inexact beyond 2^24:
  // int16 x int16), times the float rescale 2^(e_a + e_b - e_out), rounded.
  float scale = std::ldexp(1.f, a.exponent() + b.exponent() - y.exponent());
  broadcast_binary(args, [&](int64_t i, int64_t ia, int64_t ib) {
    float out = static_cast<float>(a.ints[size_t(ia)] * b.ints[size_t(ib)]) * scale;
    y.ints[size_t(i)] = float_to_code(out, y.dtype, args.rounding());
  });
}

// ESP-DL's dl_base_mod.cpp: both operands dequantized to float32, C's fmodf (the sign of the
// dividend, whatever the node's fmod attribute: `check` refuses fmod=0 for .espdl), 0 for a zero
// divisor, times the output's float rescale, rounded and saturated. Every step is exact in
// float32 (power-of-two scales, fmodf is exact), so only the final rounding is the chip's.
EQ_RUNTIME_KERNEL(mod_kernel) {
  const IntTensor& a = args.in(0);
  const IntTensor& b = args.in(1);
  IntTensor& y = args.out();
  if (computed_on_reals(args, [](double x, double d) { return d != 0 ? std::fmod(x, d) : 0.0; })) return;
  float sa = std::ldexp(1.f, a.exponent()), sb = std::ldexp(1.f, b.exponent()),
        rescale = std::ldexp(1.f, -y.exponent());
  broadcast_binary(args, [&](int64_t i, int64_t ia, int64_t ib) {
    float av = static_cast<float>(a.ints[size_t(ia)]) * sa, bv = static_cast<float>(b.ints[size_t(ib)]) * sb;
    float r = bv != 0.f ? std::fmod(av, bv) : 0.f;
    y.ints[size_t(i)] = float_to_code(r * rescale, y.dtype, args.rounding());
  });
}

EQ_RUNTIME_KERNEL(div_kernel) {
  const IntTensor& a = args.in(0);
  const IntTensor& b = args.in(1);
  IntTensor& y = args.out();
  if (computed_on_reals(args, [](double x, double d) { return x / d; })) return;
  DivForm form = espdl_div_form(a.shape, b.shape, broadcast_shape(args, a.shape, b.shape), y.dtype);
  float r = std::ldexp(1.f, a.exponent() - b.exponent() - y.exponent());
  int64_t lo = dtype_min(y.dtype), hi = dtype_max(y.dtype);
  broadcast_binary(args, [&](int64_t i, int64_t ia, int64_t ib) {
    int64_t qa = a.ints[size_t(ia)], qb = b.ints[size_t(ib)];
    int64_t& q = y.ints[size_t(i)];
    if (form == DivForm::QuotientZeroByZeroIsMin && qb == 0)
      q = qa > 0 ? hi : lo;
    else if (qa == 0)
      q = 0;
    else if (qb == 0)
      q = qa > 0 ? hi : lo;
    else if (form == DivForm::ReciprocalProduct)
      q = float_to_code(static_cast<float>(qa) * (r / static_cast<float>(qb)), y.dtype, args.rounding());
    else
      q = float_to_code(static_cast<float>(qa) * r / static_cast<float>(qb), y.dtype, args.rounding());
  });
}

EQ_RUNTIME_KERNEL(pow_kernel) {
  const IntTensor& a = args.in(0);
  const IntTensor& b = args.in(1);
  IntTensor& y = args.out();
  if (computed_on_reals(args, [](double x, double e) { return std::pow(x, e); })) return;
  float sa = std::ldexp(1.f, a.exponent()), sb = std::ldexp(1.f, b.exponent()),
        rescale = std::ldexp(1.f, -y.exponent());
  broadcast_binary(args, [&](int64_t i, int64_t ia, int64_t ib) {
    float base = static_cast<float>(a.ints[size_t(ia)]) * sa, e = static_cast<float>(b.ints[size_t(ib)]) * sb;
    y.ints[size_t(i)] = float_to_code(powf(base, e) * rescale, y.dtype, args.rounding());
  });
}

}  // namespace edgequant::runtime
