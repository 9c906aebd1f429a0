// Pointwise activations and the softmax family.
#include <ATen/ATen.h>

#include <limits>

#include "exec/gradient_kernels.h"
#include "exec/ops/factories.h"
#include "ir/op_traits.h"

namespace edgequant::exec {

Kernel make_unary(const Op& op, int64_t) {
  using Fn = at::Tensor (*)(const at::Tensor&);
  static const std::map<OpType, Fn> fns = {
      {OpType::Relu, [](const at::Tensor& x) { return relu_differentiable(x); }},
      {OpType::Sigmoid, [](const at::Tensor& x) { return at::sigmoid(x); }},
      {OpType::Tanh, [](const at::Tensor& x) { return at::tanh(x); }},
      {OpType::Exp, [](const at::Tensor& x) { return at::exp(x); }},
      {OpType::Log, [](const at::Tensor& x) { return at::log(x); }},
      {OpType::Sqrt, [](const at::Tensor& x) { return at::sqrt(x); }},
      {OpType::Erf, [](const at::Tensor& x) { return at::erf(x); }},
      {OpType::Abs, [](const at::Tensor& x) { return at::abs(x); }},
      {OpType::Neg, [](const at::Tensor& x) { return at::neg(x); }},
      {OpType::Floor, [](const at::Tensor& x) { return at::floor(x); }},
      {OpType::Ceil, [](const at::Tensor& x) { return at::ceil(x); }},
      {OpType::Round, [](const at::Tensor& x) { return at::round(x); }},  // half to even, as ONNX
      {OpType::Reciprocal, [](const at::Tensor& x) { return at::reciprocal(x); }},
      {OpType::Sin, [](const at::Tensor& x) { return at::sin(x); }},
      {OpType::Cos, [](const at::Tensor& x) { return at::cos(x); }},
      {OpType::Not, [](const at::Tensor& x) { return at::logical_not(x); }},
      {OpType::BitwiseNot, [](const at::Tensor& x) { return at::bitwise_not(x); }},
      {OpType::Softplus, [](const at::Tensor& x) { return at::log1p(at::exp(x)); }},
      {OpType::Softsign, [](const at::Tensor& x) { return x / (1 + at::abs(x)); }},
      {OpType::Sign, [](const at::Tensor& x) { return at::sign(x); }},
      {OpType::Tan, [](const at::Tensor& x) { return at::tan(x); }},
      {OpType::Asin, [](const at::Tensor& x) { return at::asin(x); }},
      {OpType::Acos, [](const at::Tensor& x) { return at::acos(x); }},
      {OpType::Atan, [](const at::Tensor& x) { return at::atan(x); }},
      {OpType::Sinh, [](const at::Tensor& x) { return at::sinh(x); }},
      {OpType::Cosh, [](const at::Tensor& x) { return at::cosh(x); }},
      {OpType::Asinh, [](const at::Tensor& x) { return at::asinh(x); }},
      {OpType::Acosh, [](const at::Tensor& x) { return at::acosh(x); }},
      {OpType::Atanh, [](const at::Tensor& x) { return at::atanh(x); }},
      {OpType::IsNaN, [](const at::Tensor& x) { return at::isnan(x); }},
      {OpType::Mish, [](const at::Tensor& x) { return x * at::tanh(at::softplus(x)); }},
  };
  auto it = fns.find(op_type_of(op.type));
  if (it == fns.end()) unsupported(op, "not a unary op");
  Fn fn = it->second;
  return [fn](const Tensors& in) -> Tensors { return {fn(in[0])}; };
}

Kernel make_leaky_relu(const Op& op, int64_t) {
  double alpha = op.attr_float("alpha", 0.01f);
  return [alpha](const Tensors& in) -> Tensors { return {at::leaky_relu(in[0], alpha)}; };
}

Kernel make_elu(const Op& op, int64_t) {
  double alpha = op.attr_float("alpha", 1.0f);
  return [alpha](const Tensors& in) -> Tensors { return {at::elu(in[0], alpha)}; };
}

Kernel make_selu(const Op& op, int64_t) {
  double alpha = op.attr_float("alpha", 1.67326319217681884765625f);
  double gamma = op.attr_float("gamma", 1.05070102214813232421875f);
  return [alpha, gamma](const Tensors& in) -> Tensors {
    const at::Tensor& x = in[0];
    return {at::where(x > 0, x * gamma, (at::exp(x) - 1) * (alpha * gamma))};
  };
}

Kernel make_prelu(const Op&, int64_t) {
  return [](const Tensors& in) -> Tensors {
    const at::Tensor& x = in[0];
    at::Tensor slope = in[1];
    // A per-channel slope of shape [C] (old exporters) applies along axis 1, not the last axis.
    if (slope.dim() == 1 && x.dim() > 2 && slope.size(0) == x.size(1) && slope.size(0) != x.size(-1)) {
      std::vector<int64_t> shape(static_cast<size_t>(x.dim() - 1), 1);
      shape[0] = slope.size(0);
      slope = slope.reshape(shape);
    }
    return {at::where(x < 0, x * slope, x)};
  };
}

Kernel make_clip(const Op& op, int64_t opset) {
  if (opset < 11) {
    double lo = op.attr_float("min", -std::numeric_limits<float>::infinity());
    double hi = op.attr_float("max", std::numeric_limits<float>::infinity());
    return [lo, hi](const Tensors& in) -> Tensors { return {clamp_differentiable(in[0], lo, hi)}; };
  }
  return [](const Tensors& in) -> Tensors {
    // Scalar bounds: one clamp pass (ReLU6 is on the hot path of every MobileNet).
    c10::optional<at::Scalar> lo, hi;
    if (in.size() > 1 && in[1].defined()) lo = in[1].item();
    if (in.size() > 2 && in[2].defined()) hi = in[2].item();
    if (!lo && !hi) return {in[0].clone()};
    return {clamp_differentiable(in[0], lo, hi)};
  };
}

Kernel make_hard_sigmoid(const Op& op, int64_t) {
  double alpha = op.attr_float("alpha", 0.2f), beta = op.attr_float("beta", 0.5f);
  return [alpha, beta](const Tensors& in) -> Tensors { return {at::clamp(in[0] * alpha + beta, 0.0, 1.0)}; };
}

Kernel make_hard_swish(const Op&, int64_t) {
  return [](const Tensors& in) -> Tensors { return {in[0] * at::clamp(in[0] / 6.0 + 0.5, 0.0, 1.0)}; };
}

Kernel make_celu(const Op& op, int64_t) {
  double alpha = op.attr_float("alpha", 1.0f);
  return [alpha](const Tensors& in) -> Tensors { return {at::celu(in[0], alpha)}; };
}

Kernel make_thresholded_relu(const Op& op, int64_t) {
  double alpha = op.attr_float("alpha", 1.0f);
  return [alpha](const Tensors& in) -> Tensors { return {at::where(in[0] > alpha, in[0], at::zeros_like(in[0]))}; };
}

Kernel make_shrink(const Op& op, int64_t) {
  double bias = op.attr_float("bias", 0.0f), lambd = op.attr_float("lambd", 0.5f);
  return [bias, lambd](const Tensors& in) -> Tensors {
    const at::Tensor& x = in[0];
    // Computed in the input's type (integer inputs stay integer, as ONNX's reference does).
    return {at::where(x < -lambd, x + bias, at::where(x > lambd, x - bias, at::zeros_like(x))).to(x.scalar_type())};
  };
}

Kernel make_gelu(const Op& op, int64_t) {
  std::string approximate = op.attr_string("approximate", "none");
  if (approximate != "none" && approximate != "tanh") unsupported(op, "approximate='" + approximate + "'");
  return [approximate](const Tensors& in) -> Tensors { return {at::gelu(in[0], approximate)}; };
}

Kernel make_is_inf(const Op& op, int64_t) {
  bool pos = op.attr_int("detect_positive", 1) != 0, neg = op.attr_int("detect_negative", 1) != 0;
  return [pos, neg](const Tensors& in) -> Tensors {
    const at::Tensor& x = in[0];
    at::Tensor none = at::zeros(x.sizes(), x.options().dtype(at::kBool));
    return {at::logical_or(pos ? at::isposinf(x) : none, neg ? at::isneginf(x) : none)};
  };
}

// Hardmax: 1 at the first maximum along the axis (before opset 13: of the input coerced to 2-D).
Kernel make_hardmax(const Op& op, int64_t opset) {
  bool legacy = opset < 13;
  int64_t axis = op.attr_int("axis", legacy ? 1 : -1);
  Op desc = op;
  return [legacy, axis, desc](const Tensors& in) -> Tensors {
    const at::Tensor& x = in[0];
    int64_t a = normalize_axis(axis, std::max<int64_t>(x.dim(), 1), desc);
    at::Tensor v = x;
    if (legacy) {
      int64_t outer = 1;
      for (int64_t i = 0; i < a; ++i) outer *= x.size(i);
      v = x.reshape({outer, -1});
      a = 1;
    }
    at::Tensor y = at::zeros_like(v).scatter_(a, v.argmax(a, true), 1.0);
    return {y.reshape(x.sizes())};
  };
}

Kernel make_softmax(const Op& op, int64_t opset) {
  bool log = op.is(OpType::LogSoftmax);
  bool legacy = opset < 13;  // before 13 the input is coerced to 2-D at `axis`
  int64_t axis = op.attr_int("axis", legacy ? 1 : -1);
  Op desc = op;
  return [log, legacy, axis, desc](const Tensors& in) -> Tensors {
    const at::Tensor& x = in[0];
    int64_t a = normalize_axis(axis, std::max<int64_t>(x.dim(), 1), desc);
    if (!legacy) return {log ? at::log_softmax(x, a) : at::softmax(x, a)};
    auto sizes = x.sizes();
    int64_t outer = 1;
    for (int64_t i = 0; i < a; ++i) outer *= sizes[i];
    at::Tensor flat = x.reshape({outer, -1});
    at::Tensor y = log ? at::log_softmax(flat, 1) : at::softmax(flat, 1);
    return {y.reshape(sizes)};
  };
}

// NegativeLogLikelihoodLoss(input [N, C, d...], target [N, d...], weight? [C]) and
// SoftmaxCrossEntropyLoss(scores, labels, weights?) -> (loss, log_prob?): the losses training
// exports end in. reduction none/sum/mean (mean divides by the summed weights of the counted
// targets); ignore_index drops a class (none when the attribute is absent).
Kernel make_nll_loss(const Op& op, int64_t) {
  bool softmax = op.is(OpType::SoftmaxCrossEntropyLoss);
  std::string reduction = op.attr_string("reduction", "mean");
  int64_t mode;
  if (reduction == "none")
    mode = at::Reduction::None;
  else if (reduction == "sum")
    mode = at::Reduction::Sum;
  else if (reduction == "mean")
    mode = at::Reduction::Mean;
  else
    fail(ErrorCode::InvalidModel, op.describe() + ": reduction '" + reduction + "'");
  int64_t ignore = op.has_attr("ignore_index") ? op.attr_int("ignore_index", 0) : std::numeric_limits<int64_t>::min();
  Op desc = op;
  return [softmax, mode, ignore, desc](const Tensors& in) -> Tensors {
    const at::Tensor &x = in[0], &target = in[1];
    at::Tensor weight = in.size() > 2 && in[2].defined() ? in[2].to(x.scalar_type()) : at::Tensor();
    if (x.dim() < 2 || target.dim() != x.dim() - 1 || target.size(0) != x.size(0))
      fail(ErrorCode::InvalidInput, desc.describe() + ": input [N, C, d...] needs a target [N, d...]");
    if (weight.defined() && (weight.dim() != 1 || weight.size(0) != x.size(1)))
      fail(ErrorCode::InvalidInput, desc.describe() + ": weight must hold one value per class");
    at::Tensor t = target.to(at::kLong);
    at::Tensor counted = ignore == std::numeric_limits<int64_t>::min() ? at::ones_like(t, at::kBool) : t != ignore;
    if (((t < 0) | (t >= x.size(1))).logical_and(counted).any().item<bool>())
      fail(ErrorCode::InvalidInput, desc.describe() + ": a target is outside [0, " + std::to_string(x.size(1)) + ")");
    at::Tensor log_prob = softmax ? at::log_softmax(x, 1) : x;
    at::Tensor loss = at::nll_loss_nd(log_prob, t, weight, mode,
                                      ignore == std::numeric_limits<int64_t>::min() ? -1 - x.size(1) : ignore);
    if (softmax) return {loss, log_prob};
    return {loss};
  };
}

}  // namespace edgequant::exec
