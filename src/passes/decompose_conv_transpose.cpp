// DecomposeConvTransposePass: ConvTranspose(x, W[C_in, C_out / g, k...], B) with strides s, pads
// (b, e), dilations d and output_padding o becomes InsertZeros(x, s, o) and a stride-1 Conv with
// the flipped, transposed filter W'[C_out, C_in / g, k...] and pads d (k - 1) - b, d (k - 1) - e:
// ESP-DL v3.3.9 has no ConvTranspose module and runs this pair (what ESP-PPQ's exporter writes).
// A ConvTranspose with output_shape, auto_pad, a non-constant filter or a pad beyond d (k - 1) is
// left as it is (and `check` names it).
#include "ir/op_traits.h"
#include "passes/graph_passes.h"

namespace edgequant {

namespace {

// The ConvTranspose filter as the equivalent Conv's: per group, input and output channels
// swapped and every spatial axis reversed.
Tensor conv_filter(const Tensor& w, int64_t group) {
  const Shape& s = w.shape();
  const int64_t cin = s[0], coutg = s[1], cing = cin / group, spatial = shape_numel(Shape(s.begin() + 2, s.end()));
  Shape out_shape = s;
  out_shape[0] = coutg * group;
  out_shape[1] = cing;
  Tensor out(DType::Float32, out_shape);
  const float* src = w.data<float>();
  float* dst = out.data<float>();
  const size_t nd = s.size() - 2;
  for (int64_t p = 0; p < spatial; ++p) {
    // Reversed position: each spatial index k -> size - 1 - k.
    int64_t rest = p, flipped = 0, scale = 1;
    for (size_t d = nd; d-- > 0;) {
      const int64_t len = s[2 + d], k = rest % len;
      rest /= len;
      flipped += (len - 1 - k) * scale;
      scale *= len;
    }
    for (int64_t g = 0; g < group; ++g)
      for (int64_t ci = 0; ci < cing; ++ci)
        for (int64_t co = 0; co < coutg; ++co)
          dst[((g * coutg + co) * cing + ci) * spatial + flipped] = src[((g * cing + ci) * coutg + co) * spatial + p];
  }
  return out;
}

}  // namespace

PassResult DecomposeConvTransposePass::run(Graph& graph, PassContext&) {
  PassResult result;
  std::vector<Op*> found;
  for (const auto& op : graph.ops())
    if (op->is(OpType::ConvTranspose)) found.push_back(op.get());
  for (Op* op : found) {
    Value* x = op->input(0);
    Value* w = op->input(1);
    Value* b = op->input(2);
    if (!x || !x->shape || x->shape->size() < 3 || !w || !w->is_constant() || w->data->dtype() != DType::Float32 ||
        w->data->shape().size() != x->shape->size() || (b && !b->is_constant()) || op->has_attr("output_shape") ||
        op->attr_string("auto_pad", "NOTSET") != "NOTSET")
      continue;
    const size_t nd = x->shape->size() - 2;
    const int64_t group = op->attr_int("group", 1);
    if (group < 1 || w->data->shape()[0] % group != 0) continue;
    std::vector<int64_t> stride = op->attr_ints("strides", std::vector<int64_t>(nd, 1)),
                         dil = op->attr_ints("dilations", std::vector<int64_t>(nd, 1)),
                         pads = op->attr_ints("pads", std::vector<int64_t>(2 * nd, 0)),
                         extra = op->attr_ints("output_padding", std::vector<int64_t>(nd, 0));
    if (stride.size() != nd || dil.size() != nd || pads.size() != 2 * nd || extra.size() != nd) continue;
    std::vector<int64_t> kernel(w->data->shape().begin() + 2, w->data->shape().end()), conv_pads(2 * nd);
    bool fits = true;
    Shape zshape = *x->shape;
    for (size_t d = 0; d < nd; ++d) {
      const int64_t reach = dil[d] * (kernel[d] - 1);
      conv_pads[d] = reach - pads[d];
      conv_pads[nd + d] = reach - pads[nd + d];
      fits = fits && conv_pads[d] >= 0 && conv_pads[nd + d] >= 0 && stride[d] >= 1 && extra[d] >= 0;
      const int64_t len = zshape[2 + d];
      if (len > 0) zshape[2 + d] = len + (stride[d] - 1) * (len - 1) + extra[d];
    }
    if (!fits) continue;
    const std::string name = op->name;
    Value* y = op->outputs[0];
    Value* filter = graph.add_constant(graph.unique_name(name + "_conv_filter"), conv_filter(*w->data, group));
    Value* z = graph.add_value(graph.unique_name(name + "_zeros_inserted"));
    z->dtype = x->dtype;
    z->shape = zshape;
    graph.remove_op(op);
    Op* iz = graph.add_op("InsertZeros", graph.unique_name(name + "_InsertZeros"), {x}, {z});
    iz->attrs["stride"] = stride;
    iz->attrs["output_padding"] = extra;
    std::vector<Value*> conv_in = {z, filter};
    if (b) conv_in.push_back(b);
    Op* conv = graph.add_op("Conv", name, conv_in, {y});
    conv->attrs["kernel_shape"] = kernel;
    conv->attrs["strides"] = std::vector<int64_t>(nd, 1);
    conv->attrs["dilations"] = dil;
    conv->attrs["pads"] = conv_pads;
    conv->attrs["group"] = group;
    ++result.rewrites;
  }
  return finish_rewrites(graph, result);
}

}  // namespace edgequant
