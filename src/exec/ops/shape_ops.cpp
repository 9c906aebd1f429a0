// Data-movement and shape-computation ops: no arithmetic on values.
#include <ATen/ATen.h>

#include <algorithm>

#include "exec/ops/factories.h"

namespace edgequant::exec {

// Axes come from an attribute before some opset and from an optional input after it.
static std::vector<int64_t> axes_of(const Tensors& in, size_t index, const std::vector<int64_t>& attr) {
  if (in.size() > index && in[index].defined()) return int_values(in[index]);
  return attr;
}

Kernel make_reshape(const Op& op, int64_t opset) {
  bool allow_zero = op.attr_int("allowzero", 0) != 0;
  std::vector<int64_t> shape_attr = opset < 5 ? op.attr_ints("shape") : std::vector<int64_t>{};
  return [=](const Tensors& in) -> Tensors {
    const at::Tensor& x = in[0];
    std::vector<int64_t> shape = axes_of(in, 1, shape_attr);
    for (size_t i = 0; i < shape.size(); ++i)
      if (shape[i] == 0 && !allow_zero) shape[i] = x.size(static_cast<int64_t>(i));
    return {at::reshape(x, shape)};
  };
}

Kernel make_flatten(const Op& op, int64_t) {
  int64_t axis = op.attr_int("axis", 1);
  std::string where = op.describe();
  return [=](const Tensors& in) -> Tensors {
    const at::Tensor& x = in[0];
    int64_t a = axis < 0 ? axis + x.dim() : axis;
    if (a < 0 || a > x.dim()) fail(ErrorCode::InvalidModel, where + ": axis out of range");
    int64_t outer = 1, inner = 1;
    for (int64_t d = 0; d < x.dim(); ++d) (d < a ? outer : inner) *= x.size(d);
    return {at::reshape(x, {outer, inner})};
  };
}

Kernel make_transpose(const Op& op, int64_t) {
  std::vector<int64_t> perm = op.attr_ints("perm");
  return [perm](const Tensors& in) -> Tensors {
    std::vector<int64_t> p = perm;
    if (p.empty())
      for (int64_t d = in[0].dim(); d-- > 0;) p.push_back(d);
    return {in[0].permute(p)};
  };
}

Kernel make_squeeze(const Op& op, int64_t) {
  std::vector<int64_t> axes_attr = op.attr_ints("axes");
  std::string where = op.describe();
  return [=](const Tensors& in) -> Tensors {
    at::Tensor x = in[0];
    std::vector<int64_t> axes = axes_of(in, 1, axes_attr);
    if (axes.empty()) return {x.squeeze()};
    for (auto& a : axes) a = normalize_axis(a, x.dim(), where);
    std::sort(axes.rbegin(), axes.rend());
    for (int64_t a : axes) {
      if (x.size(a) != 1)
        fail(ErrorCode::InvalidModel, where + ": cannot squeeze a dimension of size " + std::to_string(x.size(a)));
      x = x.squeeze(a);
    }
    return {x};
  };
}

Kernel make_unsqueeze(const Op& op, int64_t) {
  std::vector<int64_t> axes_attr = op.attr_ints("axes");
  std::string where = op.describe();
  return [=](const Tensors& in) -> Tensors {
    at::Tensor x = in[0];
    std::vector<int64_t> axes = axes_of(in, 1, axes_attr);
    int64_t out_rank = x.dim() + static_cast<int64_t>(axes.size());
    for (auto& a : axes) a = normalize_axis(a, out_rank, where);
    std::sort(axes.begin(), axes.end());
    for (int64_t a : axes) x = x.unsqueeze(a);
    return {x};
  };
}

Kernel make_concat(const Op& op, int64_t) {
  int64_t axis = op.attr_int("axis", 1);
  std::string where = op.describe();
  return [=](const Tensors& in) -> Tensors { return {at::cat(in, normalize_axis(axis, in[0].dim(), where))}; };
}

Kernel make_split(const Op& op, int64_t) {
  int64_t axis = op.attr_int("axis", 0);
  std::vector<int64_t> split_attr = op.attr_ints("split");
  int64_t n_out = static_cast<int64_t>(op.outputs.size());
  std::string where = op.describe();
  return [=](const Tensors& in) -> Tensors {
    const at::Tensor& x = in[0];
    int64_t a = normalize_axis(axis, x.dim(), where);
    std::vector<int64_t> sizes = axes_of(in, 1, split_attr);
    if (sizes.empty()) {
      int64_t chunk = (x.size(a) + n_out - 1) / n_out;
      for (int64_t i = 0; i < n_out; ++i) sizes.push_back(std::min(chunk, x.size(a) - i * chunk));
    }
    auto parts = at::split_with_sizes(x, sizes, a);
    return Tensors(parts.begin(), parts.end());
  };
}

Kernel make_slice(const Op& op, int64_t opset) {
  std::vector<int64_t> starts_attr = op.attr_ints("starts"), ends_attr = op.attr_ints("ends"),
                       axes_attr = op.attr_ints("axes");
  bool legacy = opset < 10;
  std::string where = op.describe();
  return [=](const Tensors& in) -> Tensors {
    at::Tensor x = in[0];
    std::vector<int64_t> starts = legacy ? starts_attr : int_values(in[1]);
    std::vector<int64_t> ends = legacy ? ends_attr : int_values(in[2]);
    std::vector<int64_t> axes = legacy ? axes_attr : axes_of(in, 3, {});
    std::vector<int64_t> steps = legacy ? std::vector<int64_t>{} : axes_of(in, 4, {});
    if (axes.empty())
      for (size_t i = 0; i < starts.size(); ++i) axes.push_back(static_cast<int64_t>(i));
    for (size_t i = 0; i < starts.size(); ++i) {
      int64_t a = normalize_axis(axes[i], x.dim(), where);
      int64_t dim = x.size(a), step = steps.empty() ? 1 : steps[i];
      if (step == 0) fail(ErrorCode::InvalidModel, where + ": slice step 0");
      int64_t s = starts[i] < 0 ? starts[i] + dim : starts[i];
      int64_t e = ends[i] < 0 ? ends[i] + dim : ends[i];
      if (ends[i] <= INT64_MIN / 2) e = -1;  // "to the very beginning" with a negative step
      if (step > 0) {
        s = std::clamp<int64_t>(s, 0, dim);
        e = std::clamp<int64_t>(e, 0, dim);
        x = e > s ? x.slice(a, s, e, step) : x.slice(a, 0, 0);
      } else {
        s = std::clamp<int64_t>(s, -1, dim - 1);
        e = std::clamp<int64_t>(e, -1, dim - 1);
        auto idx = at::arange(s, e, step, at::TensorOptions().dtype(at::kLong).device(x.device()));
        x = x.index_select(a, idx);
      }
    }
    return {x};
  };
}

Kernel make_gather(const Op& op, int64_t) {
  int64_t axis = op.attr_int("axis", 0);
  std::string where = op.describe();
  return [=](const Tensors& in) -> Tensors {
    const at::Tensor& x = in[0];
    int64_t a = normalize_axis(axis, x.dim(), where);
    at::Tensor idx = in[1].to(at::kLong);
    idx = at::where(idx < 0, idx + x.size(a), idx);
    at::Tensor y = x.index_select(a, idx.reshape({-1}));
    std::vector<int64_t> shape(x.sizes().begin(), x.sizes().begin() + a);
    shape.insert(shape.end(), idx.sizes().begin(), idx.sizes().end());
    shape.insert(shape.end(), x.sizes().begin() + a + 1, x.sizes().end());
    return {y.reshape(shape)};
  };
}

Kernel make_expand(const Op& op, int64_t) {
  std::string where = op.describe();
  return [where](const Tensors& in) -> Tensors {
    const at::Tensor& x = in[0];
    std::vector<int64_t> shape = int_values(in[1]);
    size_t rank = std::max<size_t>(shape.size(), static_cast<size_t>(x.dim()));
    std::vector<int64_t> out(rank);
    for (size_t i = 0; i < rank; ++i) {
      int64_t a = i < rank - static_cast<size_t>(x.dim()) ? 1 : x.size(static_cast<int64_t>(i - (rank - x.dim())));
      int64_t b = i < rank - shape.size() ? 1 : shape[i - (rank - shape.size())];
      if (a != b && a != 1 && b != 1) fail(ErrorCode::InvalidModel, where + ": shapes cannot be broadcast");
      out[i] = a == 1 ? b : a;
    }
    return {x.expand(out).contiguous()};
  };
}

Kernel make_tile(const Op&, int64_t) {
  return [](const Tensors& in) -> Tensors { return {in[0].repeat(int_values(in[1]))}; };
}

Kernel make_shape(const Op& op, int64_t) {
  int64_t start = op.attr_int("start", 0);
  bool has_end = op.has_attr("end");
  int64_t end = op.attr_int("end", 0);
  return [=](const Tensors& in) -> Tensors {
    int64_t r = in[0].dim();
    int64_t s = std::clamp<int64_t>(start < 0 ? start + r : start, 0, r);
    int64_t e = has_end ? std::clamp<int64_t>(end < 0 ? end + r : end, 0, r) : r;
    std::vector<int64_t> dims(in[0].sizes().begin() + s, in[0].sizes().begin() + std::max(s, e));
    return {at::tensor(dims, at::TensorOptions().dtype(at::kLong)).to(in[0].device())};
  };
}

Kernel make_constant_of_shape(const Op& op, int64_t) {
  at::Tensor value = at::zeros({1}, at::kFloat);
  if (const Tensor* t = op.attr_tensor("value")) value = view_tensor(*t).clone().reshape({-1});
  return [value](const Tensors& in) -> Tensors {
    return {at::full(int_values(in[0]), value.item(), value.options().device(in[0].device()))};
  };
}

Kernel make_cast(const Op& op, int64_t) {
  DType to = static_cast<DType>(op.attr_int("to", 0));
  if (to == DType::String) unsupported(op, "Cast to string");
  // 4-bit tensors run as 8-bit ones: a cast would not bring values into the 4-bit range.
  if (to == DType::Int4 || to == DType::UInt4) unsupported(op, std::string("Cast to ") + dtype_name(to));
  at::ScalarType type = to_scalar_type(to);
  return [type](const Tensors& in) -> Tensors { return {in[0].to(type)}; };
}

Kernel make_identity(const Op&, int64_t) {
  return [](const Tensors& in) -> Tensors { return {in[0]}; };
}

Kernel make_dropout(const Op&, int64_t) {
  // Inference: the identity, with an all-true mask for the optional second output.
  return [](const Tensors& in) -> Tensors {
    if (in.size() > 2 && in[2].defined() && in[2].item<bool>())
      fail(ErrorCode::Unsupported, "Dropout with training_mode=true (random) is not supported");
    return {in[0], at::ones_like(in[0], at::kBool)};
  };
}

Kernel make_range(const Op&, int64_t) {
  return [](const Tensors& in) -> Tensors {
    auto opts = in[0].options();
    if (at::isIntegralType(in[0].scalar_type(), false))
      return {at::arange(in[0].item<int64_t>(), in[1].item<int64_t>(), in[2].item<int64_t>(), opts)};
    return {at::arange(in[0].item<double>(), in[1].item<double>(), in[2].item<double>(), opts)};
  };
}

Kernel make_size(const Op&, int64_t) {
  return [](const Tensors& in) -> Tensors {
    return {at::scalar_tensor(in[0].numel(), at::TensorOptions().dtype(at::kLong))};
  };
}

// CastLike (opset 15): Cast to the element type of the second input.
Kernel make_cast_like(const Op& op, int64_t) {
  if (op.inputs.size() > 1 && op.inputs[1] &&
      (op.inputs[1]->dtype == DType::Int4 || op.inputs[1]->dtype == DType::UInt4))
    unsupported(op, std::string("CastLike to ") + dtype_name(op.inputs[1]->dtype));
  return [](const Tensors& in) -> Tensors { return {in[0].to(in[1].scalar_type())}; };
}

}  // namespace edgequant::exec
