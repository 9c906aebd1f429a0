// Reductions over axes (axes as attribute before opset 13/18, as input after).
#include <ATen/ATen.h>

#include <algorithm>

#include "exec/ops/factories.h"

namespace edgequant::exec {

Kernel make_reduce(const Op& op, int64_t) {
  std::string type = op.type;
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
    auto dtype = x.scalar_type();
    if (type == "ReduceMean") {
      if (at::isIntegralType(dtype, true)) return {at::mean(x.to(at::kDouble), axes, keep).to(dtype)};
      return {at::mean(x, axes, keep)};
    }
    if (type == "ReduceSum") return {at::sum(x, axes, keep).to(dtype)};
    if (type == "ReduceMax") return {at::amax(x, axes, keep)};
    if (type == "ReduceMin") return {at::amin(x, axes, keep)};
    if (type == "ReduceL1") return {at::sum(at::abs(x), axes, keep).to(dtype)};
    if (type == "ReduceL2") return {at::sqrt(at::sum(x * x, axes, keep)).to(dtype)};
    if (type == "ReduceSumSquare") return {at::sum(x * x, axes, keep).to(dtype)};
    if (type == "ReduceLogSum") return {at::log(at::sum(x, axes, keep)).to(dtype)};
    if (type == "ReduceLogSumExp") return {at::logsumexp(x, axes, keep).to(dtype)};
    // ReduceProd: ATen reduces one dim at a time; go from the last so indices stay valid.
    std::sort(axes.rbegin(), axes.rend());
    at::Tensor y = x;
    for (int64_t a : axes) y = at::prod(y, a, keep);
    return {y.to(dtype)};
  };
}

Kernel make_arg_reduce(const Op& op, int64_t) {
  bool is_max = op.type == "ArgMax";
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

}  // namespace edgequant::exec
