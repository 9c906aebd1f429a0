// Dynamic-range quantization, as ONNX Runtime's quantize_dynamic writes it: int8 weights stored
// per output channel, activations quantized at run time by DynamicQuantizeLinear (uint8,
// per-tensor, from each run's range), integer MatMul/Conv, then a float rescale:
//   x -> DynamicQuantizeLinear -> (x_q, x_scale, x_zp)
//   MatMulInteger(x_q, W_q, x_zp) | ConvInteger(...) -> Cast(float) -> Mul(x_scale * w_scale) [-> Add(bias)]
#include <algorithm>
#include <map>

#include "deploy/convert.h"
#include "edgequant/error.h"

namespace edgequant::deploy {

namespace {

struct DynamicRewriter {
  Graph& g;
  const ConvertSettings& s;
  ConvertResult result;
  std::map<Value*, std::vector<Value*>> quantized;  // activation -> {x_q, x_scale, x_zp}

  bool selected(const Op& op) const {
    return std::find(s.op_types.begin(), s.op_types.end(), op.type) != s.op_types.end();
  }
  void keep(const Op& op, const std::string& why) {
    ++result.kept;
    result.notes.push_back(op.describe() + " left in float: " + why);
  }

  const std::vector<Value*>& quantize_activation(Value* x) {
    auto it = quantized.find(x);
    if (it != quantized.end()) return it->second;
    Value* q = add_typed_value(g, x->name + "_quantized", DType::UInt8, x->shape);
    Value* sc = add_typed_value(g, x->name + "_scale", DType::Float32, Shape{});
    Value* zp = add_typed_value(g, x->name + "_zero_point", DType::UInt8, Shape{});
    g.add_op("DynamicQuantizeLinear", g.unique_name(x->name + "_DynamicQuantizeLinear"), {x}, {q, sc, zp});
    return quantized[x] = {q, sc, zp};
  }

  // Codes [-qmax, qmax] per index of `axis`; the scales shaped `scale_shape` for the rescale.
  std::pair<Value*, Value*> weight_constants(const Op& op, const Tensor& w, int64_t axis, const Shape& scale_shape,
                                             float extra_scale) {
    const int64_t qmax = s.reduce_range ? 64 : 127;
    WeightCodes c = quantize_weight(w, axis, 0, 8, true, qmax);
    std::vector<float> scales(c.scales.data<float>(), c.scales.data<float>() + c.scales.numel());
    for (float& v : scales) v *= extra_scale;
    Value* codes = g.add_constant(g.unique_name(op.name + "_W_quantized"), std::move(c.codes));
    Value* sc =
        g.add_constant(g.unique_name(op.name + "_W_scale"), Tensor::from_vector(DType::Float32, scale_shape, scales));
    return {codes, sc};
  }

  // int32 accumulator y_int of `op` -> float output `y`: Cast, Mul by x_scale * w_scale [, Add bias].
  void rescale(const std::string& name, Value* y_int, Value* x_scale, Value* w_scale, Value* bias, Value* y) {
    Value* yf = add_typed_value(g, name + "_output_float", DType::Float32, y->shape);
    g.add_op("Cast", g.unique_name(name + "_Cast"), {y_int}, {yf})->attrs["to"] = int64_t(DType::Float32);
    Value* scale = add_typed_value(g, name + "_scale", DType::Float32, w_scale->shape);
    g.add_op("Mul", g.unique_name(name + "_scale_Mul"), {x_scale, w_scale}, {scale});
    Value* scaled = bias ? add_typed_value(g, name + "_output_scaled", DType::Float32, y->shape) : y;
    g.add_op("Mul", g.unique_name(name + "_rescale"), {yf, scale}, {scaled});
    if (bias) g.add_op("Add", g.unique_name(name + "_bias_Add"), {scaled, bias}, {y});
  }

  const Tensor* float_weight(const Op& op, size_t index) {
    Value* w = op.input(index);
    if (!w || !w->is_constant()) {
      keep(op, "its weight (input " + std::to_string(index) + ") is not a constant");
      return nullptr;
    }
    if (w->data->dtype() != DType::Float32 || op.input(0)->dtype != DType::Float32) {
      keep(op, "its input or weight is not float32");
      return nullptr;
    }
    return w->data.get();
  }

  // MatMul of two activations (attention's Q K^T and P V): both quantized at run time, uint8
  // x uint8 (ONNX Runtime's u8u8 path, exact on every CPU).
  void matmul_of_activations(Op* op) {
    Value* a = op->input(0);
    Value* b = op->input(1);
    if (a->dtype != DType::Float32 || b->dtype != DType::Float32) return keep(*op, "its inputs are not float32");
    Value* y = op->outputs[0];
    const std::string name = op->name;
    g.remove_op(op);
    const std::vector<Value*> aq = quantize_activation(a), bq = quantize_activation(b);
    Value* acc = add_typed_value(g, name + "_output_int32", DType::Int32, y->shape);
    g.add_op("MatMulInteger", g.unique_name(name + "_MatMulInteger"), {aq[0], bq[0], aq[2], bq[2]}, {acc});
    rescale(name, acc, aq[1], bq[1], nullptr, y);
    ++result.converted;
  }

