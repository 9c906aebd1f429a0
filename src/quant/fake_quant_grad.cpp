// Fake quantization with gradients in one pass forward and one pass backward (block training and
// QAT call it for every quantized tensor at every step). It computes exactly what the ATen chain
// of fake_quant.cpp computes with autograd — v = x / s, round(v) with a straight-through
// gradient, clamp(r + z, qmin, qmax), (q - z) * s — with the same IEEE operations in the same
// order per element, and the scale's gradient reduced by at::sum_to over tensors laid out as the
// chain lays them out, so the results are the same bits; the chain took ~25 elementwise passes
// and as many allocations per tensor and step.
#include <ATen/ATen.h>
#include <ATen/TensorIterator.h>
#include <torch/csrc/autograd/custom_function.h>

#include <cmath>

#include "quant/fake_quant.h"

namespace edgequant::quant {

namespace {
using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// round_tensor's arithmetic in float32 (at::floor(x + 0.5) adds in float, not double).
template <RoundingMode kMode>
inline float round_float(float v) {
  if constexpr (kMode == RoundingMode::HalfEven) return std::nearbyint(v);
  if constexpr (kMode == RoundingMode::HalfUp) return std::floor(v + 0.5f);
  if constexpr (kMode == RoundingMode::HalfAwayFromZero) {
    float sign = static_cast<float>((0.0f < v) - (v < 0.0f));  // at::sign
    return sign * std::floor(std::fabs(v) + 0.5f);
  }
  if constexpr (kMode == RoundingMode::Floor) return std::floor(v);
  if constexpr (kMode == RoundingMode::Ceil) return std::ceil(v);
  return std::trunc(v);
}

inline float clamp_float(float a, float lo, float hi) { return a < lo ? lo : (a > hi ? hi : a); }

struct Range {
  float lo, hi;
};

// Forward: y = (clamp(round(x / s) + z) - z) * s. One scale and zero point per call (TensorIterator
// gives rows along which a per-channel scale is constant), unit strides: the loop vectorizes.
template <RoundingMode kMode>
inline void forward_row(float* y, const float* x, float s, float z, int64_t n, Range r) {
  for (int64_t i = 0; i < n; ++i) y[i] = (clamp_float(round_float<kMode>(x[i] / s) + z, r.lo, r.hi) - z) * s;
}

// Backward: the chain's gradients per element. MulBackward: g * s to the codes, g * (q - z) to s;
// ClampBackward: zero outside [lo, hi]; DivBackward: ga / s to x, -ga * ((x / s) / s) to s.
template <RoundingMode kMode, bool kDx, bool kDs>
inline void backward_row(float* dx, float* ds_mul, float* ds_div, const float* g, const float* x, float s, float z,
                         int64_t n, Range r) {
  for (int64_t i = 0; i < n; ++i) {
    float v = x[i] / s;
    float a = round_float<kMode>(v) + z;
    bool inside = (a >= r.lo) & (a <= r.hi);  // no short circuit: no branch in the loop
    float ga = inside ? g[i] * s : 0.0f;
    if constexpr (kDx) dx[i] = ga / s;
    if constexpr (kDs) {
      ds_mul[i] = g[i] * (clamp_float(a, r.lo, r.hi) - z);
      ds_div[i] = (-ga) * (v / s);
    }
  }
}

// TensorIterator's rows, any strides: unit-stride rows (the dense case) go to the vector loop,
// others element by element.
template <RoundingMode kMode>
inline void forward_loop(char** data, const int64_t* strides, int64_t n, Range r) {
  constexpr int64_t f = sizeof(float);
  if (strides[0] == f && strides[1] == f && strides[2] == 0 && strides[3] == 0)
    return forward_row<kMode>(reinterpret_cast<float*>(data[0]), reinterpret_cast<const float*>(data[1]),
                              *reinterpret_cast<const float*>(data[2]), *reinterpret_cast<const float*>(data[3]), n, r);
  for (int64_t i = 0; i < n; ++i)
    forward_row<kMode>(reinterpret_cast<float*>(data[0] + i * strides[0]),
                       reinterpret_cast<const float*>(data[1] + i * strides[1]),
                       *reinterpret_cast<const float*>(data[2] + i * strides[2]),
                       *reinterpret_cast<const float*>(data[3] + i * strides[3]), 1, r);
}

// Operands: the outputs asked for (dx, then ds_mul and ds_div), then g, x, s, z.
template <RoundingMode kMode, bool kDx, bool kDs>
inline void backward_loop(char** data, const int64_t* strides, int64_t n, Range r) {
  constexpr int kOut = int(kDx) + 2 * int(kDs);
  constexpr int64_t f = sizeof(float);
  bool dense = strides[kOut] == f && strides[kOut + 1] == f && strides[kOut + 2] == 0 && strides[kOut + 3] == 0;
  for (int k = 0; k < kOut; ++k) dense = dense && strides[k] == f;
  int64_t rows = dense ? 1 : n, len = dense ? n : 1;
  for (int64_t i = 0; i < rows; ++i) {
    auto at = [&](int k) { return data[k] + i * strides[k]; };
    float* dx = kDx ? reinterpret_cast<float*>(at(0)) : nullptr;
    float* ds_mul = kDs ? reinterpret_cast<float*>(at(kOut - 2)) : nullptr;
    float* ds_div = kDs ? reinterpret_cast<float*>(at(kOut - 1)) : nullptr;
    backward_row<kMode, kDx, kDs>(
        dx, ds_mul, ds_div, reinterpret_cast<const float*>(at(kOut)), reinterpret_cast<const float*>(at(kOut + 1)),
        *reinterpret_cast<const float*>(at(kOut + 2)), *reinterpret_cast<const float*>(at(kOut + 3)), len, r);
  }
}

#if defined(__x86_64__)
// The same loops compiled for AVX2 (rounding becomes vroundps instead of a libm call; no FMA, so
// no contraction changes a product-then-sum); selected once per process.
template <RoundingMode kMode>
__attribute__((target("avx2"))) void forward_avx2(char** data, const int64_t* strides, int64_t n, Range r) {
  forward_loop<kMode>(data, strides, n, r);
}
template <RoundingMode kMode, bool kDx, bool kDs>
__attribute__((target("avx2"))) void backward_avx2(char** data, const int64_t* strides, int64_t n, Range r) {
  backward_loop<kMode, kDx, kDs>(data, strides, n, r);
}
const bool kAvx2 = __builtin_cpu_supports("avx2");
#endif

template <RoundingMode kMode>
void run_forward(at::TensorIterator& it, Range r) {
  it.for_each([r](char** data, const int64_t* strides, int64_t n) {
#if defined(__x86_64__)
    if (kAvx2) return forward_avx2<kMode>(data, strides, n, r);
#endif
    forward_loop<kMode>(data, strides, n, r);
  });
}

template <RoundingMode kMode, bool kDx, bool kDs>
void run_backward(at::TensorIterator& it, Range r) {
  it.for_each([r](char** data, const int64_t* strides, int64_t n) {
#if defined(__x86_64__)
    if (kAvx2) return backward_avx2<kMode, kDx, kDs>(data, strides, n, r);
#endif
    backward_loop<kMode, kDx, kDs>(data, strides, n, r);
  });
}

template <typename F>
void dispatch(RoundingMode mode, F&& f) {
  switch (mode) {
    case RoundingMode::HalfEven:
      return f(std::integral_constant<RoundingMode, RoundingMode::HalfEven>{});
    case RoundingMode::HalfUp:
      return f(std::integral_constant<RoundingMode, RoundingMode::HalfUp>{});
    case RoundingMode::HalfAwayFromZero:
      return f(std::integral_constant<RoundingMode, RoundingMode::HalfAwayFromZero>{});
    case RoundingMode::Floor:
      return f(std::integral_constant<RoundingMode, RoundingMode::Floor>{});
    case RoundingMode::Ceil:
      return f(std::integral_constant<RoundingMode, RoundingMode::Ceil>{});
    case RoundingMode::TowardZero:
      return f(std::integral_constant<RoundingMode, RoundingMode::TowardZero>{});
  }
}

class FakeQuantFunction : public torch::autograd::Function<FakeQuantFunction> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& s, const at::Tensor& z,
                            int64_t qmin, int64_t qmax, int64_t mode) {
    Range r{static_cast<float>(qmin), static_cast<float>(qmax)};
    at::Tensor y;
    auto it = at::TensorIteratorConfig()
                  .add_output(y)
                  .add_input(x)
                  .add_input(s)
                  .add_input(z)
                  .check_all_same_dtype(true)
                  .build();
    dispatch(static_cast<RoundingMode>(mode), [&](auto m) { run_forward<decltype(m)::value>(it, r); });
    ctx->save_for_backward({x, s, z});
    ctx->saved_data["qmin"] = qmin;
    ctx->saved_data["qmax"] = qmax;
    ctx->saved_data["mode"] = mode;
    return it.output();
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    variable_list saved = ctx->get_saved_variables();
    const at::Tensor &x = saved[0], &s = saved[1], &z = saved[2];
    Range r{static_cast<float>(ctx->saved_data["qmin"].toInt()), static_cast<float>(ctx->saved_data["qmax"].toInt())};
    auto mode = static_cast<RoundingMode>(ctx->saved_data["mode"].toInt());
    bool dx = ctx->needs_input_grad(0), ds = ctx->needs_input_grad(1);
    variable_list out(6);
    if (!dx && !ds) return out;
    // The chain's products take their memory layout from their first operand, and the layout
    // sets the order of the sums: g * (q - z) follows g; the clamp's where() takes its mask
    // (computed from x) first, so ga, dx = ga / s and -ga * ((x / s) / s) follow x. One pass in
    // x's layout (g copied into it when it differs: same values, unit-stride rows), then the
    // multiplication's product copied into g's layout.
    const at::Tensor& g = grads[0];
    bool same_layout = g.strides() == x.strides();
    at::Tensor gx, mul, div;
    at::TensorIteratorConfig config;
    if (dx) config.add_output(gx);
    if (ds) config.add_output(mul).add_output(div);
    at::Tensor g_in = same_layout ? g : at::empty_like(x).copy_(g);  // TensorIterator borrows: kept alive here
    auto it = config.add_input(g_in).add_input(x).add_input(s).add_input(z).build();
    dispatch(mode, [&](auto m) {
      if (dx && ds) return run_backward<decltype(m)::value, true, true>(it, r);
      if (dx) return run_backward<decltype(m)::value, true, false>(it, r);
      run_backward<decltype(m)::value, false, true>(it, r);
    });
    int o = 0;
    if (dx) gx = it.output(o++);
    if (ds) {
      mul = it.output(o), div = it.output(o + 1);
      if (!same_layout) mul = at::empty_like(g).copy_(mul);
    }
    if (dx) out[0] = gx;
    if (ds) out[1] = at::sum_to(mul, s.sizes()) + at::sum_to(div, s.sizes());
    return out;
  }
};
}  // namespace

bool fused_gradient_applies(const at::Tensor& x, const at::Tensor& scale, const at::Tensor& zero_point) {
  for (const at::Tensor* t : {&x, &scale, &zero_point})
    if (!t->device().is_cpu() || t->scalar_type() != at::kFloat) return false;
  return at::GradMode::is_enabled() && (x.requires_grad() || scale.requires_grad()) && !zero_point.requires_grad();
}

at::Tensor fake_quantize_with_gradient(const at::Tensor& x, const at::Tensor& scale, const at::Tensor& zero_point,
                                       int64_t qmin, int64_t qmax, RoundingMode mode) {
  return FakeQuantFunction::apply(x, scale, zero_point, qmin, qmax, static_cast<int64_t>(mode));
}

}  // namespace edgequant::quant
