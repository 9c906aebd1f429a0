// Pad (constant/reflect/edge) and Resize/Upsample (nearest, linear) with every coordinate
// transformation mode the torch and TF exporters write.
#include <ATen/ATen.h>

#include <cmath>

#include "exec/ops/factories.h"
#include "ir/op_traits.h"

namespace edgequant::exec {

Kernel make_pad(const Op& op, int64_t opset) {
  std::string mode = op.attr_string("mode", "constant");
  if (mode != "constant" && mode != "reflect" && mode != "edge" && !(mode == "wrap" && opset >= 19))
    unsupported(op, "Pad mode '" + mode + "'");
  bool legacy = opset < 11;
  std::vector<int64_t> pads_attr = op.attr_ints(opset < 2 ? "paddings" : "pads");
  double value_attr = op.attr_float("value", 0.0f);
  std::string where = op.describe();
  return [=](const Tensors& in) -> Tensors {
    at::Tensor x = in[0];
    int64_t rank = x.dim();
    std::vector<int64_t> raw = legacy ? pads_attr : int_values(in[1]);
    std::vector<int64_t> axes;
    if (!legacy && in.size() > 3 && in[3].defined()) axes = int_values(in[3]);
    if (axes.empty())
      for (int64_t d = 0; d < rank; ++d) axes.push_back(d);
    size_t n = axes.size();
    if (raw.size() != 2 * n)
      fail(ErrorCode::InvalidModel,
           where + ": pads has " + std::to_string(raw.size()) + " values, expected " + std::to_string(2 * n));
    std::vector<int64_t> begin(rank, 0), end(rank, 0);
    for (size_t i = 0; i < n; ++i) {
      int64_t a = normalize_axis(axes[i], rank, where);
      begin[a] = raw[i];
      end[a] = raw[i + n];
    }
    if (mode == "constant") {
      double value = value_attr;
      if (!legacy && in.size() > 2 && in[2].defined() && in[2].numel() > 0) value = in[2].item<double>();
      std::vector<int64_t> list;
      for (int64_t d = rank; d-- > 0;) {
        list.push_back(begin[d]);
        list.push_back(end[d]);
      }
      return {at::constant_pad_nd(x, list, value)};
    }
    // reflect/edge/wrap: gather along each padded axis with mirrored, clamped or cyclic indices.
    for (int64_t d = 0; d < rank; ++d) {
      if (begin[d] == 0 && end[d] == 0) continue;
      int64_t len = x.size(d);
      auto idx = at::arange(-begin[d], len + end[d], at::kLong);
      if (mode == "edge") {
        idx = idx.clamp(0, len - 1);
      } else if (mode == "wrap") {
        idx = at::remainder(idx, len);
      } else {
        idx = at::where(idx < 0, -idx, idx);
        idx = at::where(idx >= len, 2 * (len - 1) - idx, idx);
      }
      x = x.index_select(d, idx.to(x.device()));
    }
    return {x};
  };
}

namespace {
enum class Coord {
  HalfPixel,
  HalfPixelSymmetric,
  PytorchHalfPixel,
  AlignCorners,
  Asymmetric,
  TfHalfPixelForNn,
  TfCropAndResize
};
enum class Nearest { RoundPreferFloor, RoundPreferCeil, Floor, Ceil };

// `out` is the resized length as ONNX defines it: in * scale (unfloored) when scales are given.
// tf_crop_and_resize maps the output onto the crop [roi_start, roi_end] of the axis (fractions).
double source_coord(Coord mode, int64_t o, int64_t in, double out, double scale, double roi_start, double roi_end) {
  switch (mode) {
    case Coord::HalfPixel:
      return (o + 0.5) / scale - 0.5;
    case Coord::HalfPixelSymmetric: {  // opset 19: centred when the output length was floored
      double adjustment = std::floor(out) / out, offset = in / 2.0 * (1 - adjustment);
      return offset + (o + 0.5) / scale - 0.5;
    }
    case Coord::PytorchHalfPixel:
      return out > 1 ? (o + 0.5) / scale - 0.5 : 0.0;
    case Coord::AlignCorners:
      return out == 1 ? 0.0 : o * double(in - 1) / (out - 1);
    case Coord::Asymmetric:
      return o / scale;
    case Coord::TfHalfPixelForNn:
      return (o + 0.5) / scale;
    case Coord::TfCropAndResize: {
      double span = (roi_end - roi_start) * double(in - 1);
      double c = roi_start * double(in - 1) + (out > 1 ? o * span / (out - 1) : span / 2);
      // Beyond the axis (or NaN from the roi) the output is extrapolated: keep it finite there.
      return c >= 0 ? std::min(c, double(in)) : -1.0;
    }
  }
  return 0;
}

int64_t nearest_index(Nearest mode, double x) {
  double f = std::floor(x);
  bool half = std::abs(x - f - 0.5) < 1e-9;
  switch (mode) {
    case Nearest::RoundPreferFloor:
      return static_cast<int64_t>(half ? f : std::round(x));
    case Nearest::RoundPreferCeil:
      return static_cast<int64_t>(half ? f + 1 : std::round(x));
    case Nearest::Floor:
      return static_cast<int64_t>(f);
    case Nearest::Ceil:
      return static_cast<int64_t>(std::ceil(x));
  }
  return 0;
}
// Resampling by a filter kernel along axis `d`, as ONNX's reference defines it: the taps around
// each source coordinate c sit at floor(c) + start .. (c - 1 when c is whole: the left pixel is
// preferred), weighted kernel(filter_scale * distance). `radius` is the kernel's support (1
// linear, 2 cubic); antialiasing stretches it by 1 / scale when downscaling (filter_scale =
// scale < 1) and normalises the weights. Taps beyond the axis repeat its edge, or with
// exclude_outside get weight 0 and the others are renormalised.
template <class SourceCoord, class FilterKernel>
at::Tensor resize_filter_axis(const at::Tensor& x, int64_t d, int64_t out, SourceCoord source, FilterKernel kernel,
                              int radius, double filter_scale, bool normalize, bool exclude_outside) {
  int64_t len = x.size(d);
  int64_t start = static_cast<int64_t>(std::floor(-radius / filter_scale)) + 1, taps = 2 - 2 * start;
  std::vector<std::vector<int64_t>> idx(static_cast<size_t>(taps), std::vector<int64_t>(static_cast<size_t>(out)));
  std::vector<std::vector<double>> w(static_cast<size_t>(taps), std::vector<double>(static_cast<size_t>(out)));
  for (int64_t o = 0; o < out; ++o) {
    double c = source(o), base = std::floor(c), ratio = c == base ? 1.0 : c - base, sum = 0;
    for (int64_t k = 0; k < taps; ++k) {
      int64_t i = static_cast<int64_t>(c - ratio) + start + k;
      double weight = kernel(std::fabs(filter_scale * (double(start + k) - ratio)));
      if (exclude_outside && (i < 0 || i >= len)) weight = 0;
      idx[k][o] = std::clamp<int64_t>(i, 0, len - 1);
      w[k][o] = weight;
      sum += weight;
    }
    if ((normalize || exclude_outside) && sum != 0)
      for (int64_t k = 0; k < taps; ++k) w[k][o] /= sum;
  }
  auto dev = at::TensorOptions().device(x.device());
  if (taps > 16 && out * len <= (int64_t{1} << 24)) {
    // A wide filter (strong antialiased downscaling): one [out, len] matrix, taps at the same
    // (clamped) index summed, applied as a matrix product along the axis.
    std::vector<double> m(static_cast<size_t>(out * len), 0.0);
    for (int64_t k = 0; k < taps; ++k)
      for (int64_t o = 0; o < out; ++o) m[static_cast<size_t>(o * len + idx[k][o])] += w[k][o];
    at::Tensor mt = at::tensor(m, dev.dtype(at::kDouble)).reshape({out, len}).to(x.scalar_type());
    return at::matmul(x.movedim(d, -1), mt.t()).movedim(-1, d);
  }
  std::vector<int64_t> wshape(static_cast<size_t>(x.dim()), 1);
  wshape[static_cast<size_t>(d)] = out;
  at::Tensor y;
  for (int64_t k = 0; k < taps; ++k) {
    at::Tensor term = x.index_select(d, at::tensor(idx[k], dev.dtype(at::kLong))) *
                      at::tensor(w[k], dev.dtype(at::kDouble)).reshape(wshape).to(x.scalar_type());
    y = k == 0 ? term : y + term;
  }
  return y;
}
}  // namespace

Kernel make_resize(const Op& op, int64_t opset) {
  bool upsample = op.is(OpType::Upsample);
  std::string mode = op.attr_string("mode", "nearest");
  if (mode == "bilinear") mode = "linear";
  if (mode == "bicubic") mode = "cubic";
  if (mode != "nearest" && mode != "linear" && mode != "cubic") unsupported(op, "Resize mode '" + mode + "'");
  double cubic_a = op.attr_float("cubic_coeff_a", -0.75f);
  bool exclude_outside = op.attr_int("exclude_outside", 0) != 0;
  // Upsample and Resize-10 have no coordinate attribute: they map o -> o / scale.
  bool legacy = upsample || opset < 11;
  std::string cname = legacy ? "asymmetric" : op.attr_string("coordinate_transformation_mode", "half_pixel");
  Coord coord;
  if (cname == "half_pixel")
    coord = Coord::HalfPixel;
  else if (cname == "half_pixel_symmetric" && opset >= 19)
    coord = Coord::HalfPixelSymmetric;
  else if (cname == "pytorch_half_pixel")
    coord = Coord::PytorchHalfPixel;
  else if (cname == "align_corners")
    coord = Coord::AlignCorners;
  else if (cname == "asymmetric")
    coord = Coord::Asymmetric;
  else if (cname == "tf_half_pixel_for_nn")
    coord = Coord::TfHalfPixelForNn;
  else if (cname == "tf_crop_and_resize")
    coord = Coord::TfCropAndResize;
  else
    unsupported(op, "coordinate_transformation_mode '" + cname + "'");
  std::string nname = legacy ? "floor" : op.attr_string("nearest_mode", "round_prefer_floor");
  Nearest nearest;
  if (nname == "round_prefer_floor")
    nearest = Nearest::RoundPreferFloor;
  else if (nname == "round_prefer_ceil")
    nearest = Nearest::RoundPreferCeil;
  else if (nname == "floor")
    nearest = Nearest::Floor;
  else if (nname == "ceil")
    nearest = Nearest::Ceil;
  else
    unsupported(op, "nearest_mode '" + nname + "'");
  bool linear = mode == "linear", cubic = mode == "cubic";
  // Opset 18: antialias (linear and cubic filters stretched when downscaling), axes (the axes
  // scales/sizes refer to; the others keep their length) and keep_aspect_ratio_policy (sizes
  // bound the output: one scale for all listed axes, the smallest or the largest).
  bool antialias = op.attr_int("antialias", 0) != 0;
  if (antialias && !linear && !cubic) unsupported(op, "antialias=1 with mode 'nearest' (defined for linear and cubic)");
  enum class Aspect { Stretch, NotLarger, NotSmaller };
  std::string aname = op.attr_string("keep_aspect_ratio_policy", "stretch");
  Aspect aspect;
  if (aname == "stretch")
    aspect = Aspect::Stretch;
  else if (aname == "not_larger")
    aspect = Aspect::NotLarger;
  else if (aname == "not_smaller")
    aspect = Aspect::NotSmaller;
  else
    unsupported(op, "keep_aspect_ratio_policy '" + aname + "'");
  std::vector<int64_t> axes_attr = op.attr_ints("axes");
  std::vector<float> scales_attr = op.attr_floats("scales");
  size_t scales_index = upsample || opset < 11 ? 1 : 2, sizes_index = 3;
  bool crop = coord == Coord::TfCropAndResize;
  double extrapolation = op.attr_float("extrapolation_value", 0.0f);  // tf_crop_and_resize outside the input
  std::string where = op.describe();
  return [=](const Tensors& in) -> Tensors {
    at::Tensor x = in[0];
    int64_t rank = x.dim();
    std::vector<double> scales(scales_attr.begin(), scales_attr.end());
    std::vector<int64_t> sizes;
    if (in.size() > sizes_index && in[sizes_index].defined() && in[sizes_index].numel() > 0)
      sizes = int_values(in[sizes_index]);
    else if (in.size() > scales_index && in[scales_index].defined() && in[scales_index].numel() > 0) {
      at::Tensor s = in[scales_index].to(at::kCPU).to(at::kDouble).contiguous();
      scales.assign(s.data_ptr<double>(), s.data_ptr<double>() + s.numel());
    }
    std::vector<int64_t> axes;
    for (int64_t a : axes_attr) {
      a = normalize_axis(a, rank, where);
      if (std::find(axes.begin(), axes.end(), a) != axes.end())
        fail(ErrorCode::InvalidModel, where + ": axis " + std::to_string(a) + " is listed twice");
      axes.push_back(a);
    }
    if (axes_attr.empty())
      for (int64_t d = 0; d < rank; ++d) axes.push_back(d);
    size_t given = sizes.empty() ? scales.size() : sizes.size();
    if (given != axes.size())
      fail(ErrorCode::InvalidInput, where + ": " + std::to_string(given) + (sizes.empty() ? " scales" : " sizes") +
                                        " for " + std::to_string(axes.size()) + " axes of an input of rank " +
                                        std::to_string(rank));
    // tf_crop_and_resize: roi holds each listed axis's crop start, then each one's end.
    std::vector<double> roi;
    if (crop) {
      if (in.size() > 1 && in[1].defined()) {
        at::Tensor r = in[1].to(at::kCPU).to(at::kDouble).contiguous();
        roi.assign(r.data_ptr<double>(), r.data_ptr<double>() + r.numel());
      }
      if (roi.size() != 2 * axes.size())
        fail(ErrorCode::InvalidInput, where + ": tf_crop_and_resize needs a roi of " + std::to_string(2 * axes.size()) +
                                          " values (starts, then ends), got " + std::to_string(roi.size()));
    }
    // Per listed axis: the output length, the scale the coordinates use, and the unfloored length.
    std::vector<int64_t> outs(axes.size());
    std::vector<double> axis_scale(axes.size()), axis_resized(axes.size());
    double common = aspect == Aspect::NotLarger ? INFINITY : 0;  // keep_aspect_ratio_policy's one scale
    for (size_t i = 0; i < axes.size(); ++i) {
      int64_t len = x.size(axes[i]);
      if (len == 0) {  // only an empty output can come of it (checked below)
        outs[i] = sizes.empty() ? 0 : sizes[i];
        axis_scale[i] = 1.0;
        axis_resized[i] = double(outs[i]);
      } else if (sizes.empty()) {
        axis_scale[i] = scales[i];
        axis_resized[i] = len * scales[i];  // also with tf_crop_and_resize's roi (ONNX's reference, ONNX Runtime)
        outs[i] = std::isfinite(axis_resized[i]) ? static_cast<int64_t>(std::floor(axis_resized[i])) : -1;
      } else {
        outs[i] = sizes[i];
        axis_scale[i] = double(sizes[i]) / double(len);
        axis_resized[i] = double(sizes[i]);
        common = aspect == Aspect::NotLarger ? std::min(common, axis_scale[i]) : std::max(common, axis_scale[i]);
      }
    }
    if (!sizes.empty() && aspect != Aspect::Stretch)
      for (size_t i = 0; i < axes.size(); ++i) {
        if (x.size(axes[i]) == 0) continue;
        axis_scale[i] = common;
        axis_resized[i] = common * double(x.size(axes[i]));
        outs[i] = static_cast<int64_t>(axis_resized[i] + 0.5);  // rounded half up
      }
    for (size_t i = 0; i < axes.size(); ++i) {
      int64_t d = axes[i], len = x.size(d), out = outs[i];
      double scale = axis_scale[i], resized = axis_resized[i];
      if (out < 0 || !std::isfinite(resized) || !(scale >= 0))
        fail(ErrorCode::InvalidInput,
             where + ": output size " + std::to_string(out) + " along axis " + std::to_string(d));
      if (out == len && scale == 1.0) continue;
      if (len == 0) fail(ErrorCode::InvalidInput, where + ": resizing an empty axis " + std::to_string(d));
      if (out == 0) {
        x = x.narrow(d, 0, 0);
        continue;
      }
      auto dev = at::TensorOptions().device(x.device());
      double roi_start = crop ? roi[i] : 0, roi_end = crop ? roi[axes.size() + i] : 1;
      // The crop spans the integer output length, as ONNX Runtime computes it (ONNX's reference
      // uses len * scale; no conformance case tells them apart, only scales whose product is floored).
      if (crop) resized = double(out);
      auto source = [&](int64_t o) { return source_coord(coord, o, len, resized, scale, roi_start, roi_end); };
      // tf_crop_and_resize: outputs whose coordinate falls outside the axis take extrapolation_value
      // (constant along the other axes, so resampling them later keeps it).
      std::vector<int64_t> outside;
      if (crop)
        for (int64_t o = 0; o < out; ++o) {
          double c = source(o);
          if (c < 0 || c > double(len - 1)) outside.push_back(o);
        }
      auto extrapolate = [&](at::Tensor t) {
        if (outside.empty()) return t;
        return t.index_fill(d, at::tensor(outside, at::TensorOptions().dtype(at::kLong).device(t.device())),
                            extrapolation);
      };
      double filter_scale = antialias ? std::min(scale, 1.0) : 1.0;
      if (cubic) {
        auto keys = [a = cubic_a](double t) {  // Keys' cubic convolution kernel, t = |distance|
          if (t <= 1) return ((a + 2) * t - (a + 3)) * t * t + 1;
          if (t < 2) return ((a * t - 5 * a) * t + 8 * a) * t - 4 * a;
          return 0.0;
        };
        x = extrapolate(resize_filter_axis(x, d, out, source, keys, 2, filter_scale, antialias, exclude_outside));
        continue;
      }
      if (linear && antialias) {
        auto triangle = [](double t) { return std::max(0.0, 1 - t); };
        x = extrapolate(resize_filter_axis(x, d, out, source, triangle, 1, filter_scale, true, exclude_outside));
        continue;
      }
      if (!linear) {
        std::vector<int64_t> idx(out);
        for (int64_t o = 0; o < out; ++o) idx[o] = std::clamp<int64_t>(nearest_index(nearest, source(o)), 0, len - 1);
        x = extrapolate(x.index_select(d, at::tensor(idx, dev.dtype(at::kLong))));
        continue;
      }
      std::vector<int64_t> i0(out), i1(out);
      std::vector<float> w(out);
      for (int64_t o = 0; o < out; ++o) {
        double c = std::clamp(source(o), 0.0, double(len - 1));
        i0[o] = static_cast<int64_t>(std::floor(c));
        i1[o] = std::min(i0[o] + 1, len - 1);
        w[o] = static_cast<float>(c - i0[o]);
      }
      std::vector<int64_t> wshape(rank, 1);
      wshape[d] = out;
      at::Tensor wt = at::tensor(w, dev.dtype(at::kFloat)).reshape(wshape).to(x.scalar_type());
      at::Tensor a = x.index_select(d, at::tensor(i0, dev.dtype(at::kLong)));
      at::Tensor b = x.index_select(d, at::tensor(i1, dev.dtype(at::kLong)));
      x = extrapolate(a + (b - a) * wt);
    }
    return {x.is_same(in[0]) ? x.clone() : x};
  };
}

// GridSample (opset 16 names; opset 20's linear/cubic are the same modes): ATen's grid sampler,
// 2-D (4-D input) or 3-D (5-D input, no cubic).
Kernel make_grid_sample(const Op& op, int64_t) {
  std::string mode = op.attr_string("mode", "bilinear"), padding = op.attr_string("padding_mode", "zeros");
  bool align_corners = op.attr_int("align_corners", 0) != 0;
  int64_t interpolation;
  if (mode == "bilinear" || mode == "linear")
    interpolation = 0;
  else if (mode == "nearest")
    interpolation = 1;
  else if (mode == "bicubic" || mode == "cubic")
    interpolation = 2;
  else
    fail(ErrorCode::InvalidModel, op.describe() + ": GridSample mode '" + mode + "'");
  int64_t pad;
  if (padding == "zeros")
    pad = 0;
  else if (padding == "border")
    pad = 1;
  else if (padding == "reflection")
    pad = 2;
  else
    fail(ErrorCode::InvalidModel, op.describe() + ": GridSample padding_mode '" + padding + "'");
  Op desc = op;
  return [=](const Tensors& in) -> Tensors {
    const at::Tensor &x = in[0], &grid = in[1];
    int64_t spatial = x.dim() - 2;
    if ((spatial != 2 && spatial != 3) || grid.dim() != x.dim() || grid.size(0) != x.size(0) ||
        grid.size(-1) != spatial)
      fail(ErrorCode::InvalidInput, desc.describe() + ": GridSample takes a 4-D or 5-D input and a grid [N, ..., " +
                                        std::to_string(std::max<int64_t>(spatial, 0)) + "] of the same rank");
    if (spatial == 3 && interpolation == 2) unsupported(desc, "cubic GridSample of a 5-D input");
    return {at::grid_sampler(x, grid.to(x.scalar_type()), interpolation, pad, align_corners)};
  };
}

// AffineGrid (opset 20): the sampling grid [N, H, W, 2] (or [N, D, H, W, 3]) of the affine maps
// theta [N, 2, 3] (or [N, 3, 4]) over normalised coordinates, as GridSample reads it.
Kernel make_affine_grid(const Op& op, int64_t) {
  bool align_corners = op.attr_int("align_corners", 0) != 0;
  Op desc = op;
  return [=](const Tensors& in) -> Tensors {
    const at::Tensor& theta = in[0];
    std::vector<int64_t> size = int_values(in[1]);
    bool two_d = size.size() == 4 && theta.dim() == 3 && theta.size(1) == 2 && theta.size(2) == 3;
    bool three_d = size.size() == 5 && theta.dim() == 3 && theta.size(1) == 3 && theta.size(2) == 4;
    if (!(two_d || three_d) || theta.size(0) != size[0])
      fail(ErrorCode::InvalidInput,
           desc.describe() +
               ": AffineGrid takes theta [N, 2, 3] with size [N, C, H, W], or [N, 3, 4] with [N, C, D, H, W]");
    for (int64_t s : size)
      if (s < 1) fail(ErrorCode::InvalidInput, desc.describe() + ": AffineGrid size entries must be >= 1");
    return {at::affine_grid_generator(theta, size, align_corners)};
  };
}

// CenterCropPad (opset 18): each listed axis cut to its centred window, or zero-padded around
// the input (the odd element after it) to the requested length.
Kernel make_center_crop_pad(const Op& op, int64_t) {
  std::vector<int64_t> axes_attr = op.attr_ints("axes");
  Op desc = op;
  return [=](const Tensors& in) -> Tensors {
    at::Tensor x = in[0];
    std::vector<int64_t> shape = int_values(in[1]), axes = axes_attr;
    if (axes.empty())
      for (int64_t d = 0; d < x.dim(); ++d) axes.push_back(d);
    if (shape.size() != axes.size())
      fail(ErrorCode::InvalidInput, desc.describe() + ": " + std::to_string(shape.size()) + " lengths for " +
                                        std::to_string(axes.size()) + " axes");
    for (size_t k = 0; k < axes.size(); ++k) {
      int64_t a = normalize_axis(axes[k], x.dim(), desc), len = x.size(a), want = shape[k];
      if (want < 0) fail(ErrorCode::InvalidInput, desc.describe() + ": length " + std::to_string(want));
      if (want < len) {
        x = x.narrow(a, (len - want) / 2, want);
      } else if (want > len) {
        x = pad_axis(x, a, (want - len) / 2, want - len - (want - len) / 2);
      }
    }
    return {x.contiguous()};
  };
}

}  // namespace edgequant::exec
