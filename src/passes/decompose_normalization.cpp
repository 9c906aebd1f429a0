// DecomposeNormalizationPass: InstanceNormalization (y = scale[c] (x - mean) / sqrt(var + eps) + B[c]
// over the spatial dims) and LayerNormalization (the same over the dims from `axis` on, scale and
// B of those dims) become the normalisation block torch writes for a LayerNorm at opset 13
// (ReduceMean, Sub, Mul, ReduceMean, Add, Sqrt, Div, Mul, Add). Run by `prepare` for integer
// targets that cannot run the op whole: ESP-DL has no InstanceNormalization module, and EdgeQuant
// no integer LayerNormalization kernel (style-transfer generators; opset-17 transformer exports).
#include <algorithm>

#include "ir/op_traits.h"
#include "passes/graph_passes.h"

namespace edgequant {

PassResult DecomposeNormalizationPass::run(Graph& graph, PassContext&) {
  PassResult result;
  std::vector<Op*> norms;
  for (const auto& op : graph.ops())
    if ((op->is(OpType::InstanceNormalization) && !skip_instance_norm) ||
        (op->is(OpType::LayerNormalization) && !skip_layer_norm))
      norms.push_back(op.get());
  for (Op* in : norms) {
    bool layer = in->is(OpType::LayerNormalization);
    Value* x = in->input(0);
    Value* scale = in->input(1);
    Value* bias = in->input(2);
    auto float_constant = [](const Value* v) { return v && v->is_constant() && v->data->dtype() == DType::Float32; };
    if (!x || !x->shape || x->shape->size() < (layer ? 1u : 3u) || !float_constant(scale) ||
        (bias ? !float_constant(bias) : !layer))
      continue;
    bool extra_outputs = false;  // LayerNormalization's Mean and InvStdDev (training exports)
    for (size_t o = 1; o < in->outputs.size(); ++o)
      if (in->outputs[o] && (!in->outputs[o]->consumers.empty() || std::find(graph.outputs.begin(), graph.outputs.end(),
                                                                             in->outputs[o]) != graph.outputs.end()))
        extra_outputs = true;
    if (extra_outputs) continue;
    size_t rank = x->shape->size();
    int64_t first = 2;
    if (layer) {
      first = in->attr_int("axis", -1);
      if (first < 0) first += int64_t(rank);
      if (first < 0 || first >= int64_t(rank)) continue;
    }
    int64_t channels = (*x->shape)[1];
    if (!layer && (channels <= 0 || scale->data->numel() != channels || bias->data->numel() != channels)) continue;
    std::string name = in->name;
    auto value = [&](const std::string& tag, bool reduced) {
      Value* v = graph.add_value(graph.unique_name(name + "_" + tag));
      v->dtype = DType::Float32;
      Shape s = *x->shape;
      if (reduced)
        for (size_t d = size_t(first); d < rank; ++d) s[d] = 1;
      v->shape = s;
      return v;
    };
    std::vector<int64_t> axes;
    for (size_t d = size_t(first); d < rank; ++d) axes.push_back(int64_t(d));
    Value* axes_value = nullptr;
    if (graph.opset >= 18)
      axes_value = graph.add_constant(graph.unique_name(name + "_axes"),
                                      Tensor::from_vector(DType::Int64, Shape{int64_t(axes.size())}, axes));
    auto reduce_mean = [&](Value* from, Value* to, const std::string& tag) {
      Op* op = graph.add_op("ReduceMean", graph.unique_name(name + "/" + tag),
                            axes_value ? std::vector<Value*>{from, axes_value} : std::vector<Value*>{from}, {to});
      if (!axes_value) op->attrs["axes"] = axes;
      op->attrs["keepdims"] = int64_t(1);
    };
    // InstanceNormalization: [C] -> [C, 1, ...] against [N, C, ...]; LayerNormalization's scale and
    // B already have the normalised dims' shape (or broadcast to it).
    Shape cshape(rank - 1, 1);
    cshape[0] = channels;
    auto per_channel = [&](Value* v, const std::string& tag) {
      if (layer) return v;
      std::vector<double> d = v->data->to_doubles();
      return graph.add_constant(graph.unique_name(name + "_" + tag),
                                Tensor::from_vector(DType::Float32, cshape, std::vector<float>(d.begin(), d.end())));
    };
    float eps = in->attr_float("epsilon", 1e-5f);
    Value* y = in->outputs[0];
    Value *mean = value("mean", true), *centered = value("centered", false), *square = value("square", false),
          *var = value("var", true), *var_eps = value("var_eps", true), *std_dev = value("std", true),
          *normed = value("normed", false), *scaled = value("scaled", false);
    Value* eps_value = graph.add_constant(graph.unique_name(name + "_epsilon"),
                                          Tensor::from_vector(DType::Float32, Shape{}, std::vector<float>{eps}));
    Value* gamma = per_channel(scale, "scale");
    Value* beta = bias ? per_channel(bias, "bias") : nullptr;
    graph.remove_op(in);
    reduce_mean(x, mean, "ReduceMean");
    graph.add_op("Sub", graph.unique_name(name + "/Sub"), {x, mean}, {centered});
    graph.add_op("Mul", graph.unique_name(name + "/Square"), {centered, centered}, {square});
    reduce_mean(square, var, "Variance");
    graph.add_op("Add", graph.unique_name(name + "/AddEpsilon"), {var, eps_value}, {var_eps});
    graph.add_op("Sqrt", graph.unique_name(name + "/Sqrt"), {var_eps}, {std_dev});
    graph.add_op("Div", graph.unique_name(name + "/Div"), {centered, std_dev}, {normed});
    graph.add_op("Mul", graph.unique_name(name + "/Scale"), {normed, gamma}, {beta ? scaled : y});
    if (beta) graph.add_op("Add", graph.unique_name(name + "/Bias"), {scaled, beta}, {y});
    ++result.rewrites;
  }
  return finish_rewrites(graph, result);
}

}  // namespace edgequant