  // MatMul(x, B[K, N]) and Gemm(x, B, C) with transA = 0: B per column (N).
  void matmul(Op* op) {
    const bool gemm = op->type == "Gemm";
    if (!gemm && op->input(1) && !op->input(1)->is_constant() && !op->input(0)->is_constant())
      return matmul_of_activations(op);
    const Tensor* w = float_weight(*op, 1);
    if (!w) return;
    if (w->shape().size() != 2) return keep(*op, "its constant operand is not 2-D");
    if (gemm && op->attr_int("transA", 0) != 0) return keep(*op, "transA = 1");
    Tensor b = *w;
    if (gemm && op->attr_int("transB", 0) != 0) {  // stored [K, N] as MatMulInteger reads it
      const int64_t n = w->shape()[0], k = w->shape()[1];
      b = Tensor(DType::Float32, {k, n});
      for (int64_t i = 0; i < n; ++i)
        for (int64_t j = 0; j < k; ++j) b.data<float>()[j * n + i] = w->data<float>()[i * k + j];
    }
    Value* bias = nullptr;
    if (gemm && op->input(2)) {
      Value* c = op->input(2);
      if (!c->is_constant() || c->data->dtype() != DType::Float32)
        return keep(*op, "its C input is not a float constant");
      Tensor cb = *c->data;
      const float beta = op->attr_float("beta", 1.f);
      for (int64_t i = 0; i < cb.numel(); ++i) cb.data<float>()[i] *= beta;
      bias = g.add_constant(g.unique_name(op->name + "_bias"), std::move(cb));
    }
    const float alpha = gemm ? op->attr_float("alpha", 1.f) : 1.f;
    auto [codes, sc] = weight_constants(*op, b, 1, Shape{b.shape()[1]}, alpha);
    Value* x = op->input(0);
    Value* y = op->outputs[0];
    const std::string name = op->name;
    g.remove_op(op);
    const auto& xq = quantize_activation(x);
    Value* acc = add_typed_value(g, name + "_output_int32", DType::Int32, y->shape);
    g.add_op("MatMulInteger", g.unique_name(name + "_MatMulInteger"), {xq[0], codes, xq[2]}, {acc});
    rescale(name, acc, xq[1], sc, bias, y);
    ++result.converted;
  }

  // Conv(x, W[O, I/g, k...], B): W per output channel, the rescale broadcast as [1, O, 1, ...].
  void conv(Op* op) {
    const Tensor* w = float_weight(*op, 1);
    if (!w) return;
    Value* b = op->input(2);
    if (b && (!b->is_constant() || b->data->dtype() != DType::Float32))
      return keep(*op, "its bias is not a float constant");
    const int64_t o = w->shape()[0];
    Shape bshape(w->shape().size(), 1);
    bshape[1] = o;
    auto [codes, sc] = weight_constants(*op, *w, 0, bshape, 1.f);
    Value* bias = b ? g.add_constant(g.unique_name(op->name + "_bias"),
                                     Tensor::from_bytes(DType::Float32, bshape, b->data->raw(), b->data->nbytes()))
                    : nullptr;
    Value* x = op->input(0);
    Value* y = op->outputs[0];
    const std::string name = op->name;
    auto attrs = op->attrs;
    g.remove_op(op);
    const auto& xq = quantize_activation(x);
    Value* acc = add_typed_value(g, name + "_output_int32", DType::Int32, y->shape);
    g.add_op("ConvInteger", g.unique_name(name + "_ConvInteger"), {xq[0], codes, xq[2]}, {acc})->attrs = attrs;
    rescale(name, acc, xq[1], sc, bias, y);
    ++result.converted;
  }
};

}  // namespace

ConvertResult convert_dynamic(Graph& graph, const ConvertSettings& settings) {
  if (graph.opset < 11)
    fail(ErrorCode::Unsupported,
         "dynamic quantization needs opset 11 or newer (DynamicQuantizeLinear); the model is "
         "opset " +
             std::to_string(graph.opset));
  DynamicRewriter r{graph, settings, {}, {}};
  std::vector<Op*> targets;
  for (const auto& op : graph.ops())
    if (op->domain.empty() && r.selected(*op)) targets.push_back(op.get());
  for (Op* op : targets) {
    if (op->type == "Conv")
      r.conv(op);
    else if (op->type == "MatMul" || op->type == "Gemm")
      r.matmul(op);
    else
      r.keep(*op, "dynamic quantization rewrites MatMul, Gemm and Conv only");
  }
  graph.topo_sort();
  graph.remove_dead();
  return r.result;
}

}  // namespace edgequant::deploy
