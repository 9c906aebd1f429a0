// TI integer ONNX export (see ti_onnx.h).
#include "deploy/ti_onnx.h"

#include <cmath>
#include <sstream>

#include "core/files.h"
#include "deploy/exporter.h"
#include "deploy/integer_program.h"
#include "edgequant/error.h"
#include "ir/op_traits.h"
#include "onnx/onnx_io.h"

namespace edgequant::deploy {

using runtime::IntGraph;
using runtime::IntNode;
using runtime::IntTensor;

namespace {
struct TiWriter {
  const IntGraph& p;
  Graph& g;
  std::map<std::string, Value*> values;  // program value -> graph value

  Value* fresh(const std::string& base, const Shape& shape = {}) {
    Value* v = g.add_value(g.unique_name(base));
    v->dtype = DType::Float32;
    if (!shape.empty()) {
      v->shape = shape;
      v->dim_names.assign(shape.size(), "");
    }
    return v;
  }
  Value* scalar(const std::string& base, double x) {
    return g.add_constant(g.unique_name(base), Tensor::from_vector(DType::Float32, {}, std::vector<float>{float(x)}));
  }
  // Per-channel constant broadcast along axis 1 of a rank-`rank` tensor.
  Value* channel_constant(const std::string& base, const std::vector<double>& v, size_t rank) {
    if (v.size() == 1) return scalar(base, v[0]);
    Shape shape(rank, 1);
    shape[1] = int64_t(v.size());
    return g.add_constant(g.unique_name(base),
                          Tensor::from_vector(DType::Float32, shape, std::vector<float>(v.begin(), v.end())));
  }
  Value* op1(const std::string& type, const std::string& base, std::vector<Value*> in, const Shape& shape) {
    Value* out = fresh(base + "_" + type, shape);
    g.add_op(type, g.unique_name(base + "/" + type), in, {out});
    return out;
  }
  Value* input(const std::string& name) {
    auto it = values.find(name);
    if (it != values.end()) return it->second;
    const IntTensor* t = p.initializer(name);
    if (!t) fail(ErrorCode::Internal, "TI export: '" + name + "' is undefined");
    Value* c;
    if (t->is_float())
      c = g.add_constant(g.unique_name(name), Tensor::from_vector(DType::Float32, t->shape, t->floats));
    else if (t->dtype == DType::Int64)
      c = g.add_constant(g.unique_name(name), Tensor::from_vector(DType::Int64, t->shape, t->ints));
    else {
      // Codes stored at their width (int8/int16/int32), cast to exact float32 integers for the
      // float ops that compute on them.
      Tensor codes(t->dtype, t->shape);
      for (size_t i = 0; i < t->ints.size(); ++i) {
        if (t->dtype == DType::Int8)
          codes.data<int8_t>()[i] = int8_t(t->ints[i]);
        else if (t->dtype == DType::Int16)
          codes.data<int16_t>()[i] = int16_t(t->ints[i]);
        else
          codes.data<int32_t>()[i] = int32_t(t->ints[i]);
      }
      if (t->dtype != DType::Int8 && t->dtype != DType::Int16 && t->dtype != DType::Int32)
        fail(ErrorCode::Unsupported, "TI export: '" + name + "' is " + dtype_name(t->dtype));
      Value* q = g.add_constant(g.unique_name(name + "_codes"), codes);
      c = fresh(name, t->shape);
      g.add_op("Cast", g.unique_name(name + "/Cast"), {q}, {c})->attrs["to"] = int64_t(1);  // FLOAT
    }
    return values[name] = c;
  }
  int64_t lo(const std::string& v) const { return runtime::dtype_min(p.value(v).dtype); }
  int64_t hi(const std::string& v) const { return runtime::dtype_max(p.value(v).dtype); }

