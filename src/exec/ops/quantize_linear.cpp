// QuantizeLinear / DequantizeLinear (ONNX opset 10+): y = saturate(round_half_even(x / scale) + zp)
// and x = (q - zp) * scale, per tensor or per axis. Lets the float executor run QDQ files (the
// exporters' own output, and other tools'); mismatched scale/zero-point shapes name the node.
#include <ATen/ATen.h>

#include "edgequant/error.h"
#include "exec/ops/factories.h"

namespace edgequant::exec {

namespace {
// Scale (and zero point) broadcast along `axis` of x; checks the shapes agree.
std::pair<at::Tensor, at::Tensor> scale_and_zero(const Op& op, const at::Tensor& x, const at::Tensor& scale, const at::Tensor& zp,
                                                  int64_t axis) {
  auto bad = [&](const std::string& what) { fail(ErrorCode::InvalidModel, "node '" + op.name + "' (" + op.type + "): " + what); };
  if (scale.dim() > 1) bad("scale must be a scalar or 1-D, got rank " + std::to_string(scale.dim()));
  if (zp.defined() && zp.sizes() != scale.sizes())
    bad("zero point shape " + std::string(c10::str(zp.sizes())) + " differs from scale shape " + std::string(c10::str(scale.sizes())));
  if (scale.dim() == 0 || scale.numel() == 1) {
    at::Tensor s = scale.reshape({});
    return {s, zp.defined() ? zp.reshape({}) : at::Tensor()};
  }
  int64_t a = axis < 0 ? axis + x.dim() : axis;
  if (a < 0 || a >= x.dim()) bad("axis " + std::to_string(axis) + " out of range for rank " + std::to_string(x.dim()));
  if (scale.numel() != x.size(a))
    bad(std::to_string(scale.numel()) + " scales for axis " + std::to_string(a) + " of size " + std::to_string(x.size(a)));
  std::vector<int64_t> shape(size_t(x.dim()), 1);
  shape[size_t(a)] = scale.numel();
  return {scale.reshape(shape), zp.defined() ? zp.reshape(shape) : at::Tensor()};
}
}  // namespace

Kernel make_quantize_linear(const Op& op, int64_t) {
  if (op.attr_int("block_size", 0) != 0) unsupported(op, "block_size (opset 21 blocked quantization)");
  int64_t axis = op.attr_int("axis", 1);
  return [op, axis](const Tensors& in) -> Tensors {
    at::Tensor zp = in.size() > 2 ? in[2] : at::Tensor();
    auto [s, z] = scale_and_zero(op, in[0], in[1], zp, axis);
    at::ScalarType out = z.defined() ? z.scalar_type() : at::kByte;
    if (out != at::kByte && out != at::kChar)
      fail(ErrorCode::Unsupported, "node '" + op.name + "' (QuantizeLinear): zero point type must be int8 or uint8");
    double lo = out == at::kByte ? 0 : -128, hi = out == at::kByte ? 255 : 127;
    at::Tensor q = at::round(in[0].to(at::kFloat) / s.to(at::kFloat));  // ties to even, as ONNX specifies
    if (z.defined()) q = q + z.to(at::kFloat);
    return {at::clamp(q, lo, hi).to(out)};
  };
}

Kernel make_dequantize_linear(const Op& op, int64_t) {
  if (op.attr_int("block_size", 0) != 0) unsupported(op, "block_size (opset 21 blocked quantization)");
  int64_t axis = op.attr_int("axis", 1);
  return [op, axis](const Tensors& in) -> Tensors {
    at::Tensor zp = in.size() > 2 ? in[2] : at::Tensor();
    auto [s, z] = scale_and_zero(op, in[0], in[1], zp, axis);
    if (z.defined() && z.scalar_type() != in[0].scalar_type())
      fail(ErrorCode::InvalidModel, "node '" + op.name + "' (DequantizeLinear): zero point type differs from the input's");
    at::Tensor x = in[0].to(at::kFloat);
    if (z.defined()) x = x - z.to(at::kFloat);
    return {x * s.to(at::kFloat)};
  };
}

}  // namespace edgequant::exec
