// LoweredModel helpers and the integer requantization primitive.
#include "ir/lowered.h"

#include <cmath>

namespace edgequant {

const LoweredTensor* LoweredModel::tensor(const std::string& value) const {
  auto it = tensors.find(value);
  return it == tensors.end() ? nullptr : &it->second;
}

const LoweredOp* LoweredModel::op(const std::string& name) const {
  for (const auto& o : ops)
    if (o.op == name) return &o;
  return nullptr;
}

DType code_dtype(int bits, bool is_signed) {
  if (bits <= 8) return is_signed ? DType::Int8 : DType::UInt8;
  if (bits <= 16) return is_signed ? DType::Int16 : DType::UInt16;
  if (bits <= 32) return DType::Int32;
  return DType::Int64;
}

void quantize_multiplier(double real, int32_t& multiplier, int& shift) {
  if (real == 0) {
    multiplier = 0;
    shift = 0;
    return;
  }
  int exp = 0;
  double q = std::frexp(real, &exp);  // real = q * 2^exp, q in [0.5, 1)
  auto m = static_cast<int64_t>(std::llround(q * (1LL << 31)));
  if (m == (1LL << 31)) {
    m /= 2;
    ++exp;
  }
  multiplier = static_cast<int32_t>(m);
  shift = -exp;
}

int64_t requantize(int64_t q, const Requantization& r, size_t channel, int64_t qmin, int64_t qmax) {
  size_t c = r.shift.size() > 1 ? channel : 0;
  int shift = r.shift.empty() ? 0 : r.shift[c];
  if (r.is_shift()) {
    if (shift <= 0) return saturate(q * (int64_t(1) << -shift), qmin, qmax);
    // Exact: q / 2^shift as a double is exact for |q| < 2^53, so the mode's tie rule decides.
    return saturate(static_cast<int64_t>(round_value(std::ldexp(static_cast<double>(q), -shift), r.rounding)), qmin,
                    qmax);
  }
  long double v = static_cast<long double>(q) * r.multiplier[c] / 2147483648.0L;
  v = std::ldexp(v, -shift);
  return saturate(static_cast<int64_t>(round_value(static_cast<double>(v), r.rounding)), qmin, qmax);
}

}  // namespace edgequant