  // floor((x + offset) / 2^shift) per channel (a left shift multiplies), then Clip: the BNORM tail.
  Value* shift_floor_clip(Value* x, const std::vector<int>& shifts, const std::string& base, const Shape& shape,
                          int64_t clip_lo, int64_t clip_hi) {
    size_t rank = shape.size();
    bool any_right = false;
    std::vector<double> offset, divisor;
    for (int s : shifts) {
      any_right |= s > 0;
      offset.push_back(s > 0 ? std::ldexp(1.0, s - 1) : 0.0);
      divisor.push_back(std::ldexp(1.0, s));
    }
    if (any_right) x = op1("Add", base + "/round", {x, channel_constant(base + "_half_divisor", offset, rank)}, shape);
    x = op1("Div", base, {x, channel_constant(base + "_shift", divisor, rank)}, shape);
    if (any_right) x = op1("Floor", base, {x}, shape);
    return clip(x, base, shape, clip_lo, clip_hi);
  }
  Value* clip(Value* x, const std::string& base, const Shape& shape, int64_t a, int64_t b) {
    return op1("Clip", base, {x, scalar(base + "_min", double(a)), scalar(base + "_max", double(b))}, shape);
  }
  // round_half_up(x * 2^k) saturated, for float-domain steps (pooling means, float functions).
  Value* round_clip(Value* x, int k, const std::string& base, const Shape& shape, int64_t a, int64_t b) {
    if (k != 0) x = op1("Mul", base + "/rescale", {x, scalar(base + "_rescale", std::ldexp(1.0, k))}, shape);
    x = op1("Add", base + "/round", {x, scalar(base + "_half", 0.5)}, shape);
    x = op1("Floor", base, {x}, shape);
    return clip(x, base, shape, a, b);
  }

