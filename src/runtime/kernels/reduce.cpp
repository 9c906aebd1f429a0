// ReduceMean, ReduceSum, ReduceMax and ReduceMin as ESP-DL computes them (dl_module_reduce_*.hpp):
// the codes summed exactly (int32/int64), then Mean: round(float(sum) 2^e_in / count 2^-e_out) in
// float32 steps, Sum: shift_and_round(sum, e_out - e_in); Max/Min move codes (one grid). Float-scale
// grids (TFLite): the real sum (sum - count zp_in) s_in, averaged, on the output grid.
// Axes from input 1 (opset 18, ESP-DL's parameter) or the `axes` attribute (opset 13).
#include <cmath>

#include "ir/op_traits.h"
#include "runtime/kernels/kernels.h"

namespace edgequant::runtime {

std::vector<bool> reduce_flags(const std::vector<int64_t>& axes, size_t rank, bool noop_with_empty_axes) {
  std::vector<bool> flags(rank, axes.empty() && !noop_with_empty_axes);
  for (int64_t a : axes) {
    int64_t d = a < 0 ? a + int64_t(rank) : a;
    if (d >= 0 && d < int64_t(rank)) flags[size_t(d)] = true;
  }
  return flags;
}

bool espdl_reduce_supported(const std::vector<bool>& flags) {
  // ReduceBase::forward_template merges neighbouring dims with the same flag and handles these
  // patterns only (R: reduced, K: kept); any other leaves the output unwritten.
  std::string merged;
  for (bool f : flags)
    if (merged.empty() || merged.back() != (f ? 'R' : 'K')) merged += f ? 'R' : 'K';
  return merged == "R" || merged == "KR" || merged == "RK" || merged == "RKR" || merged == "KRK" || merged == "KRKR" ||
         merged == "RKRK";
}

namespace {
void reduce(const KernelArgs& args) {
  const IntTensor& x = args.in(0);
  IntTensor& y = args.out();
  size_t rank = x.shape.size();
  std::vector<int64_t> axes;
  bool has_axes_input = args.inputs.size() > 1 && args.inputs[1];
  if (has_axes_input)
    axes = ints_input(args, 1);
  else
    axes = args.node.attr_ints("axes");
  for (int64_t a : axes) norm_axis(args, a, int64_t(rank));
  std::vector<bool> flags = reduce_flags(axes, rank, args.node.attr_int("noop_with_empty_axes", 0) != 0);
  bool keep = args.node.attr_int("keepdims", 1) != 0;
  Shape out_shape;
  for (size_t d = 0; d < rank; ++d)
    if (!flags[d])
      out_shape.push_back(x.shape[d]);
    else if (keep)
      out_shape.push_back(1);
  set_output(args, y, out_shape);
  if (y.is_float()) y.floats.assign(size_t(shape_numel(out_shape)), 0.f);
  // Output element of each input element: its index with the reduced dims dropped.
  std::vector<int64_t> kept_strides(rank, 0);
  int64_t s = 1;
  for (size_t d = rank; d-- > 0;)
    if (!flags[d]) {
      kept_strides[d] = s;
      s *= x.shape[d];
    }
  int64_t n = x.numel(), groups = shape_numel(out_shape), count = groups ? n / groups : 0;
  OpType t = op_type_of(args.node.op_type);
  bool extreme = t == OpType::ReduceMax || t == OpType::ReduceMin;
  if (extreme && !x.is_float() && !same_grid(x, y))
    args.fail_node("input and output grids differ: " + args.node.op_type + " moves codes");
  std::vector<int64_t> acc(size_t(groups), 0);
  std::vector<double> facc(size_t(groups), 0.0);
  std::vector<bool> seen(size_t(groups), false);
  std::vector<int64_t> idx(rank, 0);
  for (int64_t i = 0; i < n; ++i) {
    int64_t o = 0;
    for (size_t d = 0; d < rank; ++d) o += idx[d] * kept_strides[d];
    auto fold = [&](auto& a, auto v) {
      if (!seen[size_t(o)])
        a = v;
      else if (t == OpType::ReduceMax)
        a = std::max(a, v);
      else if (t == OpType::ReduceMin)
        a = std::min(a, v);
      else
        a += v;
    };
    if (x.is_float())
      fold(facc[size_t(o)], double(x.floats[size_t(i)]));
    else
      fold(acc[size_t(o)], x.ints[size_t(i)]);
    seen[size_t(o)] = true;
    for (size_t d = rank; d-- > 0;) {
      if (++idx[d] < x.shape[d]) break;
      idx[d] = 0;
    }
  }
  for (int64_t o = 0; o < groups; ++o) {
    if (x.is_float()) {
      double v = t == OpType::ReduceMean && count ? facc[size_t(o)] / double(count) : facc[size_t(o)];
      store_real(y, o, v, args.rounding());
      continue;
    }
    int64_t a = acc[size_t(o)];
    if (!x.is_pow2() || !y.is_pow2()) {
      // Float-scale grids (TFLite's MEAN/SUM): the real sum (or extreme) from the codes and zero
      // point, then the output's grid; extremes keep their codes (same grid, checked above).
      if (extreme && !y.is_float()) {
        y.ints[size_t(o)] = a;
        continue;
      }
      double real = double(a - (extreme ? 1 : count) * x.zero_point()) * x.scale();
      if (t == OpType::ReduceMean && count) real /= double(count);
      if (y.is_float())
        store_real(y, o, real, args.rounding());
      else
        y.ints[size_t(o)] = saturate_to(
            static_cast<int64_t>(round_value(real / y.scale(), args.rounding()) + double(y.zero_point())), y.dtype);
      continue;
    }
    if (y.is_float()) {
      double v = double(a) * std::ldexp(1.0, x.exponent());
      store_real(y, o, t == OpType::ReduceMean && count ? v / double(count) : v, args.rounding());
    } else if (extreme) {
      y.ints[size_t(o)] = a;
    } else if (t == OpType::ReduceSum) {
      y.ints[size_t(o)] = saturate_to(shift_round(a, y.exponent() - x.exponent(), args.rounding()), y.dtype);
    } else {
      // (float)sum * 2^e_in / (float)count * 2^-e_out, each step a float32 operation.
      float v = static_cast<float>(a) * std::ldexp(1.f, x.exponent()) / static_cast<float>(count) *
                std::ldexp(1.f, -y.exponent());
      y.ints[size_t(o)] = float_to_code(v, y.dtype, args.rounding());
    }
  }
}
}  // namespace

EQ_RUNTIME_KERNEL(reduce_kernel) { reduce(args); }

}  // namespace edgequant::runtime
