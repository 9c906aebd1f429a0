// Fake quantization: x -> (clamp(round(x/s) + z, qmin, qmax) - z) * s with the target's rounding
// mode, per-tensor or per-channel. Differentiable when autograd is on: rounding passes the
// gradient straight through, clamping gives zero gradient outside the range (TQT/LSQ/QAT).
#pragma once
#include <ATen/core/Tensor.h>

#include "ir/quant_config.h"

namespace edgequant::quant {

// The ATen form of core/intmath's round_value (same modes, elementwise).
at::Tensor round_tensor(const at::Tensor& x, RoundingMode mode);

// Integer codes clamp(round(x/s)+z) as a float tensor (exact for |q| < 2^24).
at::Tensor quantize_codes(const at::Tensor& x, const QuantConfig& c);
at::Tensor fake_quantize(const at::Tensor& x, const QuantConfig& c);
// Same with explicit scale/zero-point tensors (shaped to broadcast against x), e.g. trained scales.
at::Tensor fake_quantize(const at::Tensor& x, const at::Tensor& scale, const at::Tensor& zero_point, int64_t qmin,
                         int64_t qmax, RoundingMode mode);
// The same with autograd as one pass forward and one backward, the same bits as the ATen chain
// (fake_quant_grad.cpp); applies to float32 CPU tensors when x or the scale requires grad.
bool fused_gradient_applies(const at::Tensor& x, const at::Tensor& scale, const at::Tensor& zero_point);
at::Tensor fake_quantize_with_gradient(const at::Tensor& x, const at::Tensor& scale, const at::Tensor& zero_point,
                                       int64_t qmin, int64_t qmax, RoundingMode mode);
// Scale/zero-point tensors of a config, shaped to broadcast along its axis for a rank-`rank` tensor.
std::pair<at::Tensor, at::Tensor> scale_tensors(const QuantConfig& c, int64_t rank, const at::TensorOptions& opts);

}  // namespace edgequant::quant
