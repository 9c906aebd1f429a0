// Reductions over axes (axes as attribute before opset 13/18, as input after).
#include <ATen/ATen.h>

#include <algorithm>

#include "exec/ops/factories.h"

namespace edgequant::exec {

namespace {
// Reduces x over `axes` (normalised, non-empty) with keepdims `keep`.
using Reduction = at::Tensor (*)(const at::Tensor& x, std::vector<int64_t>& axes, bool keep);

// Axes from the attribute (before opset 13/18) or the second input; the reduction is the table's choice.
Kernel reduce_kernel(const Op& op, Reduction reduce) {
  std::vector<int64_t> axes_attr = op.attr_ints("axes");
  bool keep = op.attr_int("keepdims", 1) != 0;
  bool noop_empty = op.attr_int("noop_with_empty_axes", 0) != 0;
  std::string where = op.describe();
  return [=](const Tensors& in) -> Tensors {
    const at::Tensor& x = in[0];
    std::vector<int64_t> axes = (in.size() > 1 && in[1].defined()) ? int_values(in[1]) : axes_attr;
    if (axes.empty()) {
      if (noop_empty) return {x.clone()};
      for (int64_t d = 0; d < x.dim(); ++d) axes.push_back(d);
    }
    for (auto& a : axes) a = normalize_axis(a, std::max<int64_t>(x.dim(), 1), where);
    if (x.dim() == 0) return {x.clone()};
    return {reduce(x, axes, keep)};
  };
}

at::Tensor mean(const at::Tensor& x, std::vector<int64_t>& axes, bool keep) {
  if (at::isIntegralType(x.scalar_type(), true)) return at::mean(x.to(at::kDouble), axes, keep).to(x.scalar_type());
  return at::mean(x, axes, keep);
}
at::Tensor prod(const at::Tensor& x, std::vector<int64_t>& axes, bool keep) {
  // ATen reduces one dim at a time; go from the last so indices stay valid.
  std::sort(axes.rbegin(), axes.rend());
  at::Tensor y = x;
  for (int64_t a : axes) y = at::prod(y, a, keep);
  return y.to(x.scalar_type());
}
}  // namespace

#define EQ_REDUCE(factory, expr)                                                                            \
  Kernel factory(const Op& op, int64_t) {                                                                   \
    return reduce_kernel(                                                                                   \
        op, [](const at::Tensor& x, std::vector<int64_t>& axes, bool keep) -> at::Tensor { return expr; }); \
  }
EQ_REDUCE(make_reduce_mean, mean(x, axes, keep))
EQ_REDUCE(make_reduce_sum, at::sum(x, axes, keep).to(x.scalar_type()))
EQ_REDUCE(make_reduce_max, at::amax(x, axes, keep))
EQ_REDUCE(make_reduce_min, at::amin(x, axes, keep))
EQ_REDUCE(make_reduce_l1, at::sum(at::abs(x), axes, keep).to(x.scalar_type()))
EQ_REDUCE(make_reduce_l2, at::sqrt(at::sum(x* x, axes, keep)).to(x.scalar_type()))
EQ_REDUCE(make_reduce_sum_square, at::sum(x* x, axes, keep).to(x.scalar_type()))
EQ_REDUCE(make_reduce_log_sum, at::log(at::sum(x, axes, keep)).to(x.scalar_type()))
EQ_REDUCE(make_reduce_log_sum_exp, at::logsumexp(x, axes, keep).to(x.scalar_type()))
EQ_REDUCE(make_reduce_prod, prod(x, axes, keep))
#undef EQ_REDUCE

namespace {
Kernel arg_reduce_kernel(const Op& op, bool is_max) {
  int64_t axis = op.attr_int("axis", 0);
  bool keep = op.attr_int("keepdims", 1) != 0;
  bool last = op.attr_int("select_last_index", 0) != 0;
  std::string where = op.describe();
  return [=](const Tensors& in) -> Tensors {
    at::Tensor x = in[0];
    int64_t a = normalize_axis(axis, x.dim(), where);
    if (last) x = x.flip(a);
    at::Tensor idx = is_max ? at::argmax(x, a, keep) : at::argmin(x, a, keep);
    if (last) idx = (x.size(a) - 1) - idx;
    return {idx};
  };
}

}  // namespace

Kernel make_arg_max(const Op& op, int64_t) { return arg_reduce_kernel(op, true); }
Kernel make_arg_min(const Op& op, int64_t) { return arg_reduce_kernel(op, false); }

}  // namespace edgequant::exec
