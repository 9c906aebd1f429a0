// Resize on channels-last activations as ESP-DL computes it (dl_base_resize.cpp): scales/sizes
// in ONNX (NCHW) order; nearest = asymmetric floor, y = round(x * 2^(e_in - e_out)); linear =
// half_pixel (or align_corners) bilinear in float32, rows first, then round(v * 2^-e_out).
#include <algorithm>
#include <cmath>

#include "runtime/kernels/kernels.h"

namespace edgequant::runtime {

namespace {
struct Coeff {
  int index;
  float r0, r1;
};

Coeff linear_coeff(int out, int in_len, float scale_inv, bool align_corners) {
  float fx = align_corners ? float(out) * scale_inv : (float(out) + 0.5f) * scale_inv - 0.5f;
  int i = static_cast<int>(std::floor(fx));
  fx -= float(i);
  if (i < 0) {
    i = 0;
    fx = 0.f;
  }
  if (i >= in_len - 1) {
    i = in_len - 2;
    fx = 1.f;
  }
  return {i, 1.f - fx, fx};
}
}  // namespace

EQ_RUNTIME_KERNEL(resize_kernel) {
  const IntTensor& x = args.in(0);
  IntTensor& y = args.out();
  if (x.is_float() || x.shape.size() != 4) args.fail_node("Resize needs a 4-D integer input");
  int64_t n = x.shape[0], h = x.shape[1], w = x.shape[2], c = x.shape[3];
  std::string mode = args.node.attr_string("mode", "nearest");
  std::string ctm = args.node.attr_string("coordinate_transformation_mode", "half_pixel");
  // Opset 18's extensions have no ESP-DL counterpart: scales/sizes cover all four axes here.
  if (args.node.attr_int("antialias", 0) != 0 || args.node.attrs.count("axes") ||
      args.node.attr_string("keep_aspect_ratio_policy", "stretch") != "stretch")
    args.fail_node("Resize with antialias, axes or keep_aspect_ratio_policy has no integer kernel");
  float sh = 1, sw = 1;
  int64_t oh = h, ow = w;
  const IntTensor* sizes = args.inputs.size() > 3 ? args.inputs[3] : nullptr;
  const IntTensor* scales = args.inputs.size() > 2 ? args.inputs[2] : nullptr;
  if (sizes && sizes->numel() == 4 && !sizes->is_float()) {
    oh = sizes->ints[2];
    ow = sizes->ints[3];
    if (oh < 0 || ow < 0 || oh > (int64_t(1) << 20) || ow > (int64_t(1) << 20)) args.fail_node("sizes out of range");
    sh = float(oh) / float(h);
    sw = float(ow) / float(w);
  } else if (scales && scales->numel() == 4 && scales->is_float()) {
    sh = scales->floats[2];
    sw = scales->floats[3];
    if (!(sh > 0 && sh < 4096 && sw > 0 && sw < 4096)) args.fail_node("scales out of range");
    oh = static_cast<int64_t>(float(h) * sh);
    ow = static_cast<int64_t>(float(w) * sw);
  } else {
    args.fail_node("needs 4 scales (float) or 4 sizes");
  }
  if (!(sh > 0) || !(sw > 0) || !(sh < 4096) || !(sw < 4096) || h < 1 || w < 1 || oh < 0 || ow < 0)
    args.fail_node("scales and sizes must be positive and below 4096x");
  set_output(args, y, {n, oh, ow, c});
  float sh_inv = 1.f / sh, sw_inv = 1.f / sw;
  int shift = y.exponent() - x.exponent();
  if (mode == "nearest") {
    if (ctm != "asymmetric" || args.node.attr_string("nearest_mode", "round_prefer_floor") != "floor")
      args.fail_node("nearest Resize runs as asymmetric/floor on ESP-DL; got " + ctm);
    for (int64_t b = 0; b < n; ++b)
      for (int64_t i = 0; i < oh; ++i) {
        int64_t iy = std::min<int64_t>(static_cast<int64_t>(float(i) * sh_inv), h - 1);
        for (int64_t j = 0; j < ow; ++j) {
          int64_t ix = std::min<int64_t>(static_cast<int64_t>(float(j) * sw_inv), w - 1);
          for (int64_t ch = 0; ch < c; ++ch) {
            int64_t src = ((b * h + iy) * w + ix) * c + ch, dst = ((b * oh + i) * ow + j) * c + ch;
            if (same_grid(x, y))
              y.ints[size_t(dst)] = x.ints[size_t(src)];
            else if (x.is_pow2() && y.is_pow2())
              y.ints[size_t(dst)] = saturate_to(shift_round(x.ints[size_t(src)], shift, args.rounding()), y.dtype);
            else
              store_real(y, dst, real_value(x, src), args.rounding());
          }
        }
      }
    return;
  }
  if (mode != "linear") args.fail_node("mode '" + mode + "' is not supported (nearest, linear)");
  bool align = ctm == "align_corners";
  if (!align && ctm != "half_pixel" && ctm != "pytorch_half_pixel")
    args.fail_node("linear Resize runs as half_pixel or align_corners on ESP-DL; got " + ctm);
  bool pow2 = x.is_pow2() && y.is_pow2();
  float in_scale = pow2 ? std::ldexp(1.f, x.exponent()) : float(x.scale()), out_inv = std::ldexp(1.f, -y.exponent());
  float in_zero = float(x.zero_point());
  for (int64_t b = 0; b < n; ++b)
    for (int64_t i = 0; i < oh; ++i) {
      Coeff cy = linear_coeff(int(i), int(h), sh_inv, align);
      for (int64_t j = 0; j < ow; ++j) {
        Coeff cx = linear_coeff(int(j), int(w), sw_inv, align);
        for (int64_t ch = 0; ch < c; ++ch) {
          // A 1-pixel axis gives index -1 with weight 0 (ESP-DL reads before the row there and
          // multiplies by 0): read inside the tensor, the product is the same 0.
          auto at = [&](int64_t yy, int64_t xx) {
            yy = std::clamp<int64_t>(yy, 0, h - 1);
            xx = std::clamp<int64_t>(xx, 0, w - 1);
            return (float(x.ints[size_t(((b * h + yy) * w + xx) * c + ch)]) - in_zero) * in_scale;
          };
          float row0 = at(cy.index, cx.index) * cx.r0 + at(cy.index, cx.index + 1) * cx.r1;
          float row1 = at(cy.index + 1, cx.index) * cx.r0 + at(cy.index + 1, cx.index + 1) * cx.r1;
          int64_t dst = ((b * oh + i) * ow + j) * c + ch;
          if (!pow2) {
            store_real(y, dst, double(row0 * cy.r0 + row1 * cy.r1), args.rounding());
            continue;
          }
          float v = (row0 * cy.r0 + row1 * cy.r1) * out_inv;
          y.ints[size_t(dst)] = saturate_to(static_cast<int64_t>(round_value(v, args.rounding())), y.dtype);
        }
      }
    }
}

}  // namespace edgequant::runtime
