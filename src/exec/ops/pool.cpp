// Windowed and global pooling.
#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "exec/ops/factories.h"
#include "ir/op_traits.h"

namespace edgequant::exec {

static at::Tensor max_pool(const at::Tensor& x, at::IntArrayRef k, at::IntArrayRef s, at::IntArrayRef p,
                           at::IntArrayRef d, bool ceil) {
  switch (x.dim()) {
    case 3:
      return at::max_pool1d(x, k, s, p, d, ceil);
    case 4:
      return at::max_pool2d(x, k, s, p, d, ceil);
    default:
      return at::max_pool3d(x, k, s, p, d, ceil);
  }
}

static at::Tensor avg_pool(const at::Tensor& x, at::IntArrayRef k, at::IntArrayRef s, at::IntArrayRef p, bool ceil,
                           bool count_pad) {
  switch (x.dim()) {
    case 3:
      return at::avg_pool1d(x, k, s, p, ceil, count_pad);
    case 4:
      return at::avg_pool2d(x, k, s, p, ceil, count_pad);
    default:
      return at::avg_pool3d(x, k, s, p, ceil, count_pad);
  }
}

Kernel make_pool(const Op& op, int64_t) {
  bool is_max = op.is(OpType::MaxPool);
  WindowAttrs a = read_window_attrs(op);
  if (a.kernel.empty()) fail(ErrorCode::InvalidModel, op.describe() + ": missing kernel_shape");
  if (op.outputs.size() > 1 && op.outputs[1]) unsupported(op, "the Indices output of MaxPool");
  bool ceil = op.attr_int("ceil_mode", 0) != 0;
  bool count_pad = op.attr_int("count_include_pad", 0) != 0;
  if (!is_max && !a.dilations.empty())
    for (int64_t d : a.dilations)
      if (d != 1) unsupported(op, "dilated AveragePool");
  std::string where = op.describe();
  return [=](const Tensors& in) -> Tensors {
    at::Tensor x = in[0];
    size_t nd = static_cast<size_t>(x.dim() - 2);
    if (nd < 1 || nd > 3 || nd != a.kernel.size())
      fail(ErrorCode::InvalidModel, where + ": kernel_shape rank does not match the input rank");
    auto strides = or_ones(a.strides, nd), dil = or_ones(a.dilations, nd);
    auto pads = resolve_pads(a.auto_pad, a.pads, x.sizes().slice(2), a.kernel, strides, dil);
    bool explicit_pad = !pads_symmetric(pads);
    for (size_t i = 0; i < nd; ++i)
      if (pads[i] * 2 > (a.kernel[i] - 1) * dil[i] + 1) explicit_pad = true;  // ATen limit: pad <= k/2
    std::vector<int64_t> padding(pads.begin(), pads.begin() + nd);
    if (is_max) {
      // ATen pools floats only; integer maxima survive the round trip exactly.
      if (!at::isFloatingType(x.scalar_type())) {
        auto type = x.scalar_type();
        at::Tensor xf = x.to(at::kFloat);
        if (explicit_pad) xf = at::constant_pad_nd(xf, aten_pad_list(pads), -std::numeric_limits<double>::infinity());
        return {
            max_pool(xf, a.kernel, strides, explicit_pad ? std::vector<int64_t>(nd, 0) : padding, dil, ceil).to(type)};
      }
      if (explicit_pad) {
        x = at::constant_pad_nd(x, aten_pad_list(pads), -std::numeric_limits<double>::infinity());
        padding.assign(nd, 0);
      }
      return {max_pool(x, a.kernel, strides, padding, dil, ceil)};
    }
    if (!explicit_pad) return {avg_pool(x, a.kernel, strides, padding, ceil, count_pad)};
    // Asymmetric pads: average over the zero-padded input, and when pads must not count,
    // divide by the share of real elements in each window.
    at::Tensor xp = at::constant_pad_nd(x, aten_pad_list(pads), 0);
    at::Tensor y = avg_pool(xp, a.kernel, strides, std::vector<int64_t>(nd, 0), ceil, true);
    if (count_pad) return {y};
    std::vector<int64_t> ones_shape(x.sizes().begin(), x.sizes().end());
    ones_shape[0] = ones_shape[1] = 1;
    at::Tensor mask = at::constant_pad_nd(at::ones(ones_shape, x.options()), aten_pad_list(pads), 0);
    at::Tensor share = avg_pool(mask, a.kernel, strides, std::vector<int64_t>(nd, 0), ceil, true);
    return {y / share};
  };
}

Kernel make_global_pool(const Op& op, int64_t) {
  bool is_max = op.is(OpType::GlobalMaxPool);
  return [is_max](const Tensors& in) -> Tensors {
    const at::Tensor& x = in[0];
    std::vector<int64_t> dims;
    for (int64_t d = 2; d < x.dim(); ++d) dims.push_back(d);
    return {is_max ? at::amax(x, dims, true) : at::mean(x, dims, true)};
  };
}

// MaxUnpool: the values of X written at MaxPool's indices (flat over the unpooled tensor of
// shape (in - 1) * stride + kernel - pads, padding not counted) in zeros; an output_shape larger
// than that pads each spatial axis at its end (ONNX's test data and ONNX Runtime).
Kernel make_max_unpool(const Op& op, int64_t) {
  std::vector<int64_t> kernel = op.attr_ints("kernel_shape"), strides = op.attr_ints("strides"),
                       pads = op.attr_ints("pads");
  if (kernel.empty()) fail(ErrorCode::InvalidModel, op.describe() + ": MaxUnpool needs kernel_shape");
  size_t n = kernel.size();
  if (strides.empty()) strides.assign(n, 1);
  if (pads.empty()) pads.assign(2 * n, 0);
  if (strides.size() != n || pads.size() != 2 * n)
    fail(ErrorCode::InvalidModel, op.describe() + ": strides/pads do not match kernel_shape");
  Op desc = op;
  return [=](const Tensors& in) -> Tensors {
    const at::Tensor &x = in[0], &idx = in[1];
    if (x.dim() != static_cast<int64_t>(n) + 2 || !idx.sizes().equals(x.sizes()))
      fail(ErrorCode::InvalidInput, desc.describe() + ": X must be [N, C, spatial...] and I of the same shape");
    std::vector<int64_t> shape = {x.size(0), x.size(1)};
    for (size_t d = 0; d < n; ++d) {
      shape.push_back((x.size(static_cast<int64_t>(d) + 2) - 1) * strides[d] + kernel[d] - pads[d] - pads[d + n]);
      if (shape.back() < 1)
        fail(ErrorCode::InvalidInput, desc.describe() + ": unpooled size " + std::to_string(shape.back()));
    }
    at::Tensor y = at::zeros(shape, x.options());
    at::Tensor flat = idx.reshape({-1}).to(at::kLong);
    if (flat.numel() > 0 && (flat.min().item<int64_t>() < 0 || flat.max().item<int64_t>() >= y.numel()))
      fail(ErrorCode::InvalidInput,
           desc.describe() + ": an index is outside the unpooled tensor of " + std::to_string(y.numel()) + " values");
    y.view({-1}).index_put_({flat}, x.reshape({-1}));
    if (in.size() > 2 && in[2].defined() && in[2].numel() > 0) {
      std::vector<int64_t> want = int_values(in[2]);
      if (want.size() != n + 2 || want[0] != shape[0] || want[1] != shape[1])
        fail(ErrorCode::InvalidInput, desc.describe() + ": output_shape " + shape_str(Shape(want.begin(), want.end())) +
                                          " for an unpooled shape " + shape_str(Shape(shape.begin(), shape.end())));
      std::vector<int64_t> pads(2 * n, 0);  // ONNX order: begins (none), then ends
      for (size_t d = 0; d < n; ++d) {
        if (want[d + 2] < shape[d + 2])
          fail(ErrorCode::InvalidInput,
               desc.describe() + ": output_shape smaller than the unpooled shape along axis " + std::to_string(d + 2));
        pads[d + n] = want[d + 2] - shape[d + 2];
      }
      y = at::constant_pad_nd(y, aten_pad_list(pads), 0);
    }
    return {y};
  };
}

// RoiAlign (two-stage detectors): for each box (x1, y1, x2, y2) * spatial_scale on image
// batch_indices[r], an output_height x output_width grid of bins, each the average (mode avg) or
// the maximum (mode max) of sampling_ratio^2 bilinear samples (0: ceil(bin size) per axis).
// half_pixel (opset 16's default) shifts boxes by half a pixel; output_half_pixel (opset 10's
// behaviour) does not and makes boxes at least 1 pixel. Samples beyond one pixel outside the
// image are 0, others clamp to the border. Mode max takes, as ONNX Runtime does, the largest
// weighted corner term of each sample.
Kernel make_roi_align(const Op& op, int64_t opset) {
  std::string mode = op.attr_string("mode", "avg");
  if (mode != "avg" && mode != "max") fail(ErrorCode::InvalidModel, op.describe() + ": RoiAlign mode '" + mode + "'");
  std::string coord =
      op.attr_string("coordinate_transformation_mode", opset >= 16 ? "half_pixel" : "output_half_pixel");
  if (coord != "half_pixel" && coord != "output_half_pixel")
    fail(ErrorCode::InvalidModel, op.describe() + ": RoiAlign coordinate_transformation_mode '" + coord + "'");
  int64_t out_h = op.attr_int("output_height", 1), out_w = op.attr_int("output_width", 1),
          ratio = op.attr_int("sampling_ratio", 0);
  double scale = op.attr_float("spatial_scale", 1.0f);
  if (out_h < 1 || out_w < 1 || ratio < 0)
    fail(ErrorCode::InvalidModel, op.describe() + ": RoiAlign output size and sampling_ratio must be positive");
  bool half_pixel = coord == "half_pixel", average = mode == "avg";
  Op desc = op;
  return [=](const Tensors& in) -> Tensors {
    at::Tensor x = in[0].to(at::kFloat).contiguous(), rois = in[1].to(at::kFloat).contiguous();
    at::Tensor batch_index = in[2].to(at::kLong).contiguous();
    if (x.dim() != 4 || rois.dim() != 2 || rois.size(1) != 4 || batch_index.dim() != 1 ||
        batch_index.size(0) != rois.size(0))
      fail(ErrorCode::InvalidInput,
           desc.describe() + ": RoiAlign takes X [N, C, H, W], rois [R, 4] and batch_indices [R]");
    int64_t n = x.size(0), channels = x.size(1), height = x.size(2), width = x.size(3), count = rois.size(0);
    at::Tensor y = at::zeros({count, channels, out_h, out_w}, x.options());
    const float* px = x.data_ptr<float>();
    const float* pr = rois.data_ptr<float>();
    const int64_t* pb = batch_index.data_ptr<int64_t>();
    float* py = y.data_ptr<float>();
    double offset = half_pixel ? 0.5 : 0.0;
    for (int64_t r = 0; r < count; ++r) {
      int64_t b = pb[r];
      if (b < 0 || b >= n)
        fail(ErrorCode::InvalidInput,
             desc.describe() + ": batch index " + std::to_string(b) + " for a batch of " + std::to_string(n));
      double x1 = pr[4 * r] * scale - offset, y1 = pr[4 * r + 1] * scale - offset;
      double roi_w = pr[4 * r + 2] * scale - offset - x1, roi_h = pr[4 * r + 3] * scale - offset - y1;
      if (!half_pixel) {
        roi_w = std::max(roi_w, 1.0);
        roi_h = std::max(roi_h, 1.0);
      }
      double bin_h = roi_h / out_h, bin_w = roi_w / out_w;
      // A bin's samples: bounded, so a huge box or sampling_ratio is an error, not an endless run.
      constexpr double kMaxSamplesPerAxis = 4096;
      double want_h = ratio > 0 ? static_cast<double>(ratio) : std::ceil(roi_h / out_h);
      double want_w = ratio > 0 ? static_cast<double>(ratio) : std::ceil(roi_w / out_w);
      if (!(want_h <= kMaxSamplesPerAxis && want_w <= kMaxSamplesPerAxis))  // also NaN
        fail(ErrorCode::InvalidInput,
             desc.describe() + ": RoiAlign box " + std::to_string(r) +
                 " needs more than 4096 samples per bin axis (box or sampling_ratio too large)");
      int64_t grid_h = static_cast<int64_t>(want_h), grid_w = static_cast<int64_t>(want_w);
      double samples = static_cast<double>(std::max<int64_t>(grid_h * grid_w, 1));
      for (int64_t c = 0; c < channels; ++c) {
        const float* plane = px + (b * channels + c) * height * width;
        for (int64_t ph = 0; ph < out_h; ++ph)
          for (int64_t pw = 0; pw < out_w; ++pw) {
            double acc = average ? 0.0 : -std::numeric_limits<double>::infinity();
            bool any = false;
            for (int64_t iy = 0; iy < grid_h; ++iy)
              for (int64_t ix = 0; ix < grid_w; ++ix) {
                double yy = y1 + ph * bin_h + (iy + 0.5) * bin_h / grid_h,
                       xx = x1 + pw * bin_w + (ix + 0.5) * bin_w / grid_w;
                any = true;
                if (yy < -1.0 || yy > height || xx < -1.0 || xx > width) {  // beyond the image: 0
                  acc = average ? acc : std::max(acc, 0.0);
                  continue;
                }
                yy = std::max(yy, 0.0);
                xx = std::max(xx, 0.0);
                int64_t y_lo = static_cast<int64_t>(yy), x_lo = static_cast<int64_t>(xx), y_hi, x_hi;
                if (y_lo >= height - 1)
                  y_hi = y_lo = height - 1, yy = static_cast<double>(y_lo);
                else
                  y_hi = y_lo + 1;
                if (x_lo >= width - 1)
                  x_hi = x_lo = width - 1, xx = static_cast<double>(x_lo);
                else
                  x_hi = x_lo + 1;
                double ly = yy - y_lo, lx = xx - x_lo, hy = 1 - ly, hx = 1 - lx;
                double t1 = hy * hx * plane[y_lo * width + x_lo], t2 = hy * lx * plane[y_lo * width + x_hi];
                double t3 = ly * hx * plane[y_hi * width + x_lo], t4 = ly * lx * plane[y_hi * width + x_hi];
                if (average)
                  acc += t1 + t2 + t3 + t4;
                else
                  acc = std::max({acc, t1, t2, t3, t4});
              }
            py[((r * channels + c) * out_h + ph) * out_w + pw] =
                static_cast<float>(average ? acc / samples : (any ? acc : 0.0));
          }
      }
    }
    return {y.to(in[0].scalar_type())};
  };
}

}  // namespace edgequant::exec