  void node(const IntNode& n) {
    const std::string& out = n.outputs.at(0);
    const runtime::ValueInfo& vo = p.value(out);
    Shape shape = vo.shape;
    std::string base = n.name;
    auto exp_of = [&](const std::string& v) { return p.value(v).exponent; };
    Value* y = nullptr;
    const std::string& t = n.op_type;
    if (vo.dtype == DType::Float32 && !n.is(OpType::DequantizeLinear)) {
      // A float island (an op dispatched to float, between a DequantizeLinear and a
      // QuantizeLinear): the same op on real values, run by the chip's CPU.
      std::vector<Value*> in;
      for (const std::string& i : n.inputs) in.push_back(i.empty() ? nullptr : input(i));
      y = fresh(out, shape);
      Op* op = g.add_op(t, g.unique_name(base), in, {y});
      for (const auto& [k, a] : n.attrs)
        if (k != "lut" && k != "activation") op->attrs[k] = a;
      values[out] = y;
      return;
    }
    if (n.is(OpType::Conv) || n.is(OpType::Gemm)) {
      const IntTensor& w = *p.initializer(n.inputs[1]);
      Value* acc = fresh(base + "_accumulator", shape);
      Op* op = g.add_op(t, g.unique_name(base), {input(n.inputs[0]), input(n.inputs[1])}, {acc});
      for (const auto& [k, a] : n.attrs)
        if (k != "activation") op->attrs[k] = a;
      std::vector<int> shifts;
      size_t channels = size_t(n.is(OpType::Conv) ? w.shape[0] : w.shape.back());
      for (size_t c = 0; c < channels; ++c) {
        int ew = w.exponents.size() > 1 ? w.exponents[c] : w.exponent();
        shifts.push_back(exp_of(out) - exp_of(n.inputs[0]) - ew);
      }
      bool per_channel = w.exponents.size() > 1;
      if (!per_channel) shifts.resize(1);
      // BNORM: Add(bias) -> Mul(scale) -> Div(2^n) -> Floor -> Clip. The bias enters in the
      // accumulator's units; the scale multiplier is 1 on power-of-two grids.
      Value* x = acc;
      if (n.inputs.size() > 2 && !n.inputs[2].empty()) {
        const IntTensor& b = *p.initializer(n.inputs[2]);
        std::vector<double> bias(b.ints.begin(), b.ints.end());
        for (double v : bias)
          if (std::fabs(v) >= 16777216.0)
            fail(ErrorCode::Unsupported, "TI export: bias of '" + n.name + "' exceeds float32's exact integers");
        x = op1("Add", base + "/bias", {x, channel_constant(base + "_bias", bias, shape.size())}, shape);
      }
      x = op1("Mul", base + "/scale", {x, scalar(base + "_scale", 1.0)}, shape);
      bool relu = n.attr_string("activation", "Linear") == "Relu";
      y = shift_floor_clip(x, shifts, base, shape, relu ? 0 : lo(out), hi(out));
    } else if (n.is(OpType::Add) || n.is(OpType::Sub)) {
      Value* x = op1(t, base, {input(n.inputs[0]), input(n.inputs[1])}, shape);
      y = clip(x, base, shape, lo(out), hi(out));
    } else if (n.is(OpType::Mul)) {
      Value* x = op1("Mul", base, {input(n.inputs[0]), input(n.inputs[1])}, shape);
      y = round_clip(x, exp_of(n.inputs[0]) + exp_of(n.inputs[1]) - exp_of(out), base, shape, lo(out), hi(out));
    } else if (n.is(OpType::RequantizeLinear)) {
      y = shift_floor_clip(input(n.inputs[0]), {exp_of(out) - exp_of(n.inputs[0])}, base, shape, lo(out), hi(out));
    } else if (n.is(OpType::QuantizeLinear)) {
      y = round_clip(input(n.inputs[0]), -exp_of(out), base, shape, lo(out), hi(out));
    } else if (n.is(OpType::DequantizeLinear)) {
      y = op1("Mul", base, {input(n.inputs[0]), scalar(base + "_scale", std::ldexp(1.0, exp_of(n.inputs[0])))}, shape);
    } else if (n.is(OpType::Clip) || n.is(OpType::Relu)) {
      const IntTensor* a = n.inputs.size() > 1 ? p.initializer(n.inputs[1]) : nullptr;
      const IntTensor* b = n.inputs.size() > 2 ? p.initializer(n.inputs[2]) : nullptr;
      int64_t a_code = n.is(OpType::Relu) ? 0 : a ? a->ints.at(0) : lo(n.inputs[0]);
      int64_t b_code = b ? b->ints.at(0) : hi(n.inputs[0]);
      Value* x = clip(input(n.inputs[0]), base, shape, a_code, b_code);
      int s = exp_of(out) - exp_of(n.inputs[0]);
      y = s == 0 ? x : shift_floor_clip(x, {s}, base + "/requant", shape, lo(out), hi(out));
    } else if (n.is(OpType::GlobalAveragePool) || n.is(OpType::AveragePool)) {
      Op* op;
      Value* mean = fresh(base + "_mean", shape);
      op = g.add_op(t, g.unique_name(base), {input(n.inputs[0])}, {mean});
      for (const auto& [k, a] : n.attrs) op->attrs[k] = a;
      if (n.is(OpType::AveragePool)) op->attrs["count_include_pad"] = int64_t(1);  // ESP-DL / TI: the full window
      y = round_clip(mean, exp_of(n.inputs[0]) - exp_of(out), base, shape, lo(out), hi(out));
    } else if (n.is(OpType::Sigmoid) || n.is(OpType::Tanh) || n.is(OpType::HardSigmoid) || n.is(OpType::HardSwish) ||
               n.is(OpType::LeakyRelu) || n.is(OpType::Elu) || n.is(OpType::Exp)) {
      // No table on this target: the float function between exact rescalings (CPU on the chip).
      Value* x = op1("Mul", base + "/dequantize",
                     {input(n.inputs[0]), scalar(base + "_in_scale", std::ldexp(1.0, exp_of(n.inputs[0])))}, shape);
      Op* op;
      Value* f = fresh(base + "_" + t, shape);
      op = g.add_op(t, g.unique_name(base), {x}, {f});
      for (const auto& [k, a] : n.attrs)
        if (k != "lut") op->attrs[k] = a;
      y = round_clip(f, -exp_of(out), base, shape, lo(out), hi(out));
    } else {
      // Data movement and the rest: the same op on codes (MaxPool, Reshape, Flatten, Concat, ...).
      std::vector<Value*> in;
      for (const std::string& i : n.inputs) in.push_back(i.empty() ? nullptr : input(i));
      y = fresh(out, shape);
      Op* op = g.add_op(t, g.unique_name(base), in, {y});
      for (const auto& [k, a] : n.attrs)
        if (k != "lut") op->attrs[k] = a;
    }
    values[out] = y;
  }
};
}  // namespace

std::unique_ptr<Graph> ti_integer_graph(const IntGraph& p, int64_t opset) {
  auto g = std::make_unique<Graph>();
  g->name = p.name;
  g->opset = std::max<int64_t>(opset, 13);
  g->producer_name = "edgequant";
  TiWriter w{p, *g, {}};
  // Graph inputs stay float (normalised data); the program's first op quantizes them.
  for (const std::string& in : p.inputs) {
    const runtime::ValueInfo& vi = p.value(in);
    Value* x = g->add_value(in + "_float");
    x->dtype = DType::Float32;
    x->shape = vi.shape;
    x->dim_names.assign(vi.shape.size(), "");
    g->inputs.push_back(x);
    w.values[in] =
        vi.dtype == DType::Float32 ? x : w.round_clip(x, -vi.exponent, in + "/quantize", vi.shape, w.lo(in), w.hi(in));
  }
  for (const IntNode& n : p.nodes) w.node(n);
  for (const std::string& out : p.outputs) {
    Value* v = w.values.at(out);
    g->rename_value(v, g->unique_name(out));
    g->outputs.push_back(v);
  }
  for (Value* in : g->inputs) g->rename_value(in, in->name.substr(0, in->name.size() - 6));
  g->topo_sort();
  g->verify();
  return g;
}

std::string ti_quantization_config(const IntGraph& p, const std::string& method,
                                   const std::vector<std::string>& notes) {
  std::ostringstream s;
  s << "# Written by EdgeQuant beside the TI integer ONNX (ti-npu).\n"
    << "quantization: 2\n"
    << "quantization_method: " << method << "\n"
    << "activation_bits: 8\n"
    << "layers:\n";
  for (const IntNode& n : p.nodes) {
    if (!n.is(OpType::Conv) && !n.is(OpType::Gemm)) continue;
    const IntTensor& w = *p.initializer(n.inputs[1]);
    int bits = w.bits ? w.bits : int(dtype_size(w.dtype) * 8);
    s << "  - name: \"" << n.name << "\"\n"
      << "    type: " << n.op_type << "\n"
      << "    weight_bits: " << bits << "\n"
      << "    weight_scheme: " << (w.exponents.size() > 1 ? "per_channel" : "per_tensor") << " symmetric power_of_two\n"
      << "    input_exponent: " << p.value(n.inputs[0]).exponent << "\n"
      << "    output_exponent: " << p.value(n.outputs[0]).exponent << "\n"
      << "    activation: " << n.attr_string("activation", "Linear") << "\n";
  }
  s << "outputs:\n";
  for (const std::string& o : p.outputs)
    s << "  - name: \"" << o << "\"\n    exponent: " << p.value(o).exponent << "  # real = code * 2^exponent\n";
  s << "npu_rule_violations:" << (notes.empty() ? " []" : "") << "\n";
  for (const std::string& n : notes) s << "  - \"" << n << "\"\n";
  return s.str();
}

namespace {
class TiOnnxExporter : public Exporter {
 public:
  ExportFormat format() const override { return ExportFormat::TiOnnx; }
  void check_op(const Op& op, const QuantPlan& plan, const Target&, std::vector<Finding>& out) const override {
    if (!is_compute_op(op.type)) return;
    if (const Value* w = op.input(1))
      if (const QuantConfig* c = plan.find(w->name))
        if (c->scale_kind != ScaleKind::PowerOfTwo)
          out.push_back({op.name, op.type,
                         std::to_string(c->bits) + "-bit weights with float scales: TI integer ONNX export "
                                                   "of the 8-bit multiplier is not implemented yet",
                         "--format qdq, or 8-bit weights"});
  }
  Deployed write(const ExportJob& j) const override {
    Deployed d;
    d.path = j.dir + "/model.ti.onnx";
    runtime::IntGraph p = build_integer_program(j.graph, j.plan, j.lowered, j.target, j.executor, false);
    export_onnx(*ti_integer_graph(p, j.graph.opset), d.path);
    d.bytes = file_size(d.path);
    write_file_atomic(j.dir + "/quantization_config.yaml", ti_quantization_config(p, j.calib_method, j.plan.notes));
    d.side_files = {j.dir + "/quantization_config.yaml"};
    return d;
  }
};
}  // namespace

const Exporter& ti_onnx_exporter() {
  static const TiOnnxExporter e;
  return e;
}

}  // namespace edgequant::deploy
