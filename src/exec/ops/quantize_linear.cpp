// QuantizeLinear / DequantizeLinear (ONNX opset 10+): y = saturate(round_half_even(x / scale) + zp)
// and x = (q - zp) * scale, per tensor, per axis or (opset 21) per block along an axis, with
// int8/uint8, int16 and 4-bit codes. Lets the float executor run QDQ files (the
// exporters' own output, and other tools'); mismatched scale/zero-point shapes name the node.
// The operator-format ops of already-quantized models (ONNX Runtime's QOperator output, TFLite
// conversions): QLinearConv, QLinearMatMul, ConvInteger, MatMulInteger, DynamicQuantizeLinear.
// Their integer products are computed in float64 (exact: codes are 8-bit), then requantized.
#include <ATen/ATen.h>

#include "edgequant/error.h"
#include "exec/ops/factories.h"

namespace edgequant::exec {

namespace {
// Scale (and zero point) broadcast along `axis` of x; checks the shapes agree.
std::pair<at::Tensor, at::Tensor> scale_and_zero(const Op& op, const at::Tensor& x, const at::Tensor& scale,
                                                 const at::Tensor& zp, int64_t axis) {
  auto bad = [&](const std::string& what) {
    fail(ErrorCode::InvalidModel, "node '" + op.name + "' (" + op.type + "): " + what);
  };
  if (scale.dim() > 1) bad("scale must be a scalar or 1-D, got rank " + std::to_string(scale.dim()));
  if (zp.defined() && zp.sizes() != scale.sizes())
    bad("zero point shape " + std::string(c10::str(zp.sizes())) + " differs from scale shape " +
        std::string(c10::str(scale.sizes())));
  if (scale.dim() == 0 || scale.numel() == 1) {
    at::Tensor s = scale.reshape({});
    return {s, zp.defined() ? zp.reshape({}) : at::Tensor()};
  }
  int64_t a = axis < 0 ? axis + x.dim() : axis;
  if (a < 0 || a >= x.dim()) bad("axis " + std::to_string(axis) + " out of range for rank " + std::to_string(x.dim()));
  if (scale.numel() != x.size(a))
    bad(std::to_string(scale.numel()) + " scales for axis " + std::to_string(a) + " of size " +
        std::to_string(x.size(a)));
  std::vector<int64_t> shape(size_t(x.dim()), 1);
  shape[size_t(a)] = scale.numel();
  return {scale.reshape(shape), zp.defined() ? zp.reshape(shape) : at::Tensor()};
}

// Opset 21's blocked form: `t` (a scale or zero point) has x's rank, and along `axis` one entry
// per `block` consecutive values of x (the last block may be shorter); repeated to x's shape.
at::Tensor expand_blocks(const Op& op, const at::Tensor& x, const at::Tensor& t, int64_t axis, int64_t block) {
  auto bad = [&](const std::string& what) { fail(ErrorCode::InvalidModel, op.describe() + ": " + what); };
  if (block < 0) bad("block_size must be positive, got " + std::to_string(block));
  int64_t a = axis < 0 ? axis + x.dim() : axis;
  if (a < 0 || a >= x.dim()) bad("axis " + std::to_string(axis) + " out of range for rank " + std::to_string(x.dim()));
  if (t.dim() != x.dim())
    bad("a blocked scale or zero point needs the input's rank " + std::to_string(x.dim()) + ", got " +
        std::to_string(t.dim()));
  for (int64_t d = 0; d < x.dim(); ++d) {
    int64_t want = d == a ? (x.size(d) + block - 1) / block : x.size(d);
    if (t.size(d) != want)
      bad("blocked scale/zero point shape " + std::string(c10::str(t.sizes())) + " does not fit input " +
          std::string(c10::str(x.sizes())) + " with block_size " + std::to_string(block) + " on axis " +
          std::to_string(a));
  }
  return t.repeat_interleave(block, a).narrow(a, 0, x.size(a));
}

std::pair<at::Tensor, at::Tensor> scales_for(const Op& op, const at::Tensor& x, const at::Tensor& scale,
                                             const at::Tensor& zp, int64_t axis, int64_t block) {
  if (block == 0) return scale_and_zero(op, x, scale, zp, axis);
  if (zp.defined() && zp.sizes() != scale.sizes())
    fail(ErrorCode::InvalidModel, op.describe() + ": zero point shape " + std::string(c10::str(zp.sizes())) +
                                      " differs from scale shape " + std::string(c10::str(scale.sizes())));
  return {expand_blocks(op, x, scale, axis, block),
          zp.defined() ? expand_blocks(op, x, zp, axis, block) : at::Tensor()};
}

// The code range of a QuantizeLinear output type (4-bit codes are held in int8/uint8 tensors).
std::pair<double, double> code_range(const Op& op, DType type) {
  switch (type) {
    case DType::UInt8:
      return {0, 255};
    case DType::Int8:
      return {-128, 127};
    case DType::Int16:
      return {-32768, 32767};
    case DType::UInt4:
      return {0, 15};
    case DType::Int4:
      return {-8, 7};
    default:
      fail(ErrorCode::Unsupported, op.describe() + ": " + dtype_name(type) +
                                       " codes are not supported (int4, uint4, int8, uint8 and int16 are)");
  }
}
}  // namespace

DType quantize_linear_output_type(const Op& op) {
  if (op.inputs.size() > 2 && op.inputs[2] && op.inputs[2]->dtype != DType::Undefined) return op.inputs[2]->dtype;
  int64_t declared = op.attr_int("output_dtype", 0);  // opset 21, when there is no zero point
  return declared != 0 ? static_cast<DType>(declared) : DType::UInt8;
}

Kernel make_quantize_linear(const Op& op, int64_t) {
  int64_t axis = op.attr_int("axis", 1), block = op.attr_int("block_size", 0);
  const DType type = quantize_linear_output_type(op);
  if (op.inputs.size() > 2 && op.inputs[2] && op.attr_int("output_dtype", 0) != 0 &&
      op.attr_int("output_dtype", 0) != static_cast<int64_t>(op.inputs[2]->dtype))
    fail(ErrorCode::InvalidModel, op.describe() + ": output_dtype differs from the zero point's type");
  const auto [lo, hi] = code_range(op, type);
  const at::ScalarType out = to_scalar_type(type);
  return [op, axis, block, lo, hi, out](const Tensors& in) -> Tensors {
    at::Tensor zp = in.size() > 2 ? in[2] : at::Tensor();
    auto [s, z] = scales_for(op, in[0], in[1], zp, axis, block);
    at::Tensor q = at::round(in[0].to(at::kFloat) / s.to(at::kFloat));  // ties to even, as ONNX specifies
    if (z.defined()) q = q + z.to(at::kFloat);
    return {at::clamp(q, lo, hi).to(out)};
  };
}

Kernel make_dequantize_linear(const Op& op, int64_t) {
  int64_t axis = op.attr_int("axis", 1), block = op.attr_int("block_size", 0);
  return [op, axis, block](const Tensors& in) -> Tensors {
    at::Tensor zp = in.size() > 2 ? in[2] : at::Tensor();
    auto [s, z] = scales_for(op, in[0], in[1], zp, axis, block);
    if (z.defined() && z.scalar_type() != in[0].scalar_type())
      fail(ErrorCode::InvalidModel,
           "node '" + op.name + "' (DequantizeLinear): zero point type differs from the input's");
    at::Tensor x = in[0].to(at::kFloat);
    if (z.defined()) x = x - z.to(at::kFloat);
    return {x * s.to(at::kFloat)};
  };
}

namespace {
// The zero point as a tensor broadcasting over `rank` dims along `axis` (scalar or 1-D per
// channel), or 0 when absent.
at::Tensor along(const at::Tensor& t, int64_t rank, int64_t axis, const Op& op, const char* what) {
  if (!t.defined() || t.numel() == 0) return at::zeros({}, at::kDouble);
  if (t.numel() == 1) return t.reshape({}).to(at::kDouble);
  if (t.dim() != 1 || axis < 0 || axis >= rank)
    fail(ErrorCode::InvalidModel, op.describe() + ": " + what + " must be a scalar or 1-D per channel");
  std::vector<int64_t> shape(static_cast<size_t>(rank), 1);
  shape[static_cast<size_t>(axis)] = t.numel();
  return t.reshape(shape).to(at::kDouble);
}

// The integer convolution of (x - x_zp) and (w - w_zp), w_zp per output channel or scalar, with
// Conv's attributes (the padding is the real zero, x_zp in codes).
at::Tensor integer_conv(const Op& op, const WindowAttrs& a, const at::Tensor& x, const at::Tensor& w,
                        const at::Tensor& x_zp, const at::Tensor& w_zp) {
  if (x.dim() < 3 || w.dim() != x.dim())
    fail(ErrorCode::InvalidInput, op.describe() + ": input and weight ranks differ or are below 3");
  if (x_zp.defined() && x_zp.numel() > 1)
    fail(ErrorCode::InvalidModel, op.describe() + ": x_zero_point must be a scalar");
  size_t nd = static_cast<size_t>(x.dim() - 2);
  at::Tensor xd = x.to(at::kDouble) - along(x_zp, x.dim(), 1, op, "x_zero_point");
  at::Tensor wd = w.to(at::kDouble) - along(w_zp, w.dim(), 0, op, "w_zero_point");
  std::vector<int64_t> kernel(w.sizes().begin() + 2, w.sizes().end());
  auto strides = or_ones(a.strides, nd), dil = or_ones(a.dilations, nd);
  auto pads = resolve_pads(a.auto_pad, a.pads, x.sizes().slice(2), kernel, strides, dil);
  std::vector<int64_t> padding(pads.begin(), pads.begin() + static_cast<int64_t>(nd));
  if (!pads_symmetric(pads)) {
    xd = at::constant_pad_nd(xd, aten_pad_list(pads), 0);
    padding.assign(nd, 0);
  }
  // Float32 is exact when no partial sum can reach 2^24 (every product and sum is then an integer
  // float32 holds, in any order): oneDNN's float kernels instead of ATen's float64 ones.
  const int64_t reduction = w.numel() / std::max<int64_t>(1, w.size(0));
  const double bound = double(reduction) * xd.abs().max().item<double>() * wd.abs().max().item<double>();
  const bool exact_in_float = bound < double(1 << 24);
  if (exact_in_float) {
    xd = xd.to(at::kFloat);
    wd = wd.to(at::kFloat);
  }
  at::Tensor y =
      at::convolution(xd, wd, at::Tensor(), strides, padding, dil, false, std::vector<int64_t>(nd, 0), a.group);
  return exact_in_float ? y.to(at::kDouble) : y;
}

// round_half_even(acc * multiplier) + zp, saturated to the zero point's type (uint8 when absent).
at::Tensor requantize(const Op& op, const at::Tensor& acc, const at::Tensor& multiplier, const at::Tensor& y_zp) {
  at::ScalarType out = y_zp.defined() ? y_zp.scalar_type() : at::kByte;
  if (out != at::kByte && out != at::kChar)
    fail(ErrorCode::Unsupported, op.describe() + ": output zero point type must be int8 or uint8");
  const auto [lo, hi] = code_range(op, from_scalar_type(out));
  at::Tensor q = at::round(acc * multiplier.to(at::kDouble));
  if (y_zp.defined()) q = q + y_zp.reshape({}).to(at::kDouble);
  return at::clamp(q, lo, hi).to(out);
}

// x_scale * w_scale / y_scale in float32 (as the scales are stored), broadcast along `axis`.
at::Tensor multiplier(const Op& op, const at::Tensor& a_scale, const at::Tensor& b_scale, const at::Tensor& y_scale,
                      int64_t rank, int64_t a_axis, int64_t b_axis) {
  if (y_scale.numel() != 1) fail(ErrorCode::InvalidModel, op.describe() + ": y_scale must be a scalar");
  at::Tensor a = along(a_scale, rank, a_axis, op, "the input scale").to(at::kFloat);
  at::Tensor b = along(b_scale, rank, b_axis, op, "the weight scale").to(at::kFloat);
  return a * b / y_scale.reshape({}).to(at::kFloat);
}
}  // namespace

// QLinearConv(x, x_scale, x_zp, w, w_scale, w_zp, y_scale, y_zp, B?): int32 bias in x_scale * w_scale.
Kernel make_qlinear_conv(const Op& op, int64_t) {
  WindowAttrs a = read_window_attrs(op);
  Op desc = op;
  return [a, desc](const Tensors& in) -> Tensors {
    at::Tensor acc = integer_conv(desc, a, in[0], in[3], in[2], in[5]);
    if (in.size() > 8 && in[8].defined()) acc = acc + along(in[8], acc.dim(), 1, desc, "B");
    return {requantize(desc, acc, multiplier(desc, in[1], in[4], in[6], acc.dim(), -1, 1), in[7])};
  };
}

// ConvInteger(x, w, x_zp?, w_zp?) -> int32.
Kernel make_conv_integer(const Op& op, int64_t) {
  WindowAttrs a = read_window_attrs(op);
  Op desc = op;
  return [a, desc](const Tensors& in) -> Tensors {
    at::Tensor x_zp = in.size() > 2 ? in[2] : at::Tensor(), w_zp = in.size() > 3 ? in[3] : at::Tensor();
    return {integer_conv(desc, a, in[0], in[1], x_zp, w_zp).to(at::kInt)};
  };
}

namespace {
// (a - a_zp) @ (b - b_zp) in float64; a_zp per row (the second-to-last axis of a) or scalar,
// b_zp per column (the last axis of b) or scalar.
at::Tensor integer_matmul(const Op& op, const at::Tensor& a, const at::Tensor& b, const at::Tensor& a_zp,
                          const at::Tensor& b_zp) {
  if (a.dim() < 1 || b.dim() < 1) fail(ErrorCode::InvalidInput, op.describe() + ": MatMul inputs need rank >= 1");
  at::Tensor ad = a.to(at::kDouble) - along(a_zp, a.dim(), a.dim() - 2, op, "a_zero_point");
  at::Tensor bd = b.to(at::kDouble) - along(b_zp, b.dim(), b.dim() - 1, op, "b_zero_point");
  // Exact in float32 below 2^24, as for integer_conv.
  const double bound = double(a.size(-1)) * ad.abs().max().item<double>() * bd.abs().max().item<double>();
  if (bound < double(1 << 24)) return at::matmul(ad.to(at::kFloat), bd.to(at::kFloat)).to(at::kDouble);
  return at::matmul(ad, bd);
}
}  // namespace

Kernel make_matmul_integer(const Op& op, int64_t) {
  Op desc = op;
  return [desc](const Tensors& in) -> Tensors {
    at::Tensor a_zp = in.size() > 2 ? in[2] : at::Tensor(), b_zp = in.size() > 3 ? in[3] : at::Tensor();
    return {integer_matmul(desc, in[0], in[1], a_zp, b_zp).to(at::kInt)};
  };
}

// QLinearMatMul(a, a_scale, a_zp, b, b_scale, b_zp, y_scale, y_zp).
Kernel make_qlinear_matmul(const Op& op, int64_t) {
  Op desc = op;
  return [desc](const Tensors& in) -> Tensors {
    at::Tensor acc = integer_matmul(desc, in[0], in[3], in[2], in[5]);
    int64_t r = acc.dim();
    return {requantize(desc, acc, multiplier(desc, in[1], in[4], in[6], r, r - 2, r - 1), in[7])};
  };
}

// DynamicQuantizeLinear(x) -> (y uint8, y_scale, y_zero_point): the range [min(x, 0), max(x, 0)]
// over 0..255, in float32 as ONNX's reference computes it. An all-zero x gets scale 0, zero point 0.
Kernel make_dynamic_quantize_linear(const Op&, int64_t) {
  return [](const Tensors& in) -> Tensors {
    at::Tensor x = in[0].to(at::kFloat);
    at::Tensor lo = at::clamp_max(x.numel() ? x.min() : at::zeros({}), 0.0),
               hi = at::clamp_min(x.numel() ? x.max() : at::zeros({}), 0.0);
    at::Tensor scale = (hi - lo) / 255.0f;
    if (scale.item<float>() == 0.0f) return {at::zeros(x.sizes(), at::kByte), scale, at::zeros({}, at::kByte)};
    at::Tensor zp = at::round(at::clamp(0.0f - lo / scale, 0.0, 255.0));
    at::Tensor y = at::clamp(at::round(x / scale) + zp, 0.0, 255.0);
    return {y.to(at::kByte), scale, zp.to(at::kByte)};
  };
}

}  // namespace edgequant::exec
