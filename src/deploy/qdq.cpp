// QDQ export (see qdq.h).
#include "deploy/qdq.h"

#include <cmath>
#include <set>

#include "core/files.h"
#include "deploy/exporter.h"
#include "edgequant/error.h"
#include "onnx/onnx_io.h"

namespace edgequant::deploy {

namespace {
struct QdqBuilder {
  Graph& g;
  const QuantPlan& plan;
  const LoweredModel& lm;

  Value* scale_constant(const std::string& base, const QuantConfig& c) {
    std::vector<float> s(c.scales.begin(), c.scales.end());
    Shape shape = s.size() == 1 ? Shape{} : Shape{int64_t(s.size())};
    return g.add_constant(g.unique_name(base + "_scale"), Tensor::from_vector(DType::Float32, shape, s));
  }

  Value* zero_point_constant(const std::string& base, const QuantConfig& c, DType dtype) {
    Shape shape = c.zero_points.size() == 1 ? Shape{} : Shape{int64_t(c.zero_points.size())};
    Tensor t(dtype, shape);
    for (size_t i = 0; i < c.zero_points.size(); ++i) {
      if (dtype == DType::Int8)
        t.data<int8_t>()[i] = int8_t(c.zero_points[i]);
      else if (dtype == DType::UInt8)
        t.data<uint8_t>()[i] = uint8_t(c.zero_points[i]);
      else
        t.data<int32_t>()[i] = int32_t(c.zero_points[i]);
    }
    return g.add_constant(g.unique_name(base + "_zero_point"), t);
  }

  DType activation_dtype(const std::string& name, const QuantConfig& c) {
    if (c.bits > 8)
      fail(ErrorCode::Unsupported, "QDQ export: '" + name + "' is " + std::to_string(c.bits) +
                                       "-bit; QuantizeLinear at opset 13 takes int8/uint8 (use --format espdl)");
    if (c.quant_min < (c.is_signed ? -128 : 0) || c.quant_max > (c.is_signed ? 127 : 255))
      fail(ErrorCode::Internal, "QDQ export: '" + name + "' has a range beyond its 8-bit type");
    return c.is_signed ? DType::Int8 : DType::UInt8;
  }

  Value* float_value(const Value* like, const std::string& base) {
    Value* v = g.add_value(g.unique_name(base));
    v->dtype = DType::Float32;
    v->shape = like->shape;
    v->dim_names = like->dim_names;
    return v;
  }

  // x -> QuantizeLinear -> DequantizeLinear; returns the dequantized value.
  Value* fake_quant(Value* x, const QuantConfig& c, const std::string& base) {
    DType dt = activation_dtype(x->name, c);
    Value* s = scale_constant(base, c);
    Value* z = zero_point_constant(base, c, dt);
    bool up = c.rounding == RoundingMode::HalfUp, away = c.rounding == RoundingMode::HalfAwayFromZero;
    if ((up || away) && c.granularity == Granularity::PerTensor) {
      // QuantizeLinear rounds ties to even; the target rounds them up (or away from zero).
      // Adding 2^-14 LSB (times sign(x) for away-from-zero) moves every tie the target's way and
      // no other value across a rounding boundary: the values reaching here carry at most 13
      // fractional bits below the LSB on power-of-two grids, and 2^-14 LSB is 4 float32 ulps or
      // more for |x| < 128 LSB (beyond, saturation decides).
      Value* eps = g.add_constant(
          g.unique_name(base + "_tie_nudge"),
          Tensor::from_vector(DType::Float32, {}, std::vector<float>{float(c.scales[0] * std::ldexp(1.0, -14))}));
      if (away) {
        Value* sign = float_value(x, base + "_sign");
        g.add_op("Sign", g.unique_name(base + "_Sign"), {x}, {sign});
        Value* signed_eps = float_value(x, base + "_signed_nudge");
        g.add_op("Mul", g.unique_name(base + "_TieNudge"), {sign, eps}, {signed_eps});
        eps = signed_eps;
      }
      Value* shifted = float_value(x, base + "_nudged");
      g.add_op("Add", g.unique_name(base + "_TieRounding"), {x, eps}, {shifted});
      x = shifted;
    } else if (c.rounding != RoundingMode::HalfEven) {
      fail(ErrorCode::Unsupported, std::string("QDQ export: '") + x->name + "' rounds " +
                                       rounding_mode_name(c.rounding) + "; QuantizeLinear rounds half to even");
    }
    Value* q = g.add_value(g.unique_name(base + "_quantized"));
    q->dtype = dt;
    q->shape = x->shape;
    q->dim_names = x->dim_names;
    Value* dq = g.add_value(g.unique_name(base + "_dequantized"));
    dq->dtype = DType::Float32;
    dq->shape = x->shape;
    dq->dim_names = x->dim_names;
    Op* qop = g.add_op("QuantizeLinear", g.unique_name(base + "_QuantizeLinear"), {x, s, z}, {q});
    Op* dqop = g.add_op("DequantizeLinear", g.unique_name(base + "_DequantizeLinear"), {q, s, z}, {dq});
    if (c.granularity == Granularity::PerChannel) {
      qop->attrs["axis"] = c.axis;
      dqop->attrs["axis"] = c.axis;
    }
    return dq;
  }

