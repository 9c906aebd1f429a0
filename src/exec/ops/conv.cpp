// Convolution, transposed convolution and matrix products.
#include <ATen/ATen.h>

#include "exec/blas.h"
#include "exec/onednn_conv.h"
#include "exec/ops/factories.h"

namespace edgequant::exec {

namespace {
Kernel conv_kernel(const Op& op, std::optional<ClampPostOp> clamp) {
  WindowAttrs a = read_window_attrs(op);
  std::string where = op.describe();
  auto onednn = std::make_shared<OneDnnConv2d>(clamp);
  return [a, where, clamp, onednn](const Tensors& in) -> Tensors {
    at::Tensor x = in[0];
    const at::Tensor& w = in[1];
    at::Tensor b = in.size() > 2 ? in[2] : at::Tensor();
    size_t nd = static_cast<size_t>(x.dim() - 2);
    if (nd < 1 || nd > 3) fail(ErrorCode::Unsupported, where + ": only 1-D, 2-D and 3-D convolutions are supported");
    std::vector<int64_t> kernel(w.sizes().begin() + 2, w.sizes().end());
    auto strides = or_ones(a.strides, nd), dil = or_ones(a.dilations, nd);
    auto pads = resolve_pads(a.auto_pad, a.pads, x.sizes().slice(2), kernel, strides, dil);
    if (nd == 2 && OneDnnConv2d::applies(x, w, b)) {
      Conv2dGeometry geometry{strides, dil, {pads[0], pads[1]}, {pads[2], pads[3]}, a.group};
      at::Tensor y = onednn->run(x, w, b, geometry);
      if (y.defined()) return {y};
    }
    std::vector<int64_t> padding(pads.begin(), pads.begin() + nd);
    if (!pads_symmetric(pads)) {
      x = at::constant_pad_nd(x, aten_pad_list(pads), 0);
      padding.assign(nd, 0);
    }
    // channels_last lets oneDNN pick its fast NHWC kernels (weights are stored channels_last too).
    if (nd == 2 && w.is_contiguous(at::MemoryFormat::ChannelsLast)) x = x.contiguous(at::MemoryFormat::ChannelsLast);
    at::Tensor y = at::convolution(x, w, b, strides, padding, dil, false, std::vector<int64_t>(nd, 0), a.group);
    if (clamp) y = at::clamp(y, clamp->lo, clamp->hi);
    return {y};
  };
}
}  // namespace

Kernel make_conv(const Op& op, int64_t) { return conv_kernel(op, std::nullopt); }

Kernel make_conv_clamped(const Op& op, ClampPostOp clamp) { return conv_kernel(op, clamp); }

// DeformConv (opset 19, 2-D): each kernel tap samples the input at its regular position moved by
// a learned offset (bilinear, zero outside the input, as GridSample with align_corners), scaled
// by the optional mask; the sampled columns are then convolved by grouped matrix products.
// offset is [N, offset_group * kH * kW * 2 (dy, dx), oH, oW]; the output grid is offset's.
Kernel make_deform_conv(const Op& op, int64_t) {
  WindowAttrs a = read_window_attrs(op);
  int64_t offset_groups = op.attr_int("offset_group", 1);
  Op desc = op;
  return [a, offset_groups, desc](const Tensors& in) -> Tensors {
    const at::Tensor &x = in[0], &w = in[1], &offset = in[2];
    at::Tensor bias = in.size() > 3 ? in[3] : at::Tensor(), mask = in.size() > 4 ? in[4] : at::Tensor();
    auto bad = [&](const std::string& why) { fail(ErrorCode::InvalidInput, desc.describe() + ": " + why); };
    if (x.dim() != 4 || w.dim() != 4 || offset.dim() != 4) bad("DeformConv runs 2-D inputs [N, C, H, W] only");
    int64_t n = x.size(0), c = x.size(1), h = x.size(2), wd = x.size(3), oc = w.size(0), kh = w.size(2), kw = w.size(3);
    int64_t group = a.group, og = offset_groups, taps = kh * kw;
    if (group < 1 || og < 1 || c != w.size(1) * group || oc % group != 0 || c % og != 0)
      bad("channels " + std::to_string(c) + ", weight " + shape_str(Shape(w.sizes().begin(), w.sizes().end())) +
          ", group " + std::to_string(group) + " and offset_group " + std::to_string(og) + " do not fit");
    if (!a.kernel.empty() && (a.kernel.size() != 2 || a.kernel[0] != kh || a.kernel[1] != kw))
      bad("kernel_shape differs from the weight's");
    auto strides = or_ones(a.strides, 2), dil = or_ones(a.dilations, 2);
    std::vector<int64_t> pads = a.pads.empty() ? std::vector<int64_t>(4, 0) : a.pads;
    if (pads.size() != 4 || strides[0] < 1 || strides[1] < 1 || dil[0] < 1 || dil[1] < 1)
      bad("bad pads, strides or dilations");
    int64_t oh = (h + pads[0] + pads[2] - (dil[0] * (kh - 1) + 1)) / strides[0] + 1;
    int64_t ow = (wd + pads[1] + pads[3] - (dil[1] * (kw - 1) + 1)) / strides[1] + 1;
    if (oh < 1 || ow < 1 || offset.size(0) != n || offset.size(1) != og * taps * 2 || offset.size(2) != oh ||
        offset.size(3) != ow)
      bad("offset must be [" + std::to_string(n) + ", " + std::to_string(og * taps * 2) + ", " + std::to_string(oh) +
          ", " + std::to_string(ow) + "], got " + shape_str(Shape(offset.sizes().begin(), offset.sizes().end())));
    if (mask.defined() &&
        (mask.dim() != 4 || mask.size(0) != n || mask.size(1) != og * taps || mask.size(2) != oh || mask.size(3) != ow))
      bad("mask must be [" + std::to_string(n) + ", " + std::to_string(og * taps) + ", " + std::to_string(oh) + ", " +
          std::to_string(ow) + "]");
    if (bias.defined() && bias.numel() != oc) bad("bias must hold " + std::to_string(oc) + " values");
    auto opts = x.options();
    // Sampling positions [N, og, taps, oH*oW]: the tap's place in the window plus its offset.
    at::Tensor off = offset.to(x.scalar_type()).reshape({n, og, taps, 2, oh * ow});
    at::Tensor ky = at::arange(kh, opts).mul(dil[0]).repeat_interleave(kw),
               kx = at::arange(kw, opts).mul(dil[1]).repeat({kh});
    at::Tensor oy = at::arange(oh, opts).mul(strides[0]).sub(pads[0]).repeat_interleave(ow);
    at::Tensor ox = at::arange(ow, opts).mul(strides[1]).sub(pads[1]).repeat({oh});
    at::Tensor py = off.select(3, 0) + (ky.view({taps, 1}) + oy.view({1, -1}));
    at::Tensor px = off.select(3, 1) + (kx.view({taps, 1}) + ox.view({1, -1}));
    // Bilinear: four corners, each weighted and zeroed when outside the input.
    at::Tensor y0 = py.floor(), x0 = px.floor(), fy = py - y0, fx = px - x0;
    int64_t cg = c / og, l = taps * oh * ow;
    at::Tensor planes = x.reshape({n, og, cg, h * wd});
    at::Tensor sampled = at::zeros({n, og, cg, l}, opts);
    for (int dy = 0; dy < 2; ++dy)
      for (int dx = 0; dx < 2; ++dx) {
        at::Tensor yy = y0 + dy, xx = x0 + dx;
        at::Tensor weight = (dy ? fy : 1 - fy) * (dx ? fx : 1 - fx);
        at::Tensor inside = (yy >= 0) & (yy <= h - 1) & (xx >= 0) & (xx <= wd - 1);  // NaN positions are outside
        at::Tensor index = (yy.clamp(0, h - 1) * wd + xx.clamp(0, wd - 1)).nan_to_num(0).to(at::kLong);
        at::Tensor corner = planes.gather(3, index.reshape({n, og, 1, l}).expand({n, og, cg, l}));
        sampled += corner * at::where(inside, weight, at::zeros_like(weight)).reshape({n, og, 1, l});
      }
    if (mask.defined()) sampled = sampled * mask.to(x.scalar_type()).reshape({n, og, 1, l});
    // Columns [N, group, C/group * taps, oH*oW] times weights [group, oC/group, C/group * taps].
    at::Tensor columns = sampled.reshape({n, group, (c / group) * taps, oh * ow});
    at::Tensor weights = w.to(x.scalar_type()).reshape({group, oc / group, (c / group) * taps});
    at::Tensor y = at::matmul(weights.unsqueeze(0), columns).reshape({n, oc, oh, ow});
    if (bias.defined()) y = y + bias.to(x.scalar_type()).reshape({1, oc, 1, 1});
    return {y};
  };
}

Kernel make_conv_transpose(const Op& op, int64_t) {
  WindowAttrs a = read_window_attrs(op);
  std::vector<int64_t> output_padding = op.attr_ints("output_padding");
  std::vector<int64_t> output_shape = op.attr_ints("output_shape");
  return [a, output_padding, output_shape](const Tensors& in) -> Tensors {
    const at::Tensor& x = in[0];
    const at::Tensor& w = in[1];
    size_t nd = static_cast<size_t>(x.dim() - 2);
    std::vector<int64_t> kernel(w.sizes().begin() + 2, w.sizes().end());
    auto strides = or_ones(a.strides, nd), dil = or_ones(a.dilations, nd);
    std::vector<int64_t> opad = output_padding.empty() ? std::vector<int64_t>(nd, 0) : output_padding;
    std::vector<int64_t> pads = a.pads.empty() ? std::vector<int64_t>(2 * nd, 0) : a.pads;
    if (!output_shape.empty() || a.auto_pad == "SAME_UPPER" || a.auto_pad == "SAME_LOWER") {
      for (size_t i = 0; i < nd; ++i) {
        int64_t target =
            !output_shape.empty() ? output_shape[output_shape.size() - nd + i] : x.size(2 + i) * strides[i];
        int64_t total = strides[i] * (x.size(2 + i) - 1) + opad[i] + (kernel[i] - 1) * dil[i] + 1 - target;
        // Floor division: a negative total (output_shape larger than the natural size) adds
        // the extra rows at the end, as ONNX Runtime does.
        int64_t half = total >= 0 ? total / 2 : -((-total + 1) / 2);
        if (a.auto_pad == "SAME_UPPER") {
          pads[i] = half;
          pads[i + nd] = total - half;
        } else {
          pads[i] = total - half;
          pads[i + nd] = half;
        }
      }
    } else if (a.auto_pad == "VALID") {
      pads.assign(2 * nd, 0);
    }
    // Full transposed conv without padding, then crop begin/end pads (negative crop = zero pad
    // for output_padding), then bias: handles asymmetric pads ATen cannot express.
    at::Tensor y = at::convolution(x, w, {}, strides, std::vector<int64_t>(nd, 0), dil, true,
                                   std::vector<int64_t>(nd, 0), a.group);
    std::vector<int64_t> crop(2 * nd);
    for (size_t i = 0; i < nd; ++i) {
      crop[i] = -pads[i];
      crop[i + nd] = -(pads[i + nd] - opad[i]);
    }
    y = at::constant_pad_nd(y, aten_pad_list(crop), 0);
    if (in.size() > 2 && in[2].defined()) {
      std::vector<int64_t> shape(static_cast<size_t>(y.dim()), 1);
      shape[1] = in[2].size(0);
      y = y + in[2].reshape(shape);
    }
    return {y};
  };
}

Kernel make_gemm(const Op& op, int64_t) {
  double alpha = op.attr_float("alpha", 1.0f), beta = op.attr_float("beta", 1.0f);
  bool trans_a = op.attr_int("transA", 0) != 0, trans_b = op.attr_int("transB", 0) != 0;
  return [=](const Tensors& in) -> Tensors {
    at::Tensor a = trans_a ? in[0].t() : in[0];
    at::Tensor b = trans_b ? in[1].t() : in[1];
    at::Tensor y = parallel_mm(a, b);
    if (alpha != 1.0) y = y * alpha;
    if (in.size() > 2 && in[2].defined() && beta != 0.0) y = y + (beta == 1.0 ? in[2] : in[2] * beta);
    return {y};
  };
}

Kernel make_matmul(const Op&, int64_t) {
  return [](const Tensors& in) -> Tensors { return {parallel_matmul(in[0], in[1])}; };
}

Kernel make_einsum(const Op& op, int64_t) {
  std::string equation = op.attr_string("equation", "");
  if (equation.empty()) unsupported(op, "an empty equation");
  return [equation](const Tensors& in) -> Tensors { return {at::einsum(equation, in)}; };
}

// Det of the trailing square matrices.
Kernel make_det(const Op& op, int64_t) {
  Op desc = op;
  return [desc](const Tensors& in) -> Tensors {
    const at::Tensor& x = in[0];
    if (x.dim() < 2 || x.size(-1) != x.size(-2))
      fail(ErrorCode::InvalidInput, desc.describe() + ": Det needs square matrices in the last two dims");
    return {at::linalg_det(x)};
  };
}

}  // namespace edgequant::exec
