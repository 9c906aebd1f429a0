// Differentiable kernels with one-pass backward (see gradient_kernels.h).
#include "exec/gradient_kernels.h"

#include <ATen/ATen.h>
#include <ATen/TensorIterator.h>
#include <torch/csrc/autograd/custom_function.h>

#include <limits>

namespace edgequant::exec {

namespace {
using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

bool float_cpu(const at::Tensor& t) { return t.device().is_cpu() && t.scalar_type() == at::kFloat; }

// out = f(g, x) over TensorIterator rows (unit strides: a loop the compiler vectorizes). x is the
// first operand, as in ATen's where(mask of x, g, 0) and threshold_backward, so the result takes
// x's memory layout as theirs does.
template <typename F>
at::Tensor binary_map(const at::Tensor& g, const at::Tensor& x, F f) {
  at::Tensor out;
  // g copied into x's layout when it differs (same values; the rows become unit-stride).
  at::Tensor gx = g.strides() == x.strides() ? g : at::empty_like(x).copy_(g);
  auto it = at::TensorIteratorConfig().add_output(out).add_input(x).add_input(gx).build();
  it.for_each([f](char** data, const int64_t* strides, int64_t n) {
    constexpr int64_t kF = sizeof(float);
    if (strides[0] == kF && strides[1] == kF && strides[2] == kF) {
      float* o = reinterpret_cast<float*>(data[0]);
      const float* xp = reinterpret_cast<const float*>(data[1]);
      const float* gp = reinterpret_cast<const float*>(data[2]);
      for (int64_t i = 0; i < n; ++i) o[i] = f(gp[i], xp[i]);
      return;
    }
    for (int64_t i = 0; i < n; ++i)
      *reinterpret_cast<float*>(data[0] + i * strides[0]) =
          f(*reinterpret_cast<const float*>(data[2] + i * strides[2]),
            *reinterpret_cast<const float*>(data[1] + i * strides[1]));
  });
  return it.output();
}

template <typename F>
at::Tensor unary_map(const at::Tensor& x, F f, at::Tensor out = {}) {
  auto it = at::TensorIteratorConfig().add_output(out).add_input(x).build();
  it.for_each([f](char** data, const int64_t* strides, int64_t n) {
    if (strides[0] == sizeof(float) && strides[1] == sizeof(float)) {
      float* o = reinterpret_cast<float*>(data[0]);
      const float* xp = reinterpret_cast<const float*>(data[1]);
      for (int64_t i = 0; i < n; ++i) o[i] = f(xp[i]);
      return;
    }
    for (int64_t i = 0; i < n; ++i)
      *reinterpret_cast<float*>(data[0] + i * strides[0]) =
          f(*reinterpret_cast<const float*>(data[1] + i * strides[1]));
  });
  return it.output();
}

// ClampBackward: where(lo <= x <= hi, g, 0) (comparisons in float, as ATen's with float tensors).
class ClampFunction : public torch::autograd::Function<ClampFunction> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const c10::optional<at::Scalar>& lo,
                            const c10::optional<at::Scalar>& hi) {
    ctx->save_for_backward({x});
    ctx->saved_data["lo"] = lo ? lo->toDouble() : -std::numeric_limits<double>::infinity();
    ctx->saved_data["hi"] = hi ? hi->toDouble() : std::numeric_limits<double>::infinity();
    return at::clamp(x, lo, hi);
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    at::Tensor x = ctx->get_saved_variables()[0];
    float lo = static_cast<float>(ctx->saved_data["lo"].toDouble()),
          hi = static_cast<float>(ctx->saved_data["hi"].toDouble());
    return {binary_map(grads[0], x, [lo, hi](float g, float v) { return v >= lo && v <= hi ? g : 0.0f; }), at::Tensor(),
            at::Tensor()};
  }
};

// ThresholdBackward of relu: where(y > 0, g, 0) on the result.
class ReluFunction : public torch::autograd::Function<ReluFunction> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x) {
    at::Tensor y = at::relu(x);
    ctx->save_for_backward({y});
    return y;
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    at::Tensor y = ctx->get_saved_variables()[0];
    return {binary_map(grads[0], y, [](float g, float v) { return v > 0.0f ? g : 0.0f; })};
  }
};

// mean((a - t)^2): forward by the ATen ops (pow(2) is d * d there); backward as PowBackward
// (g * (2 * d)) after MeanBackward (g / numel), in float.
class MseFunction : public torch::autograd::Function<MseFunction> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& a, const at::Tensor& t) {
    at::Tensor d = a - t;
    ctx->save_for_backward({d});
    return d.pow(2).mean();
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    at::Tensor d = ctx->get_saved_variables()[0];
    float gn = grads[0].item<float>() / static_cast<float>(d.numel());
    // Contiguous, whatever d's layout: ATen materialises MeanBackward's g / numel as a contiguous
    // tensor, and the product with 2 * d takes the layout of that first operand.
    at::Tensor out = at::empty(d.sizes(), d.options());
    return {unary_map(
                d, [gn](float v) { return gn * (2.0f * v); }, out),
            at::Tensor()};
  }
};

bool records(const at::Tensor& x) { return at::GradMode::is_enabled() && x.requires_grad() && float_cpu(x); }
}  // namespace

at::Tensor clamp_differentiable(const at::Tensor& x, const c10::optional<at::Scalar>& lo,
                                const c10::optional<at::Scalar>& hi) {
  if (!records(x)) return at::clamp(x, lo, hi);
  return ClampFunction::apply(x, lo, hi);
}

at::Tensor relu_differentiable(const at::Tensor& x) { return records(x) ? ReluFunction::apply(x) : at::relu(x); }

at::Tensor mse_loss(const at::Tensor& a, const at::Tensor& t) {
  if (!records(a) || !float_cpu(t) || t.requires_grad()) return (a - t).pow(2).mean();
  return MseFunction::apply(a, t);
}

}  // namespace edgequant::exec