  // A constant as its integer codes behind a DequantizeLinear.
  void constant_codes(Value* v, const QuantConfig& c) {
    const LoweredTensor* lt = lm.tensor(v->name);
    if (!lt || lt->codes.dtype() == DType::Undefined)
      fail(ErrorCode::Internal, "QDQ export: no codes for '" + v->name + "'");
    DType dt = c.role == QuantRole::Bias ? DType::Int32 : activation_dtype(v->name, c);
    if (c.role == QuantRole::Bias && c.bits > 32)
      fail(ErrorCode::Unsupported,
           "QDQ export: bias '" + v->name + "' is " + std::to_string(c.bits) + "-bit (int32 at most)");
    std::vector<int64_t> codes = lt->codes.to_int64s();
    Tensor t(dt, lt->codes.shape());
    for (size_t i = 0; i < codes.size(); ++i) {
      if (dt == DType::Int8)
        t.data<int8_t>()[i] = int8_t(codes[i]);
      else if (dt == DType::UInt8)
        t.data<uint8_t>()[i] = uint8_t(codes[i]);
      else
        t.data<int32_t>()[i] = int32_t(codes[i]);
    }
    std::string base = v->name;
    Value* q = g.add_constant(g.unique_name(base + "_quantized"), t);
    Value* s = scale_constant(base, c);
    Value* z = zero_point_constant(base, c, dt);
    Value* dq = g.add_value(g.unique_name(base + "_dequantized"));
    dq->dtype = DType::Float32;
    dq->shape = lt->codes.shape();
    g.replace_uses(v, dq);
    Op* op = g.add_op("DequantizeLinear", g.unique_name(base + "_DequantizeLinear"), {q, s, z}, {dq});
    if (c.granularity == Granularity::PerChannel) op->attrs["axis"] = c.axis;
  }

  void build() {
    std::set<std::string> outputs;
    for (const Value* v : g.outputs) outputs.insert(v->name);
    std::vector<Value*> values;
    for (const auto& v : g.values()) values.push_back(v.get());
    // Aligned inputs first (they read the value before its own Q/DQ is spliced in).
    for (const InputRequant& r : plan.requants) {
      const QuantConfig* c = plan.requant_config(r);
      Op* op = g.find_op(r.op);
      if (!op || !has_integer_grid(c) || !op->input(size_t(r.index))) continue;
      g.set_input(op, size_t(r.index),
                  fake_quant(op->input(size_t(r.index)), *c, r.op + "_input" + std::to_string(r.index)));
    }
    for (Value* v : values) {
      const QuantConfig* c = plan.find(v->name);
      if (!c || !c->has_scale()) continue;
      if (v->is_constant()) {
        if (c->state == QuantState::Quantized || c->state == QuantState::Passive)
          constant_codes(v, *plan.effective(v->name));
        continue;
      }
      if (c->state != QuantState::Quantized) continue;  // passive values sit on their master's grid already
      std::vector<Op*> users = v->consumers;
      bool is_output = outputs.count(v->name) > 0;
      std::string name = v->name;
      if (is_output) g.rename_value(v, g.unique_name(name + "_float"));
      Value* dq = fake_quant(v, *c, name);
      for (Op* op : users)
        for (size_t i = 0; i < op->inputs.size(); ++i)
          if (op->inputs[i] == v) g.set_input(op, i, dq);
      if (is_output) {
        for (Value*& o : g.outputs)
          if (o == v) o = dq;
        g.rename_value(dq, name);
      }
    }
    g.opset = std::max<int64_t>(g.opset, 13);
    g.topo_sort();
    g.verify();
  }
};
}  // namespace

std::unique_ptr<Graph> qdq_graph(const Graph& g, const QuantPlan& plan, const LoweredModel& lowered) {
  std::unique_ptr<Graph> out = g.clone();
  QdqBuilder{*out, plan, lowered}.build();
  return out;
}

void write_qdq(const Graph& g, const QuantPlan& plan, const LoweredModel& lowered, const std::string& path) {
  export_onnx(*qdq_graph(g, plan, lowered), path);
}

namespace {
class QdqExporter : public Exporter {
 public:
  ExportFormat format() const override { return ExportFormat::Qdq; }
  void check_op(const Op& op, const QuantPlan& plan, const Target&, std::vector<Finding>& out) const override {
    for (const Value* v : op.outputs)
      if (const QuantConfig* c = v ? plan.find(v->name) : nullptr)
        if (c->state == QuantState::Quantized && c->bits > 8)
          out.push_back({op.name, op.type,
                         std::to_string(c->bits) + "-bit output: QuantizeLinear at opset 13 takes 8 bits",
                         "dispatch it to int8, or --format espdl"});
  }
  Deployed write(const ExportJob& j) const override {
    Deployed d;
    d.path = j.dir + "/model.qdq.onnx";
    write_qdq(j.graph, j.plan, j.lowered, d.path);
    d.bytes = file_size(d.path);
    return d;
  }
};
}  // namespace

const Exporter& qdq_exporter() {
  static const QdqExporter e;
  return e;
}

}  // namespace edgequant::deploy
