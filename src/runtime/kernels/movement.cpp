// Data movement: codes are copied, never rescaled (ESP-DL handles no exponent here, so the output
// must share the input's exponent and dtype). Reshape, Flatten, (Un)Squeeze, Identity, Transpose,
// Concat, Slice, Gather, DepthToSpace, SpaceToDepth, InsertZeros, Pad.
#include <algorithm>
#include <numeric>

#include "runtime/kernels/kernels.h"

namespace edgequant::runtime {

namespace {
void check_same_grid(const KernelArgs& args, const IntTensor& x) {
  const IntTensor& y = args.out();
  if (!same_grid(x, y))
    args.fail_node(std::string("data movement from ") + dtype_name(x.dtype) + " 2^" + std::to_string(x.exponent()) +
                   " to " + dtype_name(y.dtype) + " 2^" + std::to_string(y.exponent()) +
                   " (a RequantizeLinear is missing)");
}

void copy_with_shape(const KernelArgs& args, Shape shape) {
  const IntTensor& x = args.in(0);
  check_same_grid(args, x);
  for (int64_t d : shape)
    if (d < 0) args.fail_node("cannot reshape " + shape_str(x.shape) + " to " + shape_str(shape));
  if (shape_numel(shape) != x.numel())
    args.fail_node("cannot reshape " + shape_str(x.shape) + " to " + shape_str(shape));
  IntTensor& y = args.out();
  y.shape = std::move(shape);
  y.ints = x.ints;
  y.floats = x.floats;
}

// Gathers element i of the output from input flat index src(i).
template <class F>
void gather_elements(const KernelArgs& args, const IntTensor& x, int64_t n, F src) {
  IntTensor& y = args.out();
  if (x.is_float()) {
    y.floats.resize(size_t(n));
    for (int64_t i = 0; i < n; ++i) y.floats[size_t(i)] = x.floats[size_t(src(i))];
  } else {
    y.ints.resize(size_t(n));
    for (int64_t i = 0; i < n; ++i) y.ints[size_t(i)] = x.ints[size_t(src(i))];
  }
}

std::vector<int64_t> axes_of(const KernelArgs& args) {
  if (args.inputs.size() > 1 && args.inputs[1]) return ints_input(args, 1);
  return args.node.attr_ints("axes");
}
}  // namespace

EQ_RUNTIME_KERNEL(reshape_kernel) {
  const IntTensor& x = args.in(0);
  std::vector<int64_t> spec = ints_input(args, 1);
  bool allowzero = args.node.attr_int("allowzero", 0) != 0;
  Shape s(spec.size());
  int64_t known = 1, infer = -1;
  for (size_t i = 0; i < spec.size(); ++i) {
    s[i] = spec[i] == 0 && !allowzero && i < x.shape.size() ? x.shape[i] : spec[i];
    if (s[i] == -1) {
      if (infer >= 0) args.fail_node("more than one -1 in the shape");
      infer = int64_t(i);
    } else {
      known *= s[i];
    }
  }
  if (infer >= 0) s[size_t(infer)] = known == 0 ? 0 : x.numel() / known;
  copy_with_shape(args, s);
}

EQ_RUNTIME_KERNEL(flatten_kernel) {
  const IntTensor& x = args.in(0);
  int64_t rank = int64_t(x.shape.size());
  int64_t axis = args.node.attr_int("axis", 1);
  if (axis < 0) axis += rank;
  if (axis < 0 || axis > rank) args.fail_node("axis out of range");
  int64_t outer = 1;
  for (int64_t d = 0; d < axis; ++d) outer *= x.shape[size_t(d)];
  copy_with_shape(args, {outer, outer == 0 ? 0 : x.numel() / outer});
}

EQ_RUNTIME_KERNEL(squeeze_kernel) {
  const IntTensor& x = args.in(0);
  std::vector<int64_t> axes = axes_of(args);
  Shape s;
  int64_t rank = int64_t(x.shape.size());
  for (int64_t d = 0; d < rank; ++d) {
    bool drop = axes.empty()
                    ? x.shape[size_t(d)] == 1
                    : std::any_of(axes.begin(), axes.end(), [&](int64_t a) { return norm_axis(args, a, rank) == d; });
    if (!drop) s.push_back(x.shape[size_t(d)]);
  }
  copy_with_shape(args, s);
}

EQ_RUNTIME_KERNEL(unsqueeze_kernel) {
  const IntTensor& x = args.in(0);
  std::vector<int64_t> axes = axes_of(args);
  int64_t rank = int64_t(x.shape.size() + axes.size());
  std::vector<bool> inserted(size_t(rank), false);
  for (int64_t a : axes) inserted[size_t(norm_axis(args, a, rank))] = true;
  Shape s;
  size_t k = 0;
  for (int64_t d = 0; d < rank; ++d) s.push_back(inserted[size_t(d)] ? 1 : x.shape[k++]);
  copy_with_shape(args, s);
}

EQ_RUNTIME_KERNEL(identity_kernel) { copy_with_shape(args, args.in(0).shape); }

EQ_RUNTIME_KERNEL(transpose_kernel) {
  const IntTensor& x = args.in(0);
  check_same_grid(args, x);
  size_t rank = x.shape.size();
  std::vector<int64_t> perm = args.node.attr_ints("perm");
  if (perm.empty()) {
    perm.resize(rank);
    std::iota(perm.rbegin(), perm.rend(), 0);
  }
  if (perm.size() != rank)
    args.fail_node("perm has " + std::to_string(perm.size()) + " axes, input " + shape_str(x.shape));
  std::vector<bool> seen(rank, false);
  for (int64_t p : perm) {
    if (p < 0 || p >= int64_t(rank) || seen[size_t(p)]) args.fail_node("perm is not a permutation");
    seen[size_t(p)] = true;
  }
  IntTensor& y = args.out();
  y.shape.resize(rank);
  for (size_t d = 0; d < rank; ++d) y.shape[d] = x.shape[size_t(perm[d])];
  std::vector<int64_t> xs = strides_of(x.shape), ys = strides_of(y.shape);
  gather_elements(args, x, x.numel(), [&](int64_t i) {
    int64_t src = 0;
    for (size_t d = 0; d < rank; ++d) src += (i / ys[d]) % y.shape[d] * xs[size_t(perm[d])];
    return src;
  });
}

namespace {
// Channels-last [N, H, W, C] <-> [N, H*b, W*b, C/b^2] in ONNX's channel orders: DCR (DepthToSpace's
// default, SpaceToDepth's only) takes depth (i * b + j) * C' + c to pixel (i, j) of channel c;
// CRD takes c * b^2 + i * b + j. `to_space`: DepthToSpace. ESP-DL's DCR DepthToSpace and its
// SpaceToDepth order channels otherwise (check refuses the cases where that shows).
void space_depth(const KernelArgs& args, bool to_space) {
  const IntTensor& x = args.in(0);
  check_same_grid(args, x);
  if (x.shape.size() != 4) args.fail_node("needs a 4-D input, got " + shape_str(x.shape));
  const int64_t b = args.node.attr_int("blocksize", 0);
  const bool crd = to_space && args.node.attr_string("mode", "DCR") == "CRD";
  const int64_t n = x.shape[0];
  // The pixel side: [n, hs, ws, cs]; the depth side: [n, hs / b, ws / b, cs * b * b].
  const int64_t hs = to_space ? x.shape[1] * b : x.shape[1], ws = to_space ? x.shape[2] * b : x.shape[2];
  const int64_t cs = to_space ? (b > 0 ? x.shape[3] / (b * b) : 0) : x.shape[3];
  if (b < 1 || (to_space && x.shape[3] % (b * b) != 0) || (!to_space && (hs % b != 0 || ws % b != 0)))
    args.fail_node("blocksize " + std::to_string(b) + " does not fit " + shape_str(x.shape));
  const int64_t hd = hs / b, wd = ws / b, cd = cs * b * b;
  // Flat index on the depth side of pixel (nn, oh, ow, c).
  auto depth_index = [&](int64_t nn, int64_t oh, int64_t ow, int64_t c) {
    const int64_t i = oh % b, j = ow % b;
    const int64_t ch = crd ? c * b * b + i * b + j : (i * b + j) * cs + c;
    return ((nn * hd + oh / b) * wd + ow / b) * cd + ch;
  };
  IntTensor& y = args.out();
  y.shape = to_space ? Shape{n, hs, ws, cs} : Shape{n, hd, wd, cd};
  if (to_space) {
    gather_elements(args, x, y.numel(), [&](int64_t k) {
      const int64_t c = k % cs, ow = k / cs % ws, oh = k / (cs * ws) % hs, nn = k / (cs * ws * hs);
      return depth_index(nn, oh, ow, c);
    });
  } else {
    // Output element k (depth side) comes from the pixel whose depth index is k.
    std::vector<int64_t> src(size_t(y.numel()));
    for (int64_t k = 0; k < x.numel(); ++k) {
      const int64_t c = k % cs, ow = k / cs % ws, oh = k / (cs * ws) % hs, nn = k / (cs * ws * hs);
      src[size_t(depth_index(nn, oh, ow, c))] = k;
    }
    gather_elements(args, x, y.numel(), [&](int64_t k) { return src[size_t(k)]; });
  }
}
}  // namespace

EQ_RUNTIME_KERNEL(depth_to_space_kernel) { space_depth(args, true); }
EQ_RUNTIME_KERNEL(space_to_depth_kernel) { space_depth(args, false); }

// InsertZeros on channels-last [N, spatial..., C] (ESP-DL's dl_module_insert_zeros.hpp): input
// pixel p lands at p * stride; everything else, output_padding included, is code 0.
EQ_RUNTIME_KERNEL(insert_zeros_kernel) {
  const IntTensor& x = args.in(0);
  check_same_grid(args, x);
  const int64_t rank = int64_t(x.shape.size()), nd = rank - 2;
  std::vector<int64_t> stride = args.node.attr_ints("stride"), extra = args.node.attr_ints("output_padding");
  if (nd < 1 || (stride.size() != 1 && int64_t(stride.size()) != nd) ||
      (extra.size() > 1 && int64_t(extra.size()) != nd))
    args.fail_node("stride/output_padding do not match input " + shape_str(x.shape));
  IntTensor& y = args.out();
  y.shape = x.shape;
  std::vector<int64_t> s(static_cast<size_t>(nd));
  for (int64_t d = 0; d < nd; ++d) {
    s[size_t(d)] = stride.size() == 1 ? stride[0] : stride[size_t(d)];
    const int64_t e = extra.empty() ? 0 : extra.size() == 1 ? extra[0] : extra[size_t(d)];
    if (s[size_t(d)] < 1 || e < 0) args.fail_node("stride < 1 or output_padding < 0");
    const int64_t len = x.shape[size_t(1 + d)];
    y.shape[size_t(1 + d)] = len + (s[size_t(d)] - 1) * (len - 1) + e;
  }
  std::vector<int64_t> xs = strides_of(x.shape), ys = strides_of(y.shape);
  if (x.is_float())
    y.floats.assign(size_t(y.numel()), 0.f);
  else
    y.ints.assign(size_t(y.numel()), 0);
  for (int64_t i = 0; i < x.numel(); ++i) {
    int64_t dst = (i / xs[0]) * ys[0] + i % x.shape[size_t(rank - 1)];
    for (int64_t d = 0; d < nd; ++d)
      dst += (i / xs[size_t(1 + d)]) % x.shape[size_t(1 + d)] * s[size_t(d)] * ys[size_t(1 + d)];
    if (x.is_float())
      y.floats[size_t(dst)] = x.floats[size_t(i)];
    else
      y.ints[size_t(dst)] = x.ints[size_t(i)];
  }
}

// Pad (ESP-DL's TensorBase::pad, ONNX's semantics): pads [begin..., end...] from input 1 (opset
// 11+) or the attribute, mode constant (code 0: `check` lets only a zero value through), reflect
// (mirrored without the edge) or edge; in the source layout.
EQ_RUNTIME_KERNEL(pad_kernel) {
  const IntTensor& x = args.in(0);
  check_same_grid(args, x);
  const int64_t rank = int64_t(x.shape.size());
  std::vector<int64_t> pads =
      args.inputs.size() > 1 && args.inputs[1] ? ints_input(args, 1) : args.node.attr_ints("pads");
  if (args.inputs.size() > 3 && args.inputs[3]) args.fail_node("Pad with axes is not supported");
  if (int64_t(pads.size()) != 2 * rank)
    args.fail_node(std::to_string(pads.size()) + " pads for input " + shape_str(x.shape));
  const std::string mode = args.node.attr_string("mode", "constant");
  if (mode != "constant" && mode != "reflect" && mode != "edge") args.fail_node("mode '" + mode + "'");
  IntTensor& y = args.out();
  y.shape = x.shape;
  for (int64_t d = 0; d < rank; ++d) {
    const int64_t b = pads[size_t(d)], e = pads[size_t(rank + d)], n = x.shape[size_t(d)];
    if (b < 0 || e < 0) args.fail_node("negative pads (cropping) are not supported");
    if (mode == "reflect" && (b >= n || e >= n)) args.fail_node("reflect pads must be below the dimension");
    y.shape[size_t(d)] = n + b + e;
  }
  std::vector<int64_t> xs = strides_of(x.shape), ys = strides_of(y.shape);
  const int64_t total = y.numel();
  if (x.is_float())
    y.floats.assign(size_t(total), 0.f);
  else
    y.ints.assign(size_t(total), 0);
  for (int64_t k = 0; k < total; ++k) {
    int64_t src = 0;
    bool inside = true;
    for (int64_t d = 0; d < rank && inside; ++d) {
      const int64_t n = x.shape[size_t(d)];
      int64_t i = k / ys[size_t(d)] % y.shape[size_t(d)] - pads[size_t(d)];
      if (i < 0 || i >= n) {
        if (mode == "constant")
          inside = false;
        else if (mode == "edge")
          i = i < 0 ? 0 : n - 1;
        else
          i = i < 0 ? -i : 2 * (n - 1) - i;
      }
      src += i * xs[size_t(d)];
    }
    if (!inside) continue;
    if (x.is_float())
      y.floats[size_t(k)] = x.floats[size_t(src)];
    else
      y.ints[size_t(k)] = x.ints[size_t(src)];
  }
}

EQ_RUNTIME_KERNEL(concat_kernel) {
  const IntTensor& first = args.in(0);
  int64_t rank = int64_t(first.shape.size());
  int64_t axis = norm_axis(args, args.node.attr_int("axis", 0), rank);
  IntTensor& y = args.out();
  y.shape = first.shape;
  y.shape[size_t(axis)] = 0;
  for (size_t i = 0; i < args.inputs.size(); ++i) {
    check_same_grid(args, args.in(i));
    const Shape& s = args.in(i).shape;
    if (s.size() != first.shape.size()) args.fail_node("inputs differ in rank");
    for (size_t d = 0; d < s.size(); ++d)
      if (int64_t(d) != axis && s[d] != first.shape[d]) args.fail_node("inputs differ off the concat axis");
    y.shape[size_t(axis)] += s[size_t(axis)];
  }
  int64_t outer = 1;
  for (int64_t d = 0; d < axis; ++d) outer *= y.shape[size_t(d)];
  y.ints.clear();
  y.floats.clear();
  for (int64_t o = 0; o < outer; ++o)
    for (size_t i = 0; i < args.inputs.size(); ++i) {
      const IntTensor& x = args.in(i);
      int64_t chunk = x.numel() / std::max<int64_t>(outer, 1);
      if (x.is_float())
        y.floats.insert(y.floats.end(), x.floats.begin() + o * chunk, x.floats.begin() + (o + 1) * chunk);
      else
        y.ints.insert(y.ints.end(), x.ints.begin() + o * chunk, x.ints.begin() + (o + 1) * chunk);
    }
}

EQ_RUNTIME_KERNEL(slice_kernel) {
  const IntTensor& x = args.in(0);
  check_same_grid(args, x);
  int64_t rank = int64_t(x.shape.size());
  std::vector<int64_t> starts = ints_input(args, 1), ends = ints_input(args, 2);
  std::vector<int64_t> axes(starts.size()), steps(starts.size(), 1);
  std::iota(axes.begin(), axes.end(), 0);
  if (args.inputs.size() > 3 && args.inputs[3]) axes = ints_input(args, 3);
  if (args.inputs.size() > 4 && args.inputs[4]) steps = ints_input(args, 4);
  std::vector<int64_t> begin(size_t(rank), 0), step(size_t(rank), 1);
  Shape out = x.shape;
  for (size_t k = 0; k < starts.size(); ++k) {
    int64_t a = norm_axis(args, axes[k], rank), dim = x.shape[size_t(a)], st = steps[k];
    if (st == 0) args.fail_node("slice step 0");
    auto clampi = [&](int64_t v, int64_t lo, int64_t hi) { return std::max(lo, std::min(hi, v)); };
    int64_t s = starts[k] < 0 ? starts[k] + dim : starts[k];
    int64_t e = ends[k] < 0 ? ends[k] + dim : ends[k];
    s = st > 0 ? clampi(s, 0, dim) : clampi(s, 0, dim - 1);
    e = st > 0 ? clampi(e, 0, dim) : clampi(e, -1, dim - 1);
    begin[size_t(a)] = s;
    step[size_t(a)] = st;
    out[size_t(a)] = std::max<int64_t>(0, st > 0 ? (e - s + st - 1) / st : (s - e - st - 1) / -st);
  }
  IntTensor& y = args.out();
  y.shape = out;
  std::vector<int64_t> xs = strides_of(x.shape), ys = strides_of(out);
  gather_elements(args, x, shape_numel(out), [&](int64_t i) {
    int64_t src = 0;
    for (int64_t d = 0; d < rank; ++d)
      src += (begin[size_t(d)] + (i / ys[size_t(d)]) % out[size_t(d)] * step[size_t(d)]) * xs[size_t(d)];
    return src;
  });
}

EQ_RUNTIME_KERNEL(gather_kernel) {
  const IntTensor& x = args.in(0);
  check_same_grid(args, x);
  std::vector<int64_t> idx = ints_input(args, 1);
  const Shape& ishape = args.in(1).shape;
  int64_t rank = int64_t(x.shape.size());
  int64_t axis = norm_axis(args, args.node.attr_int("axis", 0), rank);
  int64_t outer = 1, inner = 1, dim = x.shape[size_t(axis)];
  for (int64_t d = 0; d < axis; ++d) outer *= x.shape[size_t(d)];
  for (int64_t d = axis + 1; d < rank; ++d) inner *= x.shape[size_t(d)];
  IntTensor& y = args.out();
  y.shape.assign(x.shape.begin(), x.shape.begin() + axis);
  y.shape.insert(y.shape.end(), ishape.begin(), ishape.end());
  y.shape.insert(y.shape.end(), x.shape.begin() + axis + 1, x.shape.end());
  int64_t n = int64_t(idx.size());
  for (int64_t& v : idx) {
    if (v < 0) v += dim;
    if (v < 0 || v >= dim) args.fail_node("gather index out of range");
  }
  gather_elements(args, x, outer * n * inner, [&](int64_t i) {
    int64_t o = i / (n * inner), k = (i / inner) % n, in = i % inner;
    return (o * dim + idx[size_t(k)]) * inner + in;
  });
}

// ESP-DL's StreamingCache, byte for byte: output = cache ++ input (flat copies, which is a concat
// on frame_axis when the dims before it are 1, as in a streaming model), then the cache keeps the
// output's last window_size - 1 frames. A run without state starts from a zero cache (the chip
// after load or reset()).
EQ_RUNTIME_KERNEL(streaming_cache_kernel) {
  const IntTensor& x = args.in(0);
  int64_t window = args.node.attr_int("window_size", 1);
  int64_t rank = int64_t(x.shape.size());
  int64_t axis = norm_axis(args, args.node.attr_int("frame_axis", 1), rank);
  if (window < 1 || window > 1 << 16) args.fail_node("window_size " + std::to_string(window) + " is out of range");
  if (x.is_float()) args.fail_node("StreamingCache needs an integer input");
  IntTensor& y = args.out();
  if (!same_grid(x, y)) args.fail_node("output grid differs from its input's");
  Shape ys = x.shape, cs = x.shape;
  ys[size_t(axis)] += window - 1;
  cs[size_t(axis)] = window - 1;
  set_output(args, y, ys);
  int64_t cache_n = y.numel() - x.numel();
  std::vector<int64_t> cache(size_t(cache_n), 0);
  if (args.state) {
    auto it = args.state->find(args.node.name);
    if (it != args.state->end()) {
      if (it->second.shape != cs) args.fail_node("the kept cache has shape " + shape_str(it->second.shape));
      cache = it->second.ints;
    }
  }
  std::copy(cache.begin(), cache.end(), y.ints.begin());
  std::copy(x.ints.begin(), x.ints.end(), y.ints.begin() + cache_n);
  if (args.state) {
    IntTensor& kept = (*args.state)[args.node.name];
    kept = x;
    kept.shape = cs;
    kept.ints.assign(y.ints.begin() + x.numel(), y.ints.end());
  }
}

}  // namespace edgequant::runtime
