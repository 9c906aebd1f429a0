// Fake quantization kernels.
#include "quant/fake_quant.h"

#include <ATen/ATen.h>

#include "edgequant/error.h"

namespace edgequant::quant {

at::Tensor round_tensor(const at::Tensor& x, RoundingMode mode) {
  switch (mode) {
    case RoundingMode::HalfEven: return at::round(x);  // nearbyint: ties to even
    case RoundingMode::HalfUp: return at::floor(x + 0.5);
    case RoundingMode::HalfAwayFromZero: return at::sign(x) * at::floor(at::abs(x) + 0.5);
    case RoundingMode::Floor: return at::floor(x);
    case RoundingMode::Ceil: return at::ceil(x);
    case RoundingMode::TowardZero: return at::trunc(x);
  }
  return x;
}

std::pair<at::Tensor, at::Tensor> scale_tensors(const QuantConfig& c, int64_t rank, const at::TensorOptions& opts) {
  if (c.scales.empty()) fail(ErrorCode::Internal, "fake quantization of a config without a scale");
  std::vector<float> s(c.scales.begin(), c.scales.end());
  std::vector<float> z(c.zero_points.begin(), c.zero_points.end());
  if (z.empty()) z.assign(s.size(), 0.0f);
  auto cpu = at::TensorOptions().dtype(at::kFloat);
  at::Tensor st = at::tensor(s, cpu), zt = at::tensor(z, cpu);
  if (c.granularity == Granularity::PerChannel && s.size() > 1) {
    std::vector<int64_t> shape(static_cast<size_t>(rank), 1);
    shape[static_cast<size_t>(c.axis)] = static_cast<int64_t>(s.size());
    st = st.reshape(shape);
    zt = zt.reshape(shape);
  } else {
    st = st.reshape({});
    zt = zt.reshape({});
  }
  return {st.to(opts.device()).to(opts.dtype()), zt.to(opts.device()).to(opts.dtype())};
}

static at::Tensor codes(const at::Tensor& x, const at::Tensor& scale, const at::Tensor& zp, int64_t qmin, int64_t qmax,
                        RoundingMode mode) {
  at::Tensor v = x / scale;
  at::Tensor r = round_tensor(v, mode);
  // Straight-through: forward uses the rounded value, backward the identity.
  if (at::GradMode::is_enabled() && (x.requires_grad() || scale.requires_grad())) r = v + (r - v).detach();
  return at::clamp(r + zp, static_cast<double>(qmin), static_cast<double>(qmax));
}

at::Tensor fake_quantize(const at::Tensor& x, const at::Tensor& scale, const at::Tensor& zp, int64_t qmin, int64_t qmax,
                         RoundingMode mode) {
  return (codes(x, scale, zp, qmin, qmax, mode) - zp) * scale;
}

at::Tensor quantize_codes(const at::Tensor& x, const QuantConfig& c) {
  auto [s, z] = scale_tensors(c, x.dim(), x.options());
  return codes(x, s, z, c.quant_min, c.quant_max, c.rounding);
}

at::Tensor fake_quantize(const at::Tensor& x, const QuantConfig& c) {
  auto [s, z] = scale_tensors(c, x.dim(), x.options());
  return fake_quantize(x, s, z, c.quant_min, c.quant_max, c.rounding);
}

}  // namespace edgequant::quant
