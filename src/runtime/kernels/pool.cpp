// MaxPool (integer max; e_out = e_in), AveragePool and GlobalAveragePool (int64 sum, then
// round(sum * 2^e_in / area * 2^-e_out); the divisor is the full kernel area whatever
// count_include_pad says, as ESP-DL computes). Channels-last activations.
#include <cmath>

#include "runtime/kernels/kernels.h"

namespace edgequant::runtime {

namespace {
struct Window {
  int64_t kh, kw, sh, sw, pt, pl, pb, pr;
};

// 1-D pooling ([N, W, C], kernel [k], pads [l, r]) is 2-D with H = 1.
Window window_of(const KernelArgs& args) {
  auto k = args.node.attr_ints("kernel_shape");
  bool one_d = k.size() == 1;
  auto s = args.node.attr_ints("strides", one_d ? std::vector<int64_t>{1} : std::vector<int64_t>{1, 1});
  auto p = args.node.attr_ints("pads", one_d ? std::vector<int64_t>{0, 0} : std::vector<int64_t>{0, 0, 0, 0});
  if (one_d && s.size() == 1 && p.size() == 2) {
    k = {1, k[0]};
    s = {1, s[0]};
    p = {0, p[0], 0, p[1]};
  }
  if (k.size() != 2 || s.size() != 2 || p.size() != 4) args.fail_node("only 1-D and 2-D pooling is supported");
  if (args.node.attr_int("ceil_mode", 0) != 0) args.fail_node("ceil_mode is not supported");
  check_at_least(args, k, 1, "kernel_shape");
  check_at_least(args, s, 1, "strides");
  check_at_least(args, p, 0, "pads");
  for (int64_t v : p)
    if (v > 1 << 16) args.fail_node("pads beyond 65536");
  return {k[0], k[1], s[0], s[1], p[0], p[1], p[2], p[3]};
}

template <class F>
void pool(const KernelArgs& args, const Window& win, F reduce) {
  const IntTensor& x = args.in(0);
  bool one_d = x.shape.size() == 3 && win.kh == 1 && win.pt == 0 && win.pb == 0;
  if (x.is_float() || (x.shape.size() != 4 && !one_d)) args.fail_node("pooling needs a 3-D or 4-D integer input");
  int64_t n = x.shape[0], h = one_d ? 1 : x.shape[1], w = x.shape[one_d ? 1 : 2], c = x.shape.back();
  int64_t oh = (h + win.pt + win.pb - win.kh) / win.sh + 1, ow = (w + win.pl + win.pr - win.kw) / win.sw + 1;
  IntTensor& y = args.out();
  if (one_d)
    set_output(args, y, {n, std::max<int64_t>(ow, 0), c});
  else
    set_output(args, y, {n, std::max<int64_t>(oh, 0), std::max<int64_t>(ow, 0), c});
  for (int64_t b = 0; b < n; ++b)
    for (int64_t i = 0; i < oh; ++i)
      for (int64_t j = 0; j < ow; ++j)
        for (int64_t ch = 0; ch < c; ++ch) {
          std::vector<int64_t> vals;
          for (int64_t ky = 0; ky < win.kh; ++ky)
            for (int64_t kx = 0; kx < win.kw; ++kx) {
              int64_t ih = i * win.sh - win.pt + ky, iw = j * win.sw - win.pl + kx;
              if (ih >= 0 && ih < h && iw >= 0 && iw < w)
                vals.push_back(x.ints[size_t(((b * h + ih) * w + iw) * c + ch)]);
            }
          y.ints[size_t(((b * oh + i) * ow + j) * c + ch)] = reduce(vals);
        }
}

// `count` codes summed to `sum`, divided by the full window `area`.
int64_t average(const KernelArgs& args, int64_t sum, int64_t count, int64_t area) {
  const IntTensor& x = args.in(0);
  const IntTensor& y = args.out();
  if (x.is_pow2() && y.is_pow2()) {
    double v = std::ldexp(static_cast<double>(sum), x.exponent() - y.exponent()) / static_cast<double>(area);
    return saturate_to(static_cast<int64_t>(round_value(v, args.rounding())), y.dtype);
  }
  double real = static_cast<double>(sum - count * x.zero_point()) * x.scale() / static_cast<double>(area);
  double q = round_value(real / y.scale(), args.rounding()) + static_cast<double>(y.zero_point());
  return saturate_to(static_cast<int64_t>(q), y.dtype);
}
}  // namespace

EQ_RUNTIME_KERNEL(max_pool_kernel) {
  if (!same_grid(args.in(0), args.out())) args.fail_node("MaxPool output grid differs from its input's");
  pool(args, window_of(args), [](const std::vector<int64_t>& v) {
    int64_t m = INT64_MIN;
    for (int64_t x : v) m = std::max(m, x);
    return v.empty() ? 0 : m;
  });
}

EQ_RUNTIME_KERNEL(average_pool_kernel) {
  Window win = window_of(args);
  pool(args, win, [&](const std::vector<int64_t>& v) {
    int64_t s = 0;
    for (int64_t x : v) s += x;
    return average(args, s, int64_t(v.size()), win.kh * win.kw);
  });
}

EQ_RUNTIME_KERNEL(global_average_pool_kernel) {
  const IntTensor& x = args.in(0);
  bool one_d = x.shape.size() == 3;  // [N, W, C]
  if (x.is_float() || (x.shape.size() != 4 && !one_d))
    args.fail_node("GlobalAveragePool needs a 3-D or 4-D integer input");
  int64_t n = x.shape[0], h = one_d ? 1 : x.shape[1], w = x.shape[one_d ? 1 : 2], c = x.shape.back();
  IntTensor& y = args.out();
  set_output(args, y, one_d ? Shape{n, 1, c} : Shape{n, 1, 1, c});
  for (int64_t b = 0; b < n; ++b)
    for (int64_t ch = 0; ch < c; ++ch) {
      int64_t s = 0;
      for (int64_t i = 0; i < h * w; ++i) s += x.ints[size_t((b * h * w + i) * c + ch)];
      y.ints[size_t(b * c + ch)] = average(args, s, h * w, h * w);
    }
}

}  // namespace edgequant::runtime
