// Single-input activations. With a `lut` attribute (int8: 256 entries, int16: 65536/step + 1)
// the output is the table entry of the input code; without one, the code is dequantized, the
// float function applied and the result rounded to the output exponent (ESP-DL's non-LUT path).
// Relu and Clip clamp codes (rescaling when the exponents differ). Softmax computes in float.
#include <cmath>
#include <functional>
#include <vector>

#include "ir/op_traits.h"
#include "runtime/kernels/kernels.h"

namespace edgequant::runtime {

namespace {
// The node's function, resolved once per call (not per element).
std::function<double(double)> function_of(const KernelArgs& args) {
  const IntNode& n = args.node;
  switch (op_type_of(n.op_type)) {
    case OpType::Sigmoid:
      return [](double x) { return 1.0 / (1.0 + std::exp(-x)); };
    case OpType::Tanh:
      return [](double x) { return std::tanh(x); };
    case OpType::Exp:
      return [](double x) { return std::exp(x); };
    case OpType::Relu:
      return [](double x) { return x > 0 ? x : 0; };
    case OpType::LeakyRelu:
      return [a = double(n.attr_float("alpha", 0.01f))](double x) { return x >= 0 ? x : x * a; };
    case OpType::Elu:
      return [a = double(n.attr_float("alpha", 1.f))](double x) { return x >= 0 ? x : a * (std::exp(x) - 1); };
    case OpType::HardSigmoid:
      return [a = double(n.attr_float("alpha", 0.2f)), b = double(n.attr_float("beta", 0.5f))](double x) {
        return std::max(0.0, std::min(1.0, a * x + b));
      };
    case OpType::HardSwish:
      return [](double x) { return x * std::max(0.0, std::min(1.0, x / 6 + 0.5)); };
    case OpType::Swish:
      return [](double x) { return x / (1.0 + std::exp(-x)); };
    case OpType::Sqrt:
      return [](double x) { return std::sqrt(x); };
    case OpType::Log:
      return [](double x) { return std::log(x); };
    default:
      args.fail_node("no integer or float definition without a lookup table");
  }
}

void lookup(const KernelArgs& args, const IntTensor& table) {
  const IntTensor& x = args.in(0);
  IntTensor& y = args.out();
  if (table.exponent() != y.exponent()) args.fail_node("lookup table exponent differs from the output's");
  int64_t n = int64_t(table.ints.size());
  int64_t lo = dtype_min(x.dtype);
  int64_t span = dtype_max(x.dtype) - lo + 1;
  int64_t step = n == span ? 1 : span / (n - 1);
  if (n != span && (step * (n - 1) != span || (step & (step - 1)) != 0))
    args.fail_node("lookup table of " + std::to_string(n) + " entries does not fit a " + dtype_name(x.dtype) +
                   " input");
  int shift = 0;
  while ((int64_t(1) << shift) < step) ++shift;
  y.ints.resize(x.ints.size());
  for (size_t i = 0; i < x.ints.size(); ++i) {
    int64_t idx = step == 1 ? x.ints[i] - lo : shift_round(x.ints[i] - lo, shift, args.rounding());
    y.ints[i] = table.ints[size_t(saturate(idx, 0, n - 1))];
  }
}
}  // namespace

EQ_RUNTIME_KERNEL(unary_kernel) {
  const IntTensor& x = args.in(0);
  IntTensor& y = args.out();
  y.shape = x.shape;
  std::string lut = args.node.attr_string("lut", "");
  if (!lut.empty()) {
    const IntTensor* table = args.graph.initializer(lut);
    if (!table) args.fail_node("lookup table '" + lut + "' is not an initializer");
    if (x.is_float()) args.fail_node("a lookup table needs an integer input");
    lookup(args, *table);
    return;
  }
  if (args.node.is(OpType::LUT)) args.fail_node("a LUT node needs a `lut` attribute");
  if (y.is_float() || x.is_float() || !x.is_pow2() || !y.is_pow2()) {
    if (y.is_float())
      y.floats.resize(size_t(x.numel()));
    else
      y.ints.resize(size_t(x.numel()));
    auto f = function_of(args);
    for (int64_t i = 0; i < x.numel(); ++i) store_real(y, i, f(real_value(x, i)), args.rounding());
    return;
  }
  // Codes in, codes out, in float32 as ESP-DL's modules compute it: temp = f((float)q * 2^e_in),
  // then round(temp * 2^-e_out) (dl_module_sigmoid.hpp, dl_math.hpp).
  y.ints.resize(size_t(x.numel()));
  float in_scale = std::ldexp(1.f, x.exponent()), out_scale = std::ldexp(1.f, -y.exponent());
  OpType t = op_type_of(args.node.op_type);
  auto f = function_of(args);
  auto sigmoid = [](float v) { return static_cast<float>(1.0 / (1.0 + expf(-v))); };
  for (int64_t i = 0; i < x.numel(); ++i) {
    float v = static_cast<float>(x.ints[size_t(i)]) * in_scale;
    // sqrtf and logf as dl_module_sqrt/log.hpp call them (sqrt is exact either way; log in double
    // then rounded to float could differ from logf in the last bit).
    float temp = t == OpType::Sigmoid ? sigmoid(v)
                 : t == OpType::Tanh  ? 2 * sigmoid(2 * v) - 1
                 : t == OpType::Sqrt  ? sqrtf(v)
                 : t == OpType::Log   ? logf(v)
                                      : static_cast<float>(f(v));
    y.ints[size_t(i)] = float_to_code(temp * out_scale, y.dtype, args.rounding());
  }
}

EQ_RUNTIME_KERNEL(relu_kernel) {
  const IntTensor& x = args.in(0);
  IntTensor& y = args.out();
  if (!args.node.attr_string("lut", "").empty()) return unary_kernel(args);
  y.shape = x.shape;
  if (!x.is_float() && same_grid(x, y)) {
    int64_t z = x.zero_point();
    y.ints.resize(x.ints.size());
    for (size_t i = 0; i < x.ints.size(); ++i) y.ints[i] = saturate_to(x.ints[i] > z ? x.ints[i] : z, y.dtype);
    return;
  }
  unary_kernel(args);
}

EQ_RUNTIME_KERNEL(clip_kernel) {
  const IntTensor& x = args.in(0);
  IntTensor& y = args.out();
  if (!args.node.attr_string("lut", "").empty()) return unary_kernel(args);
  y.shape = x.shape;
  // min/max: codes at the input's exponent (ESP-DL quantizes them with the input's config).
  const IntTensor* lo = args.inputs.size() > 1 ? args.inputs[1] : nullptr;
  const IntTensor* hi = args.inputs.size() > 2 ? args.inputs[2] : nullptr;
  if (x.is_float()) args.fail_node("Clip needs an integer input");
  if ((lo && lo->ints.empty()) || (hi && hi->ints.empty())) args.fail_node("Clip bounds must be integer scalars");
  int64_t qlo = lo ? lo->ints[0] : dtype_min(x.dtype), qhi = hi ? hi->ints[0] : dtype_max(x.dtype);
  if ((lo && !same_grid(*lo, x)) || (hi && !same_grid(*hi, x)))
    args.fail_node("Clip bounds must be codes on the input's grid");
  y.ints.resize(x.ints.size());
  if (y.is_float()) args.fail_node("Clip output must be integer");
  for (size_t i = 0; i < x.ints.size(); ++i) {
    int64_t c = saturate(x.ints[i], qlo, qhi);
    if (x.is_pow2() && y.is_pow2())
      y.ints[i] = saturate_to(shift_round(c, y.exponent() - x.exponent(), args.rounding()), y.dtype);
    else if (same_grid(x, y))
      y.ints[i] = c;
    else
      store_real(y, int64_t(i), double(c - x.zero_point()) * x.scale(), args.rounding());
  }
}

EQ_RUNTIME_KERNEL(softmax_kernel) {
  const IntTensor& x = args.in(0);
  IntTensor& y = args.out();
  y.shape = x.shape;
  int64_t rank = int64_t(x.shape.size());
  int64_t axis = norm_axis(args, args.node.attr_int("axis", -1), rank);
  int64_t inner = 1, len = x.shape[size_t(axis)];
  for (int64_t d = axis + 1; d < rank; ++d) inner *= x.shape[size_t(d)];
  int64_t outer = x.numel() / std::max<int64_t>(len * inner, 1);
  if (y.is_float())
    y.floats.resize(size_t(x.numel()));
  else
    y.ints.resize(size_t(x.numel()));
  // ESP-DL's float path (dl_module_softmax.hpp forward_float): float32 max, expf(x - max), a
  // float32 running sum in order, then one division per element.
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t in = 0; in < inner; ++in) {
      auto at = [&](int64_t k) { return (o * len + k) * inner + in; };
      float m = static_cast<float>(real_value(x, at(0)));
      for (int64_t k = 1; k < len; ++k) m = std::max(m, static_cast<float>(real_value(x, at(k))));
      std::vector<float> e(static_cast<size_t>(len));
      float s = 0.f;
      for (int64_t k = 0; k < len; ++k) {
        e[size_t(k)] = expf(static_cast<float>(real_value(x, at(k))) - m);
        s += e[size_t(k)];
      }
      for (int64_t k = 0; k < len; ++k) store_real(y, at(k), double(e[size_t(k)] / s), args.rounding());
    }
}

}  // namespace edgequant::runtime
