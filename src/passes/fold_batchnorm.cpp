// FoldBatchNormPass: y = (conv(x) - mean) * gamma / sqrt(var + eps) + beta becomes a conv with
// per-output-channel scaled weights and a new bias, so quantization sees one weight tensor. A
// BatchNormalization with no Conv/Gemm to fold into (a normalising input layer, one after an Add)
// becomes Mul(x, scale) + Add(shift) with per-channel constants, as ESP-PPQ rewrites it: ESP-DL
// has no BatchNormalization module.
#include <cmath>

#include "ir/op_traits.h"
#include "passes/graph_passes.h"

namespace edgequant {

namespace {
bool all_float_constants(const Op& op, size_t first, size_t last) {
  for (size_t i = first; i <= last; ++i) {
    Value* v = op.input(i);
    if (!v || !v->is_constant() || v->data->dtype() != DType::Float32) return false;
  }
  return true;
}

// Scales the weight along `axis` (the output-channel axis) and returns the new bias.
Tensor scaled_weight(const Tensor& w, int64_t axis, const std::vector<double>& scale) {
  Tensor out(DType::Float32, w.shape());
  const float* src = w.data<float>();
  float* dst = out.data<float>();
  int64_t inner = 1;
  for (size_t d = static_cast<size_t>(axis) + 1; d < w.shape().size(); ++d) inner *= w.shape()[d];
  int64_t channels = w.shape()[static_cast<size_t>(axis)];
  for (int64_t i = 0; i < w.numel(); ++i) dst[i] = static_cast<float>(src[i] * scale[(i / inner) % channels]);
  return out;
}
}  // namespace

PassResult FoldBatchNormPass::run(Graph& graph, PassContext&) {
  PassResult result;
  std::vector<Op*> bns;
  for (const auto& op : graph.ops())
    if (op->is(OpType::BatchNormalization)) bns.push_back(op.get());
  for (Op* bn : bns) {
    Value* x = bn->input(0);
    Op* prev = x ? x->producer : nullptr;
    if (!prev || sole_consumer(graph, x) != bn || !all_float_constants(*bn, 1, 4)) continue;
    if (bn->outputs.size() > 1 && bn->outputs[1]) continue;
    if (!prev->is(OpType::Conv) && !prev->is(OpType::ConvTranspose) && !prev->is(OpType::Gemm)) continue;
    Value* w = prev->input(1);
    if (!w || !w->is_constant() || w->data->dtype() != DType::Float32) continue;
    Value* b = prev->input(2);
    if (b && (!b->is_constant() || b->data->dtype() != DType::Float32)) continue;

    // Output-channel axis of the weight.
    int64_t axis = 0;
    if (prev->is(OpType::ConvTranspose)) {
      if (prev->attr_int("group", 1) != 1) continue;
      axis = 1;
    } else if (prev->is(OpType::Gemm)) {
      if (prev->attr_int("transA", 0) != 0 || w->data->shape().size() != 2) continue;
      axis = prev->attr_int("transB", 0) ? 0 : 1;
      if (b && b->data->numel() != w->data->shape()[static_cast<size_t>(axis)]) continue;
    }
    int64_t channels = w->data->shape()[static_cast<size_t>(axis)];
    auto gamma = bn->input(1)->data->to_doubles(), beta = bn->input(2)->data->to_doubles();
    auto mean = bn->input(3)->data->to_doubles(), var = bn->input(4)->data->to_doubles();
    if (static_cast<int64_t>(gamma.size()) != channels) continue;
    double eps = bn->attr_float("epsilon", 1e-5f);
    double alpha = prev->is(OpType::Gemm) ? prev->attr_float("alpha", 1.0f) : 1.0;
    double beta_c = prev->is(OpType::Gemm) ? prev->attr_float("beta", 1.0f) : 1.0;
    std::vector<double> scale(channels), bias(channels);
    std::vector<double> old_bias = b ? b->data->to_doubles() : std::vector<double>(channels, 0.0);
    for (int64_t c = 0; c < channels; ++c) {
      scale[c] = gamma[c] / std::sqrt(var[c] + eps);
      bias[c] = (beta_c * old_bias[c] - mean[c]) * scale[c] + beta[c];
    }
    (void)alpha;  // alpha multiplies A*B only; scaling B's columns commutes with it
    std::vector<float> bias_f(bias.begin(), bias.end());
    Value* new_w = graph.add_constant(graph.unique_name(w->name + "_bnfold"), scaled_weight(*w->data, axis, scale));
    Value* new_b = graph.add_constant(graph.unique_name(prev->name + "_bias_bnfold"),
                                      Tensor::from_vector(DType::Float32, {channels}, bias_f));
    graph.set_input(prev, 1, new_w);
    graph.set_input(prev, 2, new_b);
    if (prev->is(OpType::Gemm)) prev->attrs["beta"] = 1.0f;
    Value* y = bn->outputs[0];
    graph.remove_op(bn);
    // The conv now produces the BN's output value, so names downstream stay as exported.
    Value* conv_out = prev->outputs[0];
    prev->outputs[0] = y;
    conv_out->producer = nullptr;
    y->producer = prev;
    ++result.rewrites;
  }
  // The rest: Mul + Add with [C, 1, ..., 1] constants (broadcast over the spatial dims).
  bns.clear();
  for (const auto& op : graph.ops())
    if (op->is(OpType::BatchNormalization)) bns.push_back(op.get());
  for (Op* bn : bns) {
    Value* x = bn->input(0);
    if (!x || !x->shape || x->shape->size() < 2 || !all_float_constants(*bn, 1, 4)) continue;
    if (bn->outputs.size() > 1 && bn->outputs[1]) continue;  // training outputs in use
    if (bn->attr_int("training_mode", 0) != 0) continue;
    auto gamma = bn->input(1)->data->to_doubles(), beta = bn->input(2)->data->to_doubles();
    auto mean = bn->input(3)->data->to_doubles(), var = bn->input(4)->data->to_doubles();
    int64_t channels = (*x->shape)[1];
    if (channels <= 0 || int64_t(gamma.size()) != channels || int64_t(beta.size()) != channels ||
        int64_t(mean.size()) != channels || int64_t(var.size()) != channels)
      continue;
    double eps = bn->attr_float("epsilon", 1e-5f);
    std::vector<float> scale(static_cast<size_t>(channels)), shift(static_cast<size_t>(channels));
    for (int64_t c = 0; c < channels; ++c) {
      double s = gamma[size_t(c)] / std::sqrt(var[size_t(c)] + eps);
      scale[size_t(c)] = float(s);
      shift[size_t(c)] = float(beta[size_t(c)] - mean[size_t(c)] * s);
    }
    Shape cshape(x->shape->size() - 1, 1);
    cshape[0] = channels;
    Value* sv =
        graph.add_constant(graph.unique_name(bn->name + "_scale"), Tensor::from_vector(DType::Float32, cshape, scale));
    Value* tv =
        graph.add_constant(graph.unique_name(bn->name + "_shift"), Tensor::from_vector(DType::Float32, cshape, shift));
    Value* mid = graph.add_value(graph.unique_name(bn->name + "_scaled"));
    mid->dtype = DType::Float32;
    mid->shape = x->shape;
    mid->dim_names = x->dim_names;
    Value* y = bn->outputs[0];
    std::string name = bn->name;
    graph.remove_op(bn);
    graph.add_op("Mul", graph.unique_name(name + "/Mul"), {x, sv}, {mid});
    graph.add_op("Add", graph.unique_name(name + "/Add"), {mid, tv}, {y});
    ++result.rewrites;
  }
  return finish_rewrites(graph, result);
}

}  // namespace edgequant
