// ParameterStore (see parameter_store.h).
#include "quant/parameter_store.h"

#include <ATen/ATen.h>
#include <torch/csrc/autograd/custom_function.h>

#include <cmath>

#include "edgequant/error.h"
#include "exec/kernel.h"
#include "quant/fake_quant.h"

namespace edgequant::quant {

at::Tensor ParameterStore::scale_param(const std::string& value, const QuantConfig& c, double grad_scale) {
  auto it = scales_.find(value);
  if (it != scales_.end()) return it->second;
  if (!c.has_scale()) fail(ErrorCode::Internal, "'" + value + "' has no scale to train (calibrate first)");
  bool pow2 = c.scale_kind == ScaleKind::PowerOfTwo;
  std::vector<double> init;
  for (double s : c.scales) init.push_back(pow2 ? std::log2(s) : s);
  at::Tensor p = at::tensor(init, at::kDouble).to(at::kFloat).set_requires_grad(true);
  pow2_[value] = pow2;
  grad_scale_[value] = grad_scale;
  return scales_[value] = p;
}

at::Tensor ParameterStore::weight_param(const Value* v, const at::Tensor& init) {
  auto it = weights_.find(v);
  if (it != weights_.end()) return it->second;
  return weights_[v] = init.detach().clone().set_requires_grad(true);
}

at::Tensor ParameterStore::weight(const Value* v) const { return weights_.at(v); }

namespace {
constexpr double kZeta = 1.1, kGamma = -0.1;  // AdaRound's stretch of the sigmoid (Nagel et al. 2020)
}  // namespace

at::Tensor ParameterStore::rounding_param(const Value* v, const at::Tensor& w, const QuantConfig& c) {
  auto it = rounding_.find(v);
  if (it != rounding_.end()) return it->second.v;
  at::NoGradGuard no_grad;
  auto [s, z] = scale_tensors(c, w.dim(), w.options().dtype(at::kFloat));
  at::Tensor x = w.to(at::kFloat) / s;
  at::Tensor fl = at::floor(x);
  at::Tensor frac = (x - fl).clamp(0.01, 0.99);
  // h(V) = clamp(sigmoid(V) * (zeta - gamma) + gamma, 0, 1) = frac  ->  V = logit((frac - gamma) / (zeta - gamma)).
  at::Tensor p = (frac - kGamma) / (kZeta - kGamma);
  at::Tensor v0 = at::log(p / (1 - p)).contiguous().set_requires_grad(true);
  rounding_[v] = Rounding{v0, fl.contiguous()};
  return v0;
}

at::Tensor ParameterStore::rounding_h(const Value* v) const {
  const at::Tensor& V = rounding_.at(v).v;
  return at::clamp(at::sigmoid(V) * (kZeta - kGamma) + kGamma, 0.0, 1.0);
}

at::Tensor ParameterStore::rounded_weight(const Value* v, const QuantConfig& c) const {
  const Rounding& r = rounding_.at(v);
  at::Tensor h = hard_rounding_ ? (r.v >= 0).to(at::kFloat) : rounding_h(v);
  auto [s, z] = scale_tensors(c, r.floor_codes.dim(), r.floor_codes.options());
  return at::clamp(r.floor_codes + h + z, static_cast<double>(c.quant_min), static_cast<double>(c.quant_max)) * s -
         z * s;
}

namespace {
// s = 2^alpha with the straight-through exponent alpha = p + stopgrad(round(p) - p) (exactly
// round(p)) as one autograd node: the chain's PowBackward gives p the gradient g * (s * ln 2),
// the same bits here (tests/quant/parameter_store_test); the chain recorded five ops per scale
// and step.
class Pow2Ste : public torch::autograd::Function<Pow2Ste> {
 public:
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& p) {
    at::Tensor s = at::pow(2.0, at::round(p));
    ctx->save_for_backward({s});
    return s;
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    return {grads[0] * (ctx->get_saved_variables()[0] * std::log(2.0))};
  }
};
}  // namespace

at::Tensor ParameterStore::scale(const std::string& value, const QuantConfig& c, int64_t rank) const {
  at::Tensor p = scales_.at(value);
  double g = grad_scale_.at(value);
  if (g != 1.0) p = p * g + (p - p * g).detach();  // value p, gradient g * dL/dp
  at::Tensor s = p;
  if (pow2_.at(value)) s = Pow2Ste::apply(p);
  if (c.granularity == Granularity::PerChannel && p.numel() > 1) {
    std::vector<int64_t> shape(static_cast<size_t>(rank), 1);
    shape[static_cast<size_t>(c.axis)] = p.numel();
    return s.reshape(shape);
  }
  return s.reshape({});
}

