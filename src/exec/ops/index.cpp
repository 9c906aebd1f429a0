// Index-driven ops: gathers and scatters by index tensors, top-k, one-hot, cumulative sums,
// triangular masks, and the depth/space rearrangements of super-resolution and detector heads.
#include <ATen/ATen.h>

#include <algorithm>
#include <array>

#include "exec/ops/factories.h"

namespace edgequant::exec {

namespace {
// ONNX indices may count from the end of their axis.
at::Tensor wrap_negative(const at::Tensor& idx, int64_t size) {
  at::Tensor i = idx.to(at::kLong);
  return at::where(i < 0, i + size, i);
}

// Rows of `data` viewed as [prod(dims[b, b+k)), rest...] per batch, and the flat row index of each
// index tuple: GatherND/ScatterND address the first k dims after `batch_dims` with a k-tuple.
struct NdAddress {
  at::Tensor rows;    // [batch * P, rest...]
  at::Tensor linear;  // [batch * M] row numbers
  std::vector<int64_t> rest;
};
NdAddress nd_address(const at::Tensor& data, const at::Tensor& indices, int64_t batch_dims, const std::string& where) {
  if (indices.dim() < 1 || data.dim() < 1) fail(ErrorCode::InvalidModel, where + ": data and indices need rank >= 1");
  int64_t k = indices.size(-1), b = batch_dims;
  if (b < 0 || b >= indices.dim())
    fail(ErrorCode::InvalidModel, where + ": batch_dims " + std::to_string(b) + " out of range");
  if (b + k > data.dim()) fail(ErrorCode::InvalidModel, where + ": index tuples longer than the data's rank");
  int64_t batch = 1, rows = 1;
  for (int64_t d = 0; d < b; ++d) batch *= data.size(d);
  std::vector<int64_t> row_shape{-1};
  NdAddress a;
  for (int64_t d = b + k; d < data.dim(); ++d) a.rest.push_back(data.size(d));
  for (int64_t d = b; d < b + k; ++d) rows *= data.size(d);
  at::Tensor idx = indices.to(at::kLong).reshape({batch, -1, k});
  at::Tensor lin = at::zeros({idx.size(0), idx.size(1)}, idx.options());
  for (int64_t j = 0; j < k; ++j) {
    int64_t size = data.size(b + j);
    lin = lin * size + wrap_negative(idx.select(2, j), size);
  }
  lin = lin + at::arange(batch, idx.options()).unsqueeze(1) * rows;
  row_shape.insert(row_shape.end(), a.rest.begin(), a.rest.end());
  a.rows = data.reshape(row_shape);
  a.linear = lin.reshape({-1});
  return a;
}
}  // namespace

Kernel make_depth_to_space(const Op& op, int64_t) {
  int64_t b = op.attr_int("blocksize", 0);
  bool crd = op.attr_string("mode", "DCR") == "CRD";
  if (b <= 0) unsupported(op, "blocksize " + std::to_string(b));
  std::string where = op.describe();
  return [b, crd, where](const Tensors& in) -> Tensors {
    const at::Tensor& x = in[0];
    if (x.dim() != 4 || x.size(1) % (b * b) != 0)
      fail(ErrorCode::InvalidInput,
           where + ": needs [N, C, H, W] with C a multiple of blocksize^2 = " + std::to_string(b * b));
    int64_t n = x.size(0), c = x.size(1), h = x.size(2), w = x.size(3);
    at::Tensor y = crd ? x.reshape({n, c / (b * b), b, b, h, w}).permute({0, 1, 4, 2, 5, 3})
                       : x.reshape({n, b, b, c / (b * b), h, w}).permute({0, 3, 4, 1, 5, 2});
    return {y.reshape({n, c / (b * b), h * b, w * b})};
  };
}

// ESP-DL's InsertZeros (ConvTranspose = InsertZeros + Conv): stride - 1 zeros between
// neighbours along each spatial dim, then output_padding zeros at its end; NC... layout.
Kernel make_insert_zeros(const Op& op, int64_t) {
  std::vector<int64_t> stride = op.attr_ints("stride"), extra = op.attr_ints("output_padding");
  for (int64_t s : stride)
    if (s < 1) unsupported(op, "stride " + std::to_string(s));
  for (int64_t e : extra)
    if (e < 0) unsupported(op, "output_padding " + std::to_string(e));
  std::string where = op.describe();
  return [stride, extra, where](const Tensors& in) -> Tensors {
    const at::Tensor& x = in[0];
    const int64_t nd = x.dim() - 2;
    if (nd < 1 || (stride.size() != 1 && int64_t(stride.size()) != nd) ||
        (extra.size() > 1 && int64_t(extra.size()) != nd))
      fail(ErrorCode::InvalidInput,
           where + ": stride/output_padding do not match input rank " + std::to_string(x.dim()));
    std::vector<int64_t> shape(x.sizes().begin(), x.sizes().end());
    std::vector<at::indexing::TensorIndex> index = {at::indexing::Slice(), at::indexing::Slice()};
    for (int64_t d = 0; d < nd; ++d) {
      const int64_t s = stride.size() == 1 ? stride[0] : stride[size_t(d)];
      const int64_t e = extra.empty() ? 0 : extra.size() == 1 ? extra[0] : extra[size_t(d)];
      const int64_t len = x.size(2 + d);
      shape[size_t(2 + d)] = len + (s - 1) * (len - 1) + e;
      index.push_back(at::indexing::Slice(0, (len - 1) * s + 1, s));
    }
    at::Tensor y = at::zeros(shape, x.options());
    y.index_put_(index, x);
    return {y};
  };
}

Kernel make_space_to_depth(const Op& op, int64_t) {
  int64_t b = op.attr_int("blocksize", 0);
  if (b <= 0) unsupported(op, "blocksize " + std::to_string(b));
  std::string where = op.describe();
  return [b, where](const Tensors& in) -> Tensors {
    const at::Tensor& x = in[0];
    if (x.dim() != 4 || x.size(2) % b != 0 || x.size(3) % b != 0)
      fail(ErrorCode::InvalidInput,
           where + ": needs [N, C, H, W] with H and W multiples of blocksize " + std::to_string(b));
    int64_t n = x.size(0), c = x.size(1), h = x.size(2), w = x.size(3);
    at::Tensor y = x.reshape({n, c, h / b, b, w / b, b}).permute({0, 3, 5, 1, 2, 4});
    return {y.reshape({n, c * b * b, h / b, w / b})};
  };
}

Kernel make_gather_elements(const Op& op, int64_t) {
  int64_t axis = op.attr_int("axis", 0);
  Op desc = op;
  return [axis, desc](const Tensors& in) -> Tensors {
    int64_t a = normalize_axis(axis, in[0].dim(), desc);
    return {at::gather(in[0], a, wrap_negative(in[1], in[0].size(a)))};
  };
}

Kernel make_scatter_elements(const Op& op, int64_t) {
  int64_t axis = op.attr_int("axis", 0);
  std::string reduction = op.attr_string("reduction", "none");
  static const std::map<std::string, std::string> aten_reduce = {{"mul", "prod"}, {"max", "amax"}, {"min", "amin"}};
  if (reduction != "none" && reduction != "add" && !aten_reduce.count(reduction))
    unsupported(op, "reduction '" + reduction + "'");
  Op desc = op;
  return [axis, reduction, desc](const Tensors& in) -> Tensors {
    int64_t a = normalize_axis(axis, in[0].dim(), desc);
    at::Tensor idx = wrap_negative(in[1], in[0].size(a));
    if (reduction == "none") return {at::scatter(in[0], a, idx, in[2])};
    if (reduction == "add") return {at::scatter_add(in[0], a, idx, in[2])};
    return {at::scatter_reduce(in[0], a, idx, in[2], aten_reduce.at(reduction), true)};
  };
}

Kernel make_gather_nd(const Op& op, int64_t) {
  int64_t batch_dims = op.attr_int("batch_dims", 0);
  std::string where = op.describe();
  return [batch_dims, where](const Tensors& in) -> Tensors {
    NdAddress a = nd_address(in[0], in[1], batch_dims, where);
    std::vector<int64_t> shape(in[1].sizes().begin(), in[1].sizes().end() - 1);
    shape.insert(shape.end(), a.rest.begin(), a.rest.end());
    return {a.rows.index_select(0, a.linear).reshape(shape)};
  };
}

Kernel make_scatter_nd(const Op& op, int64_t) {
  std::string reduction = op.attr_string("reduction", "none");
  static const std::map<std::string, std::string> aten_reduce = {{"mul", "prod"}, {"max", "amax"}, {"min", "amin"}};
  if (reduction != "none" && reduction != "add" && !aten_reduce.count(reduction))
    unsupported(op, "reduction '" + reduction + "'");
  std::string where = op.describe();
  return [reduction, where](const Tensors& in) -> Tensors {
    at::Tensor out = in[0].clone(at::MemoryFormat::Contiguous);
    NdAddress a = nd_address(out, in[1], 0, where);
    std::vector<int64_t> update_shape{-1};
    update_shape.insert(update_shape.end(), a.rest.begin(), a.rest.end());
    at::Tensor updates = in[2].reshape(update_shape).to(out.scalar_type());
    if (reduction == "none" || reduction == "add")
      a.rows.index_put_({a.linear}, updates, reduction == "add");
    else
      a.rows.index_reduce_(0, a.linear, updates, aten_reduce.at(reduction), true);
    return {out};
  };
}

// TopK: equal values keep their index order (ONNX: the lower index first), so a stable sort.
Kernel make_top_k(const Op& op, int64_t opset) {
  int64_t axis = op.attr_int("axis", -1), k_attr = op.attr_int("k", -1);
  bool largest = op.attr_int("largest", 1) != 0;
  bool legacy = opset < 10;
  Op desc = op;
  return [=](const Tensors& in) -> Tensors {
    const at::Tensor& x = in[0];
    int64_t a = normalize_axis(axis, x.dim(), desc);
    int64_t k = legacy ? k_attr : single_int(in[1], desc.describe(), "K");
    if (k < 0 || k > x.size(a))
      fail(ErrorCode::InvalidInput,
           desc.describe() + ": K=" + std::to_string(k) + " for an axis of " + std::to_string(x.size(a)));
    auto [values, indices] = at::sort(x, true, a, largest);
    return {values.narrow(a, 0, k).contiguous(), indices.narrow(a, 0, k).contiguous()};
  };
}

Kernel make_cum_sum(const Op& op, int64_t) {
  bool exclusive = op.attr_int("exclusive", 0) != 0, reverse = op.attr_int("reverse", 0) != 0;
  Op desc = op;
  return [exclusive, reverse, desc](const Tensors& in) -> Tensors {
    at::Tensor x = in[0];
    int64_t a = normalize_axis(single_int(in[1], desc.describe(), "axis"), x.dim(), desc);
    if (reverse) x = x.flip(a);
    at::Tensor y = at::cumsum(x, a).to(x.scalar_type());
    if (exclusive && x.size(a) > 0) y = at::cat({at::zeros_like(x.narrow(a, 0, 1)), y.narrow(a, 0, x.size(a) - 1)}, a);
    return {reverse ? y.flip(a) : y};
  };
}

Kernel make_trilu(const Op& op, int64_t) {
  bool upper = op.attr_int("upper", 1) != 0;
  std::string where = op.describe();
  return [upper, where](const Tensors& in) -> Tensors {
    int64_t k = in.size() > 1 && in[1].defined() ? single_int(in[1], where, "k") : 0;
    return {upper ? at::triu(in[0], k) : at::tril(in[0], k)};
  };
}

Kernel make_one_hot(const Op& op, int64_t) {
  int64_t axis = op.attr_int("axis", -1);
  Op desc = op;
  return [axis, desc](const Tensors& in) -> Tensors {
    int64_t depth = static_cast<int64_t>(in[1].to(at::kDouble).reshape({-1})[0].item<double>());
    if (depth <= 0) fail(ErrorCode::InvalidInput, desc.describe() + ": depth " + std::to_string(depth));
    at::Tensor idx = wrap_negative(in[0].to(at::kDouble).floor(), depth);
    at::Tensor valid = (idx >= 0).logical_and(idx < depth);
    at::Tensor hot = at::one_hot(at::where(valid, idx, at::zeros_like(idx)), depth).logical_and(valid.unsqueeze(-1));
    int64_t a = normalize_axis(axis, in[0].dim() + 1, desc);
    hot = hot.movedim(-1, a);
    at::Tensor values = in[2].reshape({-1});
    return {at::where(hot, values[1], values[0])};
  };
}

Kernel make_eye_like(const Op& op, int64_t) {
  int64_t k = op.attr_int("k", 0);
  bool has_dtype = op.has_attr("dtype");
  at::ScalarType type = has_dtype ? to_scalar_type(static_cast<DType>(op.attr_int("dtype", 1))) : at::kFloat;
  return [k, has_dtype, type](const Tensors& in) -> Tensors {
    const at::Tensor& x = in[0];
    at::Tensor ones = at::ones({x.size(0), x.size(1)}, x.options().dtype(at::kDouble));
    return {ones.triu(k).tril(k).to(has_dtype ? type : x.scalar_type())};
  };
}

Kernel make_non_zero(const Op&, int64_t) {
  return [](const Tensors& in) -> Tensors {
    at::Tensor x = in[0].dim() == 0 ? in[0].reshape({1}) : in[0];
    return {at::nonzero(x).t().contiguous()};
  };
}

// Col2Im (opset 18): sums the columns of sliding blocks back into an image. Asymmetric pads: fold
// into the padded image, then crop it.
Kernel make_col2im(const Op& op, int64_t) {
  std::vector<int64_t> dilations = op.attr_ints("dilations", {1, 1}), pads = op.attr_ints("pads", {0, 0, 0, 0}),
                       strides = op.attr_ints("strides", {1, 1});
  if (dilations.size() != 2 || pads.size() != 4 || strides.size() != 2) unsupported(op, "only 2-D images");
  std::string where = op.describe();
  return [=](const Tensors& in) -> Tensors {
    std::vector<int64_t> image = int_values(in[1]), block = int_values(in[2]);
    if (image.size() != 2 || block.size() != 2) fail(ErrorCode::Unsupported, where + ": only 2-D images are supported");
    std::vector<int64_t> padded{image[0] + pads[0] + pads[2], image[1] + pads[1] + pads[3]};
    at::Tensor y = at::col2im(in[0], padded, block, dilations, {0, 0}, strides);
    return {y.narrow(2, pads[0], image[0]).narrow(3, pads[1], image[1]).contiguous()};
  };
}

// NonMaxSuppression per batch and class: candidates above score_threshold by descending score
// (ties: lower box index first), a candidate kept unless its IoU with a kept box exceeds
// iou_threshold, at most max_output_boxes_per_class (absent or 0: none). Output rows
// [batch, class, box] in that order, as ONNX Runtime gives them.
Kernel make_non_max_suppression(const Op& op, int64_t) {
  bool center = op.attr_int("center_point_box", 0) != 0;
  Op desc = op;
  return [center, desc](const Tensors& in) -> Tensors {
    const std::string where = desc.describe();
    if (in[0].dim() != 3 || in[0].size(2) != 4 || in[1].dim() != 3 || in[1].size(0) != in[0].size(0) ||
        in[1].size(2) != in[0].size(1))
      fail(ErrorCode::InvalidInput, where + ": boxes must be [batches, boxes, 4] and scores [batches, classes, boxes]");
    int64_t max_out = in.size() > 2 && in[2].defined() && in[2].numel() > 0
                          ? single_int(in[2], where, "max_output_boxes_per_class")
                          : 0;
    double iou_limit =
        in.size() > 3 && in[3].defined() && in[3].numel() > 0 ? in[3].reshape({-1})[0].item<double>() : 0.0;
    bool has_score_limit = in.size() > 4 && in[4].defined() && in[4].numel() > 0;
    double score_limit = has_score_limit ? in[4].reshape({-1})[0].item<double>() : 0.0;
    at::Tensor boxes = in[0].to(at::kFloat).contiguous(), scores = in[1].to(at::kFloat).contiguous();
    int64_t batches = boxes.size(0), n = boxes.size(1), classes = scores.size(1);
    // Corners (y1, x1, y2, x2) with y1 <= y2, x1 <= x2 per box.
    std::vector<std::array<float, 4>> corner(static_cast<size_t>(batches * n));
    const float* b = boxes.data_ptr<float>();
    for (int64_t i = 0; i < batches * n; ++i) {
      const float* v = b + 4 * i;
      std::array<float, 4> c;
      if (center)
        c = {v[1] - v[3] / 2, v[0] - v[2] / 2, v[1] + v[3] / 2, v[0] + v[2] / 2};
      else
        c = {std::min(v[0], v[2]), std::min(v[1], v[3]), std::max(v[0], v[2]), std::max(v[1], v[3])};
      corner[static_cast<size_t>(i)] = c;
    }
    auto over_limit = [&](const std::array<float, 4>& p, const std::array<float, 4>& q) {
      float area_p = (p[2] - p[0]) * (p[3] - p[1]), area_q = (q[2] - q[0]) * (q[3] - q[1]);
      if (area_p <= 0 || area_q <= 0) return false;
      float h = std::min(p[2], q[2]) - std::max(p[0], q[0]), w = std::min(p[3], q[3]) - std::max(p[1], q[1]);
      if (h <= 0 || w <= 0) return false;
      float inter = h * w;
      return inter / (area_p + area_q - inter) > iou_limit;
    };
    std::vector<int64_t> rows;
    const float* s = scores.data_ptr<float>();
    for (int64_t bi = 0; bi < batches && max_out > 0; ++bi)
      for (int64_t ci = 0; ci < classes; ++ci) {
        const float* sc = s + (bi * classes + ci) * n;
        std::vector<int64_t> order;
        for (int64_t i = 0; i < n; ++i)
          if (!has_score_limit || sc[i] > score_limit) order.push_back(i);
        std::stable_sort(order.begin(), order.end(), [&](int64_t x, int64_t y) { return sc[x] > sc[y]; });
        std::vector<int64_t> kept;
        for (int64_t i : order) {
          if (static_cast<int64_t>(kept.size()) >= max_out) break;
          bool suppressed = false;
          for (int64_t k : kept)
            if ((suppressed =
                     over_limit(corner[static_cast<size_t>(bi * n + i)], corner[static_cast<size_t>(bi * n + k)])))
              break;
          if (suppressed) continue;
          kept.push_back(i);
          rows.insert(rows.end(), {bi, ci, i});
        }
      }
    int64_t count = static_cast<int64_t>(rows.size() / 3);
    return {at::tensor(rows, at::TensorOptions().dtype(at::kLong)).reshape({count, 3})};
  };
}

// Compress: the slices along `axis` (no axis: of the flattened input) whose condition is true;
// a condition shorter than the axis leaves the rest out.
Kernel make_compress(const Op& op, int64_t) {
  bool has_axis = op.has_attr("axis");
  int64_t axis = op.attr_int("axis", 0);
  Op desc = op;
  return [=](const Tensors& in) -> Tensors {
    at::Tensor x = has_axis ? in[0] : in[0].reshape({-1});
    int64_t a = has_axis ? normalize_axis(axis, x.dim(), desc) : 0;
    at::Tensor cond = in[1].to(at::kBool).reshape({-1});
    if (cond.numel() > x.size(a))
      fail(ErrorCode::InvalidInput, desc.describe() + ": condition of " + std::to_string(cond.numel()) +
                                        " for an axis of " + std::to_string(x.size(a)));
    return {x.index_select(a, at::nonzero(cond).reshape({-1})).contiguous()};
  };
}

// ReverseSequence: along time_axis, the first sequence_lens[b] entries of each batch entry b
// reversed, the rest kept.
Kernel make_reverse_sequence(const Op& op, int64_t) {
  int64_t time_axis = op.attr_int("time_axis", 0), batch_axis = op.attr_int("batch_axis", 1);
  if (!((time_axis == 0 && batch_axis == 1) || (time_axis == 1 && batch_axis == 0)))
    fail(ErrorCode::InvalidModel, op.describe() + ": ReverseSequence needs time_axis and batch_axis 0 and 1");
  Op desc = op;
  return [=](const Tensors& in) -> Tensors {
    const at::Tensor& x = in[0];
    std::vector<int64_t> lens = int_values(in[1]);
    int64_t batch = x.size(batch_axis), time = x.size(time_axis);
    if (static_cast<int64_t>(lens.size()) != batch)
      fail(ErrorCode::InvalidInput, desc.describe() + ": " + std::to_string(lens.size()) +
                                        " sequence_lens for a batch of " + std::to_string(batch));
    std::vector<at::Tensor> rows;
    for (int64_t b = 0; b < batch; ++b) {
      if (lens[static_cast<size_t>(b)] < 0 || lens[static_cast<size_t>(b)] > time)
        fail(ErrorCode::InvalidInput, desc.describe() + ": sequence length " +
                                          std::to_string(lens[static_cast<size_t>(b)]) + " for a time axis of " +
                                          std::to_string(time));
      std::vector<int64_t> order(static_cast<size_t>(time));
      for (int64_t t = 0; t < time; ++t)
        order[static_cast<size_t>(t)] = t < lens[static_cast<size_t>(b)] ? lens[static_cast<size_t>(b)] - 1 - t : t;
      at::Tensor row = x.narrow(batch_axis, b, 1);
      rows.push_back(
          row.index_select(time_axis, at::tensor(order, at::TensorOptions().dtype(at::kLong).device(x.device()))));
    }
    return {at::cat(rows, batch_axis)};
  };
}

// Unique: distinct values (or slices along `axis`), sorted (default) or in order of first
// occurrence; with each one's first index, the inverse map and the counts.
Kernel make_unique(const Op& op, int64_t) {
  bool sorted = op.attr_int("sorted", 1) != 0, has_axis = op.has_attr("axis");
  int64_t axis = op.attr_int("axis", 0);
  Op desc = op;
  return [=](const Tensors& in) -> Tensors {
    at::Tensor x = has_axis ? in[0] : in[0].reshape({-1});
    int64_t a = has_axis ? normalize_axis(axis, x.dim(), desc) : 0;
    auto [y, inverse, counts] = at::unique_dim(x, a, /*sorted=*/true, /*return_inverse=*/true, /*return_counts=*/true);
    int64_t n = x.size(a), k = y.size(a);
    at::Tensor first = at::full({k}, n, at::kLong).scatter_reduce(0, inverse, at::arange(n, at::kLong), "amin");
    if (!sorted) {  // order of first occurrence
      at::Tensor order = at::argsort(first), rank = at::argsort(order);
      y = y.index_select(a, order);
      counts = counts.index_select(0, order);
      first = first.index_select(0, order);
      inverse = rank.index_select(0, inverse);
    }
    return {y.contiguous(), first, inverse, counts};
  };
}

}  // namespace edgequant::exec
