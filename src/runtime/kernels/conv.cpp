// Conv (channels-last activations, OIHW weight codes; 1-D: [N, W, C] and OIW) and Gemm ([C, N] weight codes, transB =
// 0): int64 accumulation of code products plus the bias code, then shift_and_round to the output exponent per output
// channel (s = e_out - e_in - e_w[c]) and saturation; a fused Relu clamps negatives (`activation` attribute).
// MatMul (ESP-DL runs it as a 1x1 Conv whose filter is input 1, stored in the filter order:
// kernels.h matmul_b_offset): NumPy matmul of up to 4-D operands, the same accumulation and
// requantization with one exponent per operand, no bias.
#include "ir/lowered.h"
#include "runtime/kernels/kernels.h"

namespace edgequant::runtime {

namespace {
int weight_exponent(const IntTensor& w, int64_t channel) {
  return w.exponents.size() > 1 ? w.exponents[static_cast<size_t>(channel)] : w.exponent();
}

// Accumulator -> output code: shift_and_round by e_out - e_in - e_w[c] on power-of-two grids, or
// the q31 multiplier and shift of channel c (`requant_multiplier`/`requant_shift`) plus the
// output zero point on float-scale grids; a fused Relu clamps at the zero point.
struct Requant {
  std::vector<int64_t> multiplier, shift;
  int64_t zero = 0;
  bool relu = false;
};

Requant requant_of(const KernelArgs& args, bool relu) {
  Requant r;
  r.multiplier = args.node.attr_ints("requant_multiplier");
  r.shift = args.node.attr_ints("requant_shift");
  r.zero = args.out().zero_point();
  r.relu = relu;
  if (r.multiplier.size() != r.shift.size()) args.fail_node("requant_multiplier and requant_shift differ in length");
  return r;
}

int64_t finish(const KernelArgs& args, const Requant& r, int64_t acc, int shift, size_t channel) {
  const IntTensor& y = args.out();
  int64_t q;
  if (r.multiplier.empty()) {
    q = saturate_to(shift_round(acc, shift, args.rounding()), y.dtype);
  } else {
    size_t c = r.multiplier.size() > 1 ? channel : 0;
    Requantization rq{{int(r.shift[c])}, {int32_t(r.multiplier[c])}, args.rounding()};
    q = requantize(acc, rq, 0, dtype_min(y.dtype) - r.zero, dtype_max(y.dtype) - r.zero) + r.zero;
  }
  return r.relu && q < r.zero ? r.zero : q;
}

bool fused_relu(const KernelArgs& args) {
  std::string a = args.node.attr_string("activation", "Linear");
  if (a == "Linear") return false;
  if (a == "Relu" || a == "ReLU") return true;
  args.fail_node("activation '" + a + "' is not supported (Linear, Relu)");
}
}  // namespace

EQ_RUNTIME_KERNEL(conv_kernel) {
  const IntTensor& x = args.in(0);
  const IntTensor& w = args.in(1);
  const IntTensor* b = args.inputs.size() > 2 ? args.inputs[2] : nullptr;
  if (x.is_float() || w.is_float()) args.fail_node("Conv needs integer input and weight");
  // 1-D (ESP-DL's [N, W, C] activations, OIW weights, pads [l, r]) runs as 2-D with H = 1.
  bool one_d = x.shape.size() == 3 && w.shape.size() == 3;
  if (!one_d && (x.shape.size() != 4 || w.shape.size() != 4))
    args.fail_node("only 1-D and 2-D convolutions (3-D or 4-D tensors) are supported");
  int64_t n = x.shape[0], h = one_d ? 1 : x.shape[1], wd = x.shape[one_d ? 1 : 2], c = x.shape.back();
  int64_t oc = w.shape[0], cg = w.shape[1], kh = one_d ? 1 : w.shape[2], kw = w.shape.back();
  int64_t group = args.node.attr_int("group", 1);
  if (group <= 0 || c != cg * group || oc % group != 0)
    args.fail_node("input channels " + std::to_string(c) + " do not match the weight " + shape_str(w.shape) +
                   " and group " + std::to_string(group));
  auto pads = args.node.attr_ints("pads", one_d ? std::vector<int64_t>{0, 0} : std::vector<int64_t>{0, 0, 0, 0});
  auto strides = args.node.attr_ints("strides", one_d ? std::vector<int64_t>{1} : std::vector<int64_t>{1, 1});
  auto dil = args.node.attr_ints("dilations", one_d ? std::vector<int64_t>{1} : std::vector<int64_t>{1, 1});
  if (one_d) {
    if (pads.size() != 2 || strides.size() != 1 || dil.size() != 1)
      args.fail_node("pads/strides/dilations of a 1-D Conv");
    pads = {0, pads[0], 0, pads[1]};
    strides = {1, strides[0]};
    dil = {1, dil[0]};
  }
  if (pads.size() != 4 || strides.size() != 2 || dil.size() != 2)
    args.fail_node("pads/strides/dilations of a 2-D Conv");
  check_at_least(args, pads, 0, "pads");
  for (int64_t v : pads)
    if (v > 1 << 16) args.fail_node("pads beyond 65536");
  check_at_least(args, strides, 1, "strides");
  check_at_least(args, dil, 1, "dilations");
  if (kh < 1 || kw < 1) args.fail_node("empty kernel");
  if (b && b->numel() < oc) args.fail_node("bias has fewer than " + std::to_string(oc) + " values");
  if (w.exponents.size() > 1 && int64_t(w.exponents.size()) < oc)
    args.fail_node("fewer weight exponents than channels");
  int64_t oh = (h + pads[0] + pads[2] - dil[0] * (kh - 1) - 1) / strides[0] + 1;
  int64_t ow = (wd + pads[1] + pads[3] - dil[1] * (kw - 1) - 1) / strides[1] + 1;
  Requant rq = requant_of(args, fused_relu(args));
  IntTensor& y = args.out();
  if (one_d)
    set_output(args, y, {n, std::max<int64_t>(ow, 0), oc});
  else
    set_output(args, y, {n, std::max<int64_t>(oh, 0), std::max<int64_t>(ow, 0), oc});
  int e_in = x.exponent(), e_out = y.exponent();
  int64_t opg = oc / group;
  std::vector<int> shift(static_cast<size_t>(oc));
  for (int64_t o = 0; o < oc; ++o) shift[size_t(o)] = e_out - e_in - weight_exponent(w, o);
  const int64_t* X = x.ints.data();
  const int64_t* W = w.ints.data();
  int64_t zx = x.zero_point();
  std::vector<int64_t> zw(static_cast<size_t>(oc), 0);
  for (int64_t o = 0; o < oc; ++o) zw[size_t(o)] = w.zero_point(size_t(o));
  for (int64_t bn = 0; bn < n; ++bn)
    for (int64_t yh = 0; yh < oh; ++yh)
      for (int64_t yw = 0; yw < ow; ++yw)
        for (int64_t o = 0; o < oc; ++o) {
          int64_t g = o / opg;
          int64_t acc = b ? b->ints[size_t(o)] : 0;
          for (int64_t ky = 0; ky < kh; ++ky) {
            int64_t ih = yh * strides[0] - pads[0] + ky * dil[0];
            if (ih < 0 || ih >= h) continue;
            for (int64_t kx = 0; kx < kw; ++kx) {
              int64_t iw = yw * strides[1] - pads[1] + kx * dil[1];
              if (iw < 0 || iw >= wd) continue;
              const int64_t* xp = X + ((bn * h + ih) * wd + iw) * c + g * cg;
              const int64_t* wp = W + (o * cg * kh + ky) * kw + kx;  // W[o][ci][ky][kx], ci stride kh*kw
              for (int64_t ci = 0; ci < cg; ++ci) acc += (xp[ci] - zx) * (wp[ci * kh * kw] - zw[size_t(o)]);
            }
          }
          y.ints[size_t(((bn * oh + yh) * ow + yw) * oc + o)] = finish(args, rq, acc, shift[size_t(o)], size_t(o));
        }
}

EQ_RUNTIME_KERNEL(gemm_kernel) {
  const IntTensor& x = args.in(0);
  const IntTensor& w = args.in(1);
  const IntTensor* b = args.inputs.size() > 2 ? args.inputs[2] : nullptr;
  if (x.is_float() || w.is_float()) args.fail_node("Gemm needs integer input and weight");
  if (args.node.attr_int("transA", 0) != 0 || args.node.attr_int("transB", 0) != 0)
    args.fail_node("transA/transB must be 0 in the integer program");
  if (w.shape.size() < 2) args.fail_node("weight must be [C, N]");
  int64_t c = w.shape[w.shape.size() - 2], oc = w.shape.back();
  if (x.shape.empty() || x.shape.back() != c)
    args.fail_node("input " + shape_str(x.shape) + " does not match weight " + shape_str(w.shape));
  if (b && b->numel() < oc) args.fail_node("bias has fewer than " + std::to_string(oc) + " values");
  if (w.exponents.size() > 1 && int64_t(w.exponents.size()) < oc)
    args.fail_node("fewer weight exponents than channels");
  int64_t m = x.numel() / c;
  Requant rq = requant_of(args, fused_relu(args));
  IntTensor& y = args.out();
  Shape ys = x.shape;
  ys.back() = oc;
  set_output(args, y, ys);
  int e_in = x.exponent(), e_out = y.exponent();
  for (int64_t i = 0; i < m; ++i)
    for (int64_t o = 0; o < oc; ++o) {
      int64_t acc = b ? b->ints[size_t(o)] : 0;
      int64_t zx = x.zero_point(), zw = w.zero_point(size_t(o));
      for (int64_t k = 0; k < c; ++k) acc += (x.ints[size_t(i * c + k)] - zx) * (w.ints[size_t(k * oc + o)] - zw);
      y.ints[size_t(i * oc + o)] = finish(args, rq, acc, e_out - e_in - weight_exponent(w, o), size_t(o));
    }
}

int64_t matmul_b_block(const IntGraph& graph, DType b) {
  auto it = graph.filter_blocks.find(b == DType::Int16 ? 16 : 8);
  return it == graph.filter_blocks.end() ? 0 : it->second;
}

EQ_RUNTIME_KERNEL(matmul_kernel) {
  const IntTensor& a = args.in(0);
  const IntTensor& b = args.in(1);
  if (a.is_float() || b.is_float()) args.fail_node("MatMul needs integer operands");
  if (a.shape.empty() || b.shape.empty()) args.fail_node("MatMul operands must have at least one dimension");
  if (b.exponents.size() > 1) args.fail_node("input 1 has per-channel exponents (ESP-DL's MatMul reads one)");
  // 1-D operands: a row vector [1, K] and a column vector [K, 1], dropped from the output again.
  Shape as = a.shape, bs = b.shape;
  if (as.size() == 1) as.insert(as.begin(), 1);
  if (bs.size() == 1) bs.push_back(1);
  int64_t m = as[as.size() - 2], k = as.back(), n = bs.back();
  if (bs[bs.size() - 2] != k)
    args.fail_node("inner dimensions differ: " + shape_str(a.shape) + " x " + shape_str(b.shape));
  Shape batch_a(as.begin(), as.end() - 2), batch_b(bs.begin(), bs.end() - 2);
  Shape batch = broadcast_shape(args, batch_a, batch_b);
  Shape ys = batch;
  if (a.shape.size() > 1) ys.push_back(m);
  if (b.shape.size() > 1) ys.push_back(n);
  Requant rq = requant_of(args, fused_relu(args));
  IntTensor& y = args.out();
  set_output(args, y, ys);
  int shift = y.exponent() - a.exponent() - b.exponent();
  int64_t za = a.zero_point(), zb = b.zero_point();
  int64_t batches = shape_numel(batch), block = matmul_b_block(args.graph, b.dtype);
  // Offsets of B's columns within a slice, in the filter memory order.
  std::vector<int64_t> boff(size_t(k * n));
  for (int64_t p = 0; p < k; ++p)
    for (int64_t j = 0; j < n; ++j) boff[size_t(p * n + j)] = matmul_b_offset(p, j, k, n, block);
  std::vector<int64_t> idx(batch.size(), 0);
  for (int64_t t = 0; t < batches; ++t) {
    int64_t oa = broadcast_index(batch_a, batch, idx) * m * k, ob = broadcast_index(batch_b, batch, idx) * k * n;
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j) {
        int64_t acc = 0;
        for (int64_t p = 0; p < k; ++p)
          acc += (a.ints[size_t(oa + i * k + p)] - za) * (b.ints[size_t(ob + boff[size_t(p * n + j)])] - zb);
        y.ints[size_t((t * m + i) * n + j)] = finish(args, rq, acc, shift, size_t(j));
      }
    for (size_t d = batch.size(); d-- > 0;) {
      if (++idx[d] < batch[d]) break;
      idx[d] = 0;
    }
  }
}

}  // namespace edgequant::runtime