std::vector<at::Tensor> ParameterStore::parameters() const {
  std::vector<at::Tensor> out;
  for (const auto& [n, p] : scales_) out.push_back(p);
  for (const auto& [v, p] : weights_) out.push_back(p);
  for (const auto& [v, r] : rounding_) out.push_back(r.v);
  return out;
}

ParameterStore::Snapshot ParameterStore::snapshot() const {
  Snapshot s;
  for (const at::Tensor& p : parameters()) s.push_back(p.detach().clone());
  return s;
}

void ParameterStore::restore(const Snapshot& snap) {
  std::vector<at::Tensor> params = parameters();
  if (snap.size() != params.size()) fail(ErrorCode::Internal, "parameter snapshot does not match the store");
  at::NoGradGuard no_grad;
  for (size_t i = 0; i < params.size(); ++i) params[i].copy_(snap[i]);
}

void ParameterStore::write_scales(QuantPlan& plan) const {
  at::NoGradGuard no_grad;
  for (const auto& [name, p] : scales_) {
    QuantConfig* c = plan.find(name);
    if (!c) fail(ErrorCode::Internal, "trained scale of '" + name + "', which has no config");
    at::Tensor v = p.detach().to(at::kDouble);
    c->scales.clear();
    for (int64_t i = 0; i < v.numel(); ++i) {
      double x = v[i].item<double>();
      c->scales.push_back(pow2_.at(name) ? std::ldexp(1.0, static_cast<int>(std::nearbyint(x))) : x);
    }
    c->source = RangeSource::Trained;
  }
}

std::vector<std::pair<std::string, at::Tensor>> ParameterStore::named_parameters() const {
  std::map<std::string, at::Tensor> named;
  for (const auto& [n, p] : scales_) named.emplace("scale:" + n, p);
  for (const auto& [v, p] : weights_) named.emplace("weight:" + v->name, p);
  for (const auto& [v, r] : rounding_) named.emplace("rounding:" + v->name, r.v);
  return {named.begin(), named.end()};
}

void ParameterStore::write_to(QuantPlan& plan, Graph& graph) const {
  if (!rounding_.empty()) fail(ErrorCode::Internal, "write_to: learned roundings are written by bake() only");
  at::NoGradGuard no_grad;
  write_scales(plan);
  for (const auto& [v, p] : weights_) {
    Value* gv = graph.find_value(v->name);
    if (!gv || !gv->is_constant())
      fail(ErrorCode::Internal, "write_to: '" + v->name + "' is not a constant of the copy");
    at::Tensor w = p.detach().to(exec::to_aten(*gv->data).scalar_type()).contiguous();
    gv->data = std::make_shared<const Tensor>(exec::to_ir_tensor(w.to(at::kCPU)));
  }
}

std::map<const Value*, at::Tensor> ParameterStore::bake(QuantPlan& plan, Graph& graph, exec::Executor& ex) {
  at::NoGradGuard no_grad;
  std::map<const Value*, at::Tensor> before;
  write_scales(plan);
  for (const auto& [v, p] : weights_) {
    before[v] = ex.constant(v).clone();  // the executor may hold a view of the graph data replaced below
    at::Tensor w = p.detach().to(ex.constant(v).scalar_type()).contiguous();
    ex.set_constant(v, w);
    if (Value* gv = graph.find_value(v->name))
      gv->data = std::make_shared<const Tensor>(exec::to_ir_tensor(w.to(at::kCPU)));
  }
  // Learned roundings: the weights become exactly their hard-rounded grid values.
  for (const auto& [v, r] : rounding_) {
    const QuantConfig* c = plan.find(v->name);
    if (!c) fail(ErrorCode::Internal, "learned rounding of '" + v->name + "', which has no config");
    bool hard = hard_rounding_;
    hard_rounding_ = true;
    at::Tensor w = rounded_weight(v, *c).detach().to(ex.constant(v).scalar_type()).contiguous();
    hard_rounding_ = hard;
    before.emplace(v, ex.constant(v).clone());
    ex.set_constant(v, w);
    if (Value* gv = graph.find_value(v->name))
      gv->data = std::make_shared<const Tensor>(exec::to_ir_tensor(w.to(at::kCPU)));
  }
  clear();
  return before;
}

void ParameterStore::clear() {
  scales_.clear();
  pow2_.clear();
  grad_scale_.clear();
  weights_.clear();
  rounding_.clear();
  hard_rounding_ = false;
}

}  // namespace edgequant::quant
