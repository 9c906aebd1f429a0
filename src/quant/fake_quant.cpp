// Fake quantization kernels.
#include "quant/fake_quant.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include "edgequant/error.h"

namespace edgequant::quant {

at::Tensor round_tensor(const at::Tensor& x, RoundingMode mode) {
  switch (mode) {
    case RoundingMode::HalfEven:
      return at::round(x);  // nearbyint: ties to even
    case RoundingMode::HalfUp:
      return at::floor(x + 0.5);
    case RoundingMode::HalfAwayFromZero:
      return at::sign(x) * at::floor(at::abs(x) + 0.5);
    case RoundingMode::Floor:
      return at::floor(x);
    case RoundingMode::Ceil:
      return at::ceil(x);
    case RoundingMode::TowardZero:
      return at::trunc(x);
  }
  return x;
}

std::pair<at::Tensor, at::Tensor> scale_tensors(const QuantConfig& c, int64_t rank, const at::TensorOptions& opts) {
  if (c.scales.empty()) fail(ErrorCode::Internal, "fake quantization of a config without a scale");
  // Scales and zero points are float32 values (then converted to the tensor's type).
  auto as_float = [](double v) { return static_cast<double>(static_cast<float>(v)); };
  if (!(c.granularity == Granularity::PerChannel && c.scales.size() > 1)) {
    // One value each: two scalar tensors (this runs for every quantized tensor at every step).
    auto o = at::TensorOptions().dtype(opts.dtype()).device(opts.device());
    return {at::scalar_tensor(as_float(c.scales[0]), o),
            at::scalar_tensor(c.zero_points.empty() ? 0.0 : as_float(static_cast<double>(c.zero_points[0])), o)};
  }
  std::vector<float> s(c.scales.begin(), c.scales.end());
  std::vector<float> z(c.zero_points.begin(), c.zero_points.end());
  if (z.empty()) z.assign(s.size(), 0.0f);
  auto cpu = at::TensorOptions().dtype(at::kFloat);
  std::vector<int64_t> shape(static_cast<size_t>(rank), 1);
  shape[static_cast<size_t>(c.axis)] = static_cast<int64_t>(s.size());
  at::Tensor st = at::tensor(s, cpu).reshape(shape), zt = at::tensor(z, cpu).reshape(shape);
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
  if (fused_gradient_applies(x, scale, zp)) return fake_quantize_with_gradient(x, scale, zp, qmin, qmax, mode);
  return (codes(x, scale, zp, qmin, qmax, mode) - zp) * scale;
}

at::Tensor quantize_codes(const at::Tensor& x, const QuantConfig& c) {
  auto [s, z] = scale_tensors(c, x.dim(), x.options());
  return codes(x, s, z, c.quant_min, c.quant_max, c.rounding);
}

namespace {
// One fused pass for the common case (CPU float32, per-tensor, no autograd): the simulator calls
// this after nearly every op. Same arithmetic as the ATen path: float x / float s, the rounding
// of core/intmath, clamp, back to float.
template <RoundingMode kMode>
inline void fake_quant_range(const float* in, float* out, int64_t begin, int64_t end, float s, float z, float lo,
                             float hi) {
  for (int64_t i = begin; i < end; ++i) {
    float q = static_cast<float>(round_value(in[i] / s, kMode)) + z;
    q = q < lo ? lo : (q > hi ? hi : q);
    out[i] = (q - z) * s;
  }
}
#if defined(__x86_64__)
// The same loop compiled for AVX2: the rounding becomes vroundps/vroundpd instead of a libm call
// per value (the baseline x86-64 target has no rounding instruction), ~4x faster; the same
// IEEE operations in the same order, so the same bits.
template <RoundingMode kMode>
__attribute__((target("avx2"))) void fake_quant_range_avx2(const float* in, float* out, int64_t begin, int64_t end,
                                                           float s, float z, float lo, float hi) {
  fake_quant_range<kMode>(in, out, begin, end, s, z, lo, hi);
}
#endif

template <RoundingMode kMode>
void fake_quant_loop(const float* in, float* out, int64_t n, float s, float z, float lo, float hi) {
#if defined(__x86_64__)
  static const bool avx2 = __builtin_cpu_supports("avx2");
#else
  constexpr bool avx2 = false;
#endif
  at::parallel_for(0, n, 1 << 15, [&](int64_t begin, int64_t end) {
#if defined(__x86_64__)
    if (avx2) return fake_quant_range_avx2<kMode>(in, out, begin, end, s, z, lo, hi);
#endif
    fake_quant_range<kMode>(in, out, begin, end, s, z, lo, hi);
  });
}

bool fused_path_applies(const at::Tensor& x, const QuantConfig& c) {
  return x.device().is_cpu() && x.scalar_type() == at::kFloat && x.is_non_overlapping_and_dense() &&
         (c.granularity == Granularity::PerTensor || c.scales.size() == 1) &&
         !(at::GradMode::is_enabled() && x.requires_grad());
}
}  // namespace

at::Tensor fake_quantize(const at::Tensor& x, const QuantConfig& c) {
  if (fused_path_applies(x, c) && !c.scales.empty()) {
    at::Tensor out = at::empty_like(x);  // keeps x's memory format (channels_last stays)
    float s = static_cast<float>(c.scales[0]);
    float z = c.zero_points.empty() ? 0.0f : static_cast<float>(c.zero_points[0]);
    float lo = static_cast<float>(c.quant_min), hi = static_cast<float>(c.quant_max);
    const float* in = x.data_ptr<float>();
    float* o = out.data_ptr<float>();
    int64_t n = x.numel();
    switch (c.rounding) {
      case RoundingMode::HalfEven:
        fake_quant_loop<RoundingMode::HalfEven>(in, o, n, s, z, lo, hi);
        break;
      case RoundingMode::HalfUp:
        fake_quant_loop<RoundingMode::HalfUp>(in, o, n, s, z, lo, hi);
        break;
      case RoundingMode::HalfAwayFromZero:
        fake_quant_loop<RoundingMode::HalfAwayFromZero>(in, o, n, s, z, lo, hi);
        break;
      case RoundingMode::Floor:
        fake_quant_loop<RoundingMode::Floor>(in, o, n, s, z, lo, hi);
        break;
      case RoundingMode::Ceil:
        fake_quant_loop<RoundingMode::Ceil>(in, o, n, s, z, lo, hi);
        break;
      case RoundingMode::TowardZero:
        fake_quant_loop<RoundingMode::TowardZero>(in, o, n, s, z, lo, hi);
        break;
    }
    return out;
  }
  auto [s, z] = scale_tensors(c, x.dim(), x.options());
  return fake_quantize(x, s, z, c.quant_min, c.quant_max, c.rounding);
}

}  // namespace edgequant::quant
