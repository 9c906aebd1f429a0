// Integer program construction (see integer_program.h).
#include "deploy/integer_program.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <set>
#include <sstream>

#include "edgequant/error.h"
#include "exec/kernel.h"
#include "ir/op_traits.h"
#include "runtime/interpreter.h"
#include "runtime/kernels/kernels.h"

namespace edgequant::deploy {

using runtime::IntGraph;
using runtime::IntNode;
using runtime::IntTensor;
using runtime::ValueInfo;

template <class T>
std::vector<T> permute(const std::vector<T>& data, const Shape& shape, const std::vector<int64_t>& perm,
                       Shape* out_shape) {
  Shape os(shape.size());
  for (size_t d = 0; d < shape.size(); ++d) os[d] = shape[size_t(perm[d])];
  std::vector<int64_t> is = std::vector<int64_t>(shape.size(), 1), ostr(shape.size(), 1);
  for (int64_t d = int64_t(shape.size()) - 2; d >= 0; --d) {
    is[size_t(d)] = is[size_t(d + 1)] * shape[size_t(d + 1)];
    ostr[size_t(d)] = ostr[size_t(d + 1)] * os[size_t(d + 1)];
  }
  std::vector<T> out(data.size());
  for (size_t i = 0; i < data.size(); ++i) {
    int64_t src = 0;
    for (size_t d = 0; d < shape.size(); ++d) src += (int64_t(i) / ostr[d]) % os[d] * is[size_t(perm[d])];
    out[i] = data[size_t(src)];
  }
  if (out_shape) *out_shape = os;
  return out;
}
template std::vector<float> permute(const std::vector<float>&, const Shape&, const std::vector<int64_t>&, Shape*);
template std::vector<int64_t> permute(const std::vector<int64_t>&, const Shape&, const std::vector<int64_t>&, Shape*);

namespace {
const std::vector<int64_t> kNHWC = {0, 2, 3, 1};
// ESP-DL's channels-last order of a rank: NHWC for 2-D images, NWC for 1-D sequences; none else.
std::vector<int64_t> channels_last_perm(size_t rank) {
  if (rank == 4) return kNHWC;
  if (rank == 3) return {0, 2, 1};
  return {};
}

std::vector<int64_t> inverse(const std::vector<int64_t>& p) {
  std::vector<int64_t> inv(p.size());
  for (size_t i = 0; i < p.size(); ++i) inv[size_t(p[i])] = int64_t(i);
  return inv;
}

struct Builder {
  const Graph& g;
  const QuantPlan& plan;
  const LoweredModel& lm;
  const Target& target;
  exec::Executor& ex;
  IntGraph p;
  std::map<std::string, at::Tensor> captured;
  std::set<const Op*> static_ops, absorbed;
  std::map<std::string, std::string> dequantized, quantized;  // value -> program value
  std::map<std::string, std::string> conversions;             // value|type|grid -> program value
  std::vector<std::string> problems;
  int lut_count = 0;
  std::set<std::string> unexpressed_outputs;  // extra node outputs already named in `problems`

  void capture() {
    std::vector<at::Tensor> inputs;
    for (const Value* v : g.inputs) {
      Shape s = v->shape ? *v->shape : Shape{};
      for (size_t d = 0; d < s.size(); ++d)
        if (s[d] < 0) {
          if (d != 0)
            fail(ErrorCode::Unsupported, "input '" + v->name + "' has a dynamic dimension " + std::to_string(d) +
                                             " (an integer program needs static shapes)");
          s[d] = 1;
        }
      inputs.push_back(at::zeros(
          s, at::TensorOptions().dtype(dtype_is_float(v->dtype) || v->dtype == DType::Undefined ? at::kFloat
                                                                                                : at::kLong)));
      captured[v->name] = inputs.back();
    }
    exec::ExecHooks hooks;
    hooks.after_op = [&](const Op& op, std::vector<at::Tensor>& outs) {
      for (size_t i = 0; i < op.outputs.size() && i < outs.size(); ++i)
        if (op.outputs[i]) captured[op.outputs[i]->name] = outs[i];
    };
    at::NoGradGuard no_grad;
    ex.run(inputs, &hooks);
    for (const auto& op : g.ops()) {
      bool is_static = op->is(OpType::Shape);
      if (!is_static && !op->inputs.empty()) {
        is_static = true;
        for (const Value* v : op->inputs)
          if (v && !v->is_constant() && !(v->producer && static_ops.count(v->producer))) is_static = false;
      }
      for (const Value* o : op->outputs)
        if (o && has_integer_grid(plan.find(o->name))) is_static = false;
      if (is_static) static_ops.insert(op.get());
    }
  }

  Shape shape_of(const std::string& v) const {
    auto it = captured.find(v);
    return it == captured.end() ? Shape{} : Shape(it->second.sizes().begin(), it->second.sizes().end());
  }

  ValueInfo info(const std::string& source_value, const QuantConfig* c) {
    ValueInfo vi;
    vi.shape = shape_of(source_value);
    if (!has_integer_grid(c)) {
      vi.dtype = DType::Float32;
      return vi;
    }
    if (c->granularity != Granularity::PerTensor || c->scales.size() != 1)
      fail(ErrorCode::Internal, "'" + source_value + "': per-channel activation grid");
    vi.dtype =
        c->bits <= 8 ? (c->is_signed ? DType::Int8 : DType::UInt8) : (c->is_signed ? DType::Int16 : DType::UInt16);
    if (c->scale_kind == ScaleKind::PowerOfTwo && c->zero_points[0] == 0) {
      vi.exponent = c->exponents()[0];
    } else {  // float-scale (TFLite-style) grid
      vi.scale = c->scales[0];
      vi.zero_point = c->zero_points[0];
    }
    return vi;
  }

  IntTensor tensor_of(const at::Tensor& t) {
    IntTensor r;
    at::Tensor c = t.contiguous().cpu();
    r.shape.assign(c.sizes().begin(), c.sizes().end());
    r.exponents = {0};
    if (c.is_floating_point()) {
      r.dtype = DType::Float32;
      at::Tensor f = c.to(at::kFloat);
      r.floats.assign(f.data_ptr<float>(), f.data_ptr<float>() + f.numel());
    } else {
      r.dtype = DType::Int64;
      at::Tensor l = c.to(at::kLong);
      r.ints.assign(l.data_ptr<int64_t>(), l.data_ptr<int64_t>() + l.numel());
    }
    return r;
  }

  // A constant (or folded static value) input as an initializer: integer codes where the lowered
  // form has them, raw values otherwise.
  std::string constant(const Value* v) {
    if (p.initializers.count(v->name)) return v->name;
    IntTensor t;
    const LoweredTensor* lt = lm.tensor(v->name);
    if (lt && lt->codes.dtype() != DType::Undefined) {
      t.dtype = runtime::int_dtype(lt->bits);
      t.bits = lt->bits < int(dtype_size(t.dtype) * 8) ? lt->bits : 0;
      t.shape = lt->codes.shape();
      t.exponents = lt->exponents;
      bool pow2 = true;
      for (int64_t z : lt->zero_points) pow2 &= z == 0;
      if (t.exponents.empty())  // biases: s_in * s_w, a power of two when both are
        for (double sc : lt->scales) {
          int e = static_cast<int>(std::lround(std::log2(sc)));
          pow2 &= std::ldexp(1.0, e) == sc;
          t.exponents.push_back(e);
        }
      if (!pow2) {  // float-scale grid: real = (q - zero_point) * scale
        t.exponents = {0};
        t.scales = lt->scales;
        t.zero_points = lt->zero_points;
      }
      t.ints = lt->codes.to_int64s();
    } else if (v->is_constant()) {
      t = tensor_of(ex.constant(v));
    } else {
      t = tensor_of(captured.at(v->name));
    }
    p.initializers[v->name] = std::move(t);
    return v->name;
  }

  std::string add_scalar(const std::string& name, IntTensor t) {
    p.initializers[name] = std::move(t);
    return name;
  }

  // Inserts `type` (Quantize/Requantize/DequantizeLinear) from `value` to the grid `to`.
  std::string convert(const std::string& value, const ValueInfo& to, const std::string& type, const std::string& tag) {
    // One conversion per (value, grid): an Add reading a value twice shares one RequantizeLinear.
    // The grid the ONNX-style scale/zero-point inputs describe: the target's for Quantize and
    // Requantize, the source's for Dequantize.
    const ValueInfo& grid = to.dtype == DType::Float32 ? p.value(value) : to;
    std::ostringstream gk;
    gk << dtype_name(grid.dtype) << "_" << (grid.scale > 0 ? std::to_string(grid.zero_point) + "_" : "")
       << std::hexfloat << (grid.scale > 0 ? grid.scale : std::ldexp(1.0, grid.exponent));
    std::string key = value + "|" + type + "|" + dtype_name(to.dtype) + "|" + gk.str();
    auto done = conversions.find(key);
    if (done != conversions.end()) return done->second;
    std::string out = value + "_" + tag;
    for (int k = 1; p.values.count(out); ++k) out = value + "_" + tag + std::to_string(k);
    IntTensor scale;
    scale.dtype = DType::Float32;
    scale.floats = {static_cast<float>(grid.scale > 0 ? grid.scale : std::ldexp(1.0, grid.exponent))};
    scale.exponents = {0};
    IntTensor zp;
    zp.dtype = grid.dtype;
    zp.ints = {grid.zero_point};
    zp.exponents = {0};
    IntNode n;
    n.name = out;
    n.op_type = type;
    // ESP-DL requires the scale and zero-point initializers but reads the exponents from the value
    // infos: one shared pair per grid keeps the file small.
    std::string scale_name = grid.scale > 0 ? "eq_scale_" + gk.str() : "eq_scale_2^" + std::to_string(grid.exponent);
    std::string zp_name = std::string("eq_zero_point_") + dtype_name(zp.dtype) +
                          (grid.zero_point ? "_" + std::to_string(grid.zero_point) : "");
    n.inputs = {value, add_scalar(scale_name, scale), add_scalar(zp_name, zp)};
    n.outputs = {out};
    const ValueInfo& from = p.value(value);
    if (op_type_of(type) == OpType::RequantizeLinear && (from.scale > 0 || to.scale > 0)) {
      // Float-scale grids: the q31 multiplier and shift of s_in / s_out (TFLite's requantize).
      double s_in = from.scale > 0 ? from.scale : std::ldexp(1.0, from.exponent);
      double s_out = to.scale > 0 ? to.scale : std::ldexp(1.0, to.exponent);
      int32_t m;
      int shift;
      quantize_multiplier(s_in / s_out, m, shift);
      n.attrs["requant_multiplier"] = std::vector<int64_t>{m};
      n.attrs["requant_shift"] = std::vector<int64_t>{shift};
    }
    p.values[out] = to;
    p.nodes.push_back(std::move(n));
    return conversions[key] = out;
  }

  // The plan's requantization of input `i` of `op` (nullptr when the plan has none).
  const InputRequant* requant_of(const Op& op, size_t i) const {
    for (const auto& rq : plan.requants)
      if (rq.op == op.name && rq.index == int(i)) return &rq;
    return nullptr;
  }

  // A constant operand of an integer op that needs it on another power-of-two grid (an Add's
  // per-channel shift, aligned to the output): the codes requantized once here, as the
  // RequantizeLinear the simulation applies to it would at run time.
  std::string constant_on_grid(const Op& op, size_t i, const ValueInfo* out_grid) {
    const Value* v = op.inputs[i];
    std::string name = constant(v);
    const IntTensor& t = p.initializers.at(name);
    if (t.is_float() || t.exponents.size() != 1 || !t.scales.empty()) return name;
    const LoweredOp* lo = lm.op(op.name);
    ValueInfo want;
    if (lo && lo->input_requants.count(int(i))) {
      const InputRequant* r = requant_of(op, i);
      if (!r) return name;
      want = info(v->name, plan.requant_config(*r));
    } else if (!is_compute_op(op.type) && is_aligned_op(op.type) && out_grid) {
      want = *out_grid;
    } else {
      return name;
    }
    if (want.dtype == DType::Float32 || want.scale > 0 || (want.exponent == t.exponent() && want.dtype == t.dtype))
      return name;
    IntTensor r = t;
    r.dtype = want.dtype;
    r.exponents = {want.exponent};
    for (int64_t& q : r.ints)
      q = saturate(runtime::shift_round(q, want.exponent - t.exponent(), p.rounding), runtime::dtype_min(want.dtype),
                   runtime::dtype_max(want.dtype));
    std::string out = name + "_2^" + std::to_string(want.exponent);
    p.initializers[out] = std::move(r);
    return out;
  }

  // A Pad's constant value as ESP-DL reads it: one code of the output's dtype and exponent.
  std::string pad_value_code(const Op& op, const ValueInfo& out) {
    const Value* v = op.inputs[2];
    if (!v->is_constant() || v->data->numel() != 1)
      fail(ErrorCode::Unsupported, op.describe() + ": its constant value is not one constant");
    IntTensor t;
    t.dtype = out.dtype;
    t.exponents = {out.exponent};
    t.shape = {1};
    const double code = std::ldexp(v->data->to_doubles()[0], -out.exponent);
    t.ints = {saturate(int64_t(std::llround(code)), runtime::dtype_min(out.dtype), runtime::dtype_max(out.dtype))};
    if (double(t.ints[0]) != code)
      fail(ErrorCode::Unsupported,
           op.describe() + ": its constant value is not on the output grid 2^" + std::to_string(out.exponent));
    std::string name = v->name + "_code";
    p.initializers[name] = std::move(t);
    return name;
  }

  std::string data_input(const Op& op, size_t i, bool op_is_int, const ValueInfo* out_grid) {
    const Value* v = op.inputs[i];
    if (v->is_constant() || (v->producer && static_ops.count(v->producer))) return constant(v);
    std::string name = v->name;
    const ValueInfo& have = p.value(name);
    const LoweredOp* lo = lm.op(op.name);
    if (!op_is_int) {
      if (have.dtype == DType::Float32) return name;
      auto it = dequantized.find(name);
      if (it != dequantized.end()) return it->second;
      ValueInfo f = have;
      f.dtype = DType::Float32;
      return dequantized[name] = convert(name, f, "DequantizeLinear", "dequant");
    }
    if (lo && lo->input_requants.count(int(i))) {
      const InputRequant* r = requant_of(op, i);
      ValueInfo to = info(name, r ? plan.requant_config(*r) : nullptr);
      if (to.dtype == have.dtype && to.exponent == have.exponent && to.scale == have.scale &&
          to.zero_point == have.zero_point)
        return name;
      return convert(name, to, "RequantizeLinear", "requant_" + op.name);
    }
    if (have.dtype == DType::Float32) {
      auto it = quantized.find(name);
      if (it != quantized.end()) return it->second;
      return quantized[name] = convert(name, info(name, plan.input_config(op, i)), "QuantizeLinear", "quant");
    }
    // Ops that move codes (and Add/Sub/Concat) need the output's grid on every input.
    bool same_grid = !is_compute_op(op.type) && (is_passive_op(op) || is_aligned_op(op.type));
    if (same_grid && out_grid && out_grid->dtype != DType::Float32 &&
        (have.exponent != out_grid->exponent || have.dtype != out_grid->dtype || have.scale != out_grid->scale ||
         have.zero_point != out_grid->zero_point))
      return convert(name, *out_grid, "RequantizeLinear", "requant_" + op.name);
    return name;
  }

  void copy_attrs(const Op& op, IntNode& n) {
    for (const auto& [k, a] : op.attrs)
      if (!std::holds_alternative<Tensor>(a)) n.attrs[k] = a;
  }

  void emit(const Op& op) {
    if (static_ops.count(&op) || absorbed.count(&op)) return;
    IntNode n;
    n.name = op.name;
    n.op_type = op.type;
    copy_attrs(op, n);
    // Outputs first: their grids decide the inputs' conversions.
    const Value* out = op.outputs.empty() ? nullptr : op.outputs[0];
    if (!out) fail(ErrorCode::Unsupported, "node '" + op.name + "' has no output");
    const QuantConfig* oc = plan.find(out->name);
    std::string out_name = out->name;
    ValueInfo out_info;
    if (oc && oc->state == QuantState::Fused) {
      const Op* act = g.find_op(oc->fused_into);
      if (!act || act->outputs.empty()) fail(ErrorCode::Internal, "fused activation of '" + op.name + "' is missing");
      out_info = info(act->outputs[0]->name, plan.effective(act->outputs[0]->name));
      out_info.shape = shape_of(out->name);
      if (act->is(OpType::Relu) && (op.is(OpType::Conv) || op.is(OpType::Gemm) || op.is(OpType::MatMul))) {
        n.attrs["activation"] = std::string("Relu");
        out_name = act->outputs[0]->name;
        absorbed.insert(act);
      }
    } else {
      out_info = info(out->name, plan.effective(out->name));
    }
    bool is_int = out_info.dtype != DType::Float32;
    for (size_t i = 0; i < op.inputs.size(); ++i) {
      if (!op.inputs[i]) {
        n.inputs.push_back("");
        continue;
      }
      bool data = !op.inputs[i]->is_constant() && !(op.inputs[i]->producer && static_ops.count(op.inputs[i]->producer));
      n.inputs.push_back(data ? data_input(op, i, is_int, &out_info)
                              : (is_int ? constant_on_grid(op, i, &out_info) : constant(op.inputs[i])));
      if (is_int && i == 2 && op.is(OpType::Pad)) n.inputs.back() = pad_value_code(op, out_info);
    }
    for (size_t i = 1; i < op.outputs.size(); ++i) {
      const Value* extra = op.outputs[i];
      bool used = extra && (!extra->consumers.empty() ||
                            std::find(g.outputs.begin(), g.outputs.end(), extra) != g.outputs.end());
      if (used) {
        unexpressed_outputs.insert(extra->name);
        problems.push_back("node '" + op.name + "' (" + op.type + "): its output '" + extra->name + "' (output " +
                           std::to_string(i + 1) + ") is used; the integer program keeps one output per node");
      }
    }
    n.outputs = {out_name};
    p.values[out_name] = out_info;
    specialise(op, n, out_info);
    p.nodes.push_back(std::move(n));
  }

  // A node producing `out_shape` on the grid of `like` (a program value), before the node being
  // emitted; returns its output.
  std::string add_node(const std::string& type, const std::string& base, std::vector<std::string> inputs,
                       const Shape& out_shape, const std::string& like, std::map<std::string, Attribute> attrs = {}) {
    IntNode m;
    m.op_type = type;
    m.name = base + "_" + type + "_" + std::to_string(p.nodes.size());
    m.inputs = std::move(inputs);
    m.outputs = {m.name + "_out"};
    m.attrs = std::move(attrs);
    ValueInfo vi = p.value(like);
    vi.shape = out_shape;
    p.values[m.outputs[0]] = vi;
    p.nodes.push_back(m);
    return m.outputs[0];
  }
  std::string int64_constant(const std::string& name, const std::vector<int64_t>& v) {
    IntTensor t;
    t.dtype = DType::Int64;
    t.shape = {int64_t(v.size())};
    t.ints = v;
    t.exponents = {0};
    return add_scalar(name, t);
  }

  // ESP-DL reads a MatMul's input 1 [..., C, N] in the target's filter memory order
  // (runtime::matmul_b_offset): a constant is reordered here, a computed one goes through the
  // nodes ESP-PPQ's exporter inserts (InsertPreNodeOfMatMulPattern): Transpose of the last two
  // axes and Reshape for the N-major columns, Reshape/Transpose/Reshape for the blocked ones,
  // Slice and Concat when both occur.
  std::string matmul_filter_order(const Op& op, const std::string& b) {
    bool is_const = p.initializers.count(b) != 0;
    const Shape s = is_const ? p.initializers.at(b).shape : p.value(b).shape;
    DType dt = is_const ? p.initializers.at(b).dtype : p.value(b).dtype;
    size_t r = s.size();
    if (r < 2 || s[r - 1] == 1) return b;  // one column: every order is the same
    int64_t C = s[r - 2], N = s[r - 1], a = runtime::matmul_b_block(p, dt);
    int64_t aligned = a > 0 ? N / a * a : 0;
    if (is_const) {
      std::string name = b + "_filter_order";
      if (!p.initializers.count(name)) {
        IntTensor t = p.initializers.at(b);
        for (int64_t off = 0; off + C * N <= int64_t(t.ints.size()); off += C * N)
          for (int64_t c = 0; c < C; ++c)
            for (int64_t j = 0; j < N; ++j)
              t.ints[size_t(off + runtime::matmul_b_offset(c, j, C, N, a))] =
                  p.initializers.at(b).ints[size_t(off + c * N + j)];
        p.initializers[name] = std::move(t);
      }
      return name;
    }
    Shape lead(s.begin(), s.end() - 2);
    auto with = [&](std::vector<int64_t> tail) {
      Shape x = lead;
      x.insert(x.end(), tail.begin(), tail.end());
      return x;
    };
    auto swap_last = [&](size_t rank) {
      std::vector<int64_t> perm(rank);
      for (size_t d = 0; d < rank; ++d) perm[d] = int64_t(d);
      std::swap(perm[rank - 1], perm[rank - 2]);
      return perm;
    };
    const std::string base = op.name + "_B";
    auto reshape = [&](const std::string& v, const Shape& to) {
      return add_node("Reshape", base, {v, int64_constant(base + "_shape_" + std::to_string(p.nodes.size()), to)}, to,
                      b);
    };
    // `width` columns of B [..., C, width] in N-major memory order ([..., width, C]).
    auto n_major = [&](const std::string& v, int64_t width) {
      return add_node("Transpose", base, {v}, with({width, C}), b, {{"perm", swap_last(r)}});
    };
    // The same in blocks of a columns: [..., width / a, C, a].
    auto blocked = [&](const std::string& v, int64_t width) {
      if (r + 1 > 4) {
        problems.push_back("node '" + op.name + "' (MatMul): input 1 of rank " + std::to_string(r) +
                           " is computed; its blocked filter order needs a rank-" + std::to_string(r + 1) +
                           " Transpose");
        return v;
      }
      std::string x = reshape(v, with({C, width / a, a}));
      std::vector<int64_t> perm(r + 1);
      for (size_t d = 0; d < r + 1; ++d) perm[d] = int64_t(d);
      std::swap(perm[r - 2], perm[r - 1]);
      return add_node("Transpose", base, {x}, with({width / a, C, a}), b, {{"perm", perm}});
    };
    if (aligned == 0) return reshape(n_major(b, N), s);
    if (aligned == N) return reshape(blocked(b, N), s);
    auto slice = [&](int64_t from, int64_t to) {
      std::string tag = base + "_cols_" + std::to_string(from) + "_" + std::to_string(to);
      return add_node("Slice", base,
                      {b, int64_constant(tag + "_starts", {from}), int64_constant(tag + "_ends", {to}),
                       int64_constant(tag + "_axes", {int64_t(r - 1)})},
                      with({C, to - from}), b);
    };
    std::string head = reshape(blocked(slice(0, aligned), aligned), with({1, C * aligned}));
    std::string tail = reshape(n_major(slice(aligned, N), N - aligned), with({1, C * (N - aligned)}));
    std::string both = add_node("Concat", base, {head, tail}, with({1, C * N}), b, {{"axis", int64_t(r - 1)}});
    return reshape(both, s);
  }

  // ESP-DL's conventions per op type.
  void specialise(const Op& op, IntNode& n, const ValueInfo& out) {
    if (op.is(OpType::MatMul) && out.dtype != DType::Float32 && n.inputs.size() > 1 && !n.inputs[1].empty())
      n.inputs[1] = matmul_filter_order(op, n.inputs[1]);
    if (op.is(OpType::Conv) || op.is(OpType::Gemm) || op.is(OpType::MatMul)) {
      if (!n.attrs.count("activation")) n.attrs["activation"] = std::string("Linear");
    }
    if ((op.is(OpType::ReduceMean) || op.is(OpType::ReduceSum) || op.is(OpType::ReduceMax) ||
         op.is(OpType::ReduceMin)) &&
        n.attrs.count("axes")) {
      // Opset < 18 (and ReduceSum < 13) name the axes as an attribute; ESP-DL reads input 1.
      IntTensor axes;
      axes.dtype = DType::Int64;
      axes.ints = n.attr_ints("axes");
      axes.shape = {int64_t(axes.ints.size())};
      axes.exponents = {0};
      n.inputs.resize(1);
      n.inputs.push_back(add_scalar(op.name + "_axes", axes));
      n.attrs.erase("axes");
    }
    if (op.is(OpType::Conv)) {
      const Value* w = op.input(1);
      size_t k = w && w->shape ? w->shape->size() - 2 : 2;
      if (op.attr_string("auto_pad", "NOTSET") != "NOTSET")
        problems.push_back("node '" + op.name + "' (Conv): auto_pad");
      if (!n.attrs.count("strides")) n.attrs["strides"] = std::vector<int64_t>(k, 1);
      if (!n.attrs.count("dilations")) n.attrs["dilations"] = std::vector<int64_t>(k, 1);
      if (!n.attrs.count("pads")) n.attrs["pads"] = std::vector<int64_t>(2 * k, 0);
      if (!n.attrs.count("group")) n.attrs["group"] = int64_t(1);
    }
    if (op.is(OpType::Gemm)) {
      if (op.attr_float("alpha", 1.f) != 1.f || op.attr_float("beta", 1.f) != 1.f || op.attr_int("transA", 0) != 0)
        problems.push_back("node '" + op.name + "' (Gemm): alpha/beta must be 1 and transA 0");
      if (op.attr_int("transB", 0) != 0) {
        IntTensor& w = p.initializers.at(n.inputs[1]);
        if (w.shape.size() == 2 && w.layout != "CN") {
          Shape s;
          w.ints = permute(w.ints, w.shape, {1, 0}, &s);
          w.shape = s;
          w.layout = "CN";
        }
      }
      n.attrs["transB"] = int64_t(0);
      n.attrs["transA"] = int64_t(0);
    }
    if (op.is(OpType::Clip) && out.dtype != DType::Float32) {
      // Bounds as codes on the input's grid (ESP-DL quantizes them with the input's config).
      const ValueInfo& in = p.value(n.inputs[0]);
      float bounds[2] = {op.attr_float("min", -INFINITY), op.attr_float("max", INFINITY)};
      n.inputs.resize(3);
      for (int k = 0; k < 2; ++k) {
        const Value* b = op.input(size_t(k + 1));
        if (b) bounds[k] = ex.constant(b).item<float>();
        IntTensor t;
        t.dtype = in.dtype;
        t.exponents = {in.exponent};
        if (in.scale > 0) {
          t.scales = {in.scale};
          t.zero_points = {in.zero_point};
        }
        double q = in.scale > 0 ? round_value(double(bounds[k]) / in.scale, target.rounding) + double(in.zero_point)
                                : round_value(std::ldexp(double(bounds[k]), -in.exponent), target.rounding);
        t.ints = {saturate(static_cast<int64_t>(std::max(-1e18, std::min(1e18, q))), runtime::dtype_min(in.dtype),
                           runtime::dtype_max(in.dtype))};
        // Named by content: Clips with the same bound on the same grid share one initializer.
        std::ostringstream grid;
        if (in.scale > 0)
          grid << std::hexfloat << in.scale << "_" << in.zero_point;
        else
          grid << "2^" << in.exponent;
        n.inputs[size_t(k + 1)] = add_scalar(
            std::string("eq_code_") + dtype_name(t.dtype) + "_" + grid.str() + "_" + std::to_string(t.ints[0]), t);
      }
      n.attrs.erase("min");
      n.attrs.erase("max");
    }
    const LoweredOp* lo = lm.op(op.name);
    if (lo && lo->output_requant && !lo->output_requant->is_shift()) {
      // Float-scale targets: the lowered q31 multiplier and shift per channel.
      n.attrs["requant_multiplier"] =
          std::vector<int64_t>(lo->output_requant->multiplier.begin(), lo->output_requant->multiplier.end());
      n.attrs["requant_shift"] =
          std::vector<int64_t>(lo->output_requant->shift.begin(), lo->output_requant->shift.end());
    }
    if (lo && lo->lut && lo->lut->step == 1 && out.dtype == DType::Int8) {
      IntTensor t;
      t.dtype = DType::Int8;
      t.shape = {int64_t(lo->lut->table.size())};
      t.exponents = {out.exponent};
      t.ints.assign(lo->lut->table.begin(), lo->lut->table.end());
      std::string name = op.type + "_lut_" + std::to_string(lut_count++);
      p.initializers[name] = std::move(t);
      n.attrs["lut"] = name;
    }
  }

  void build() {
    capture();
    p.target = target.name;
    p.filter_blocks = target.espdl_filter_blocks;
    p.rounding = target.requant_rounding;
    p.name = g.name;
    p.metadata["target"] = target.name;
    for (const Value* v : g.inputs) {
      p.inputs.push_back(v->name);
      p.values[v->name] = info(v->name, plan.effective(v->name));
    }
    for (const auto& op : g.ops()) emit(*op);
    for (const Value* v : g.outputs) {
      if (!p.values.count(v->name)) {
        if (p.initializers.count(v->name))
          problems.push_back("graph output '" + v->name + "' is a constant");
        else if (!unexpressed_outputs.count(v->name))
          problems.push_back("graph output '" + v->name + "' is not produced");
      }
      p.outputs.push_back(v->name);
    }
    if (!problems.empty()) {
      std::string all;
      for (const auto& s : problems) all += (all.empty() ? " " : "; ") + s;
      fail(ErrorCode::Unsupported,
           "the integer program cannot express " + std::to_string(problems.size()) + " node(s):" + all);
    }
  }
};

// ESP-DL's activation layouts (espdl-format.md section 5): spatial ops read and write NHWC (NWC
// for 1-D); the ops that need the ONNX order get it back through inserted Transposes.
void to_channels_last(IntGraph& p) {
  std::map<std::string, std::vector<int64_t>> perm;  // value -> program dims as source dims
  std::map<std::string, Shape> source_shape;
  for (const auto& [name, vi] : p.values) source_shape[name] = vi.shape;
  auto perm_of = [&](const std::string& v) -> std::vector<int64_t> {
    auto it = perm.find(v);
    return it == perm.end() ? std::vector<int64_t>{} : it->second;
  };
  auto is_value = [&](const std::string& v) { return !v.empty() && p.values.count(v) && !p.initializers.count(v); };
  auto rank_of = [&](const std::string& v) { return source_shape[v].size(); };
  std::vector<IntNode> nodes;
  std::map<std::pair<std::string, std::vector<int64_t>>, std::string> cache;
  int k = 0;
  auto transpose_to = [&](const std::string& v, const std::vector<int64_t>& want) -> std::string {
    std::vector<int64_t> cur = perm_of(v);
    size_t r = rank_of(v);
    std::vector<int64_t> id(r);
    for (size_t i = 0; i < r; ++i) id[i] = int64_t(i);
    std::vector<int64_t> c = cur.empty() ? id : cur, w = want.empty() ? id : want;
    if (c == w) return v;
    auto key = std::make_pair(v, w);
    if (cache.count(key)) return cache[key];
    std::vector<int64_t> cinv = inverse(c), t(r);
    for (size_t d = 0; d < r; ++d) t[d] = cinv[size_t(w[d])];
    std::string out = v + (w == id ? "_nchw" : "_nhwc");
    IntNode n;
    n.name = "EQ_Transpose_" + std::to_string(k++);
    n.op_type = "Transpose";
    n.inputs = {v};
    n.outputs = {out};
    n.attrs["perm"] = t;
    p.values[out] = p.values[v];
    source_shape[out] = source_shape[v];
    if (w != id) perm[out] = w;
    nodes.push_back(std::move(n));
    return cache[key] = out;
  };
  auto consumers_spatial = [&](const std::string& v) {
    for (const IntNode& n : p.nodes)
      if (op_has(n.op_type, kSpatial) && !n.inputs.empty() && n.inputs[0] == v) return true;
    return false;
  };
  for (const std::string& in : p.inputs)
    if (!channels_last_perm(rank_of(in)).empty() && consumers_spatial(in)) perm[in] = channels_last_perm(rank_of(in));
  auto remap_axis = [&](IntNode& n, const std::vector<int64_t>& pm, size_t rank) {
    if (pm.empty()) return;
    int64_t axis = n.attr_int("axis", n.is(OpType::Concat) ? 0 : -1);
    if (axis < 0) axis += int64_t(rank);
    for (size_t d = 0; d < pm.size(); ++d)
      if (pm[d] == axis) n.attrs["axis"] = int64_t(d);
  };
  for (IntNode n : p.nodes) {
    std::vector<size_t> acts;
    for (size_t i = 0; i < n.inputs.size(); ++i)
      if (is_value(n.inputs[i])) acts.push_back(i);
    std::vector<int64_t> out_perm;
    if (op_has(n.op_type, kSpatial)) {
      std::vector<int64_t> cl = acts.empty() ? std::vector<int64_t>{} : channels_last_perm(rank_of(n.inputs[0]));
      if (!cl.empty()) {
        n.inputs[0] = transpose_to(n.inputs[0], cl);
        out_perm = cl;
      }
    } else if (op_has(n.op_type, kLayoutOfInput)) {
      if (!acts.empty()) out_perm = perm_of(n.inputs[acts[0]]);
    } else if ((op_has(n.op_type, kBroadcastBinary) && !n.is(OpType::Div)) || n.is(OpType::Concat)) {
      // Div stays in the source layout: ESP-DL's Div formula depends on which operand is a
      // scalar along the innermost dimension (runtime::espdl_div_form), and the simulation
      // decides it on the source shapes.
      std::set<std::vector<int64_t>> seen;
      for (size_t i : acts) seen.insert(perm_of(n.inputs[i]));
      bool constants_ok = true;
      for (size_t i = 0; i < n.inputs.size(); ++i)
        if (!is_value(n.inputs[i]) && !n.inputs[i].empty() && !n.is(OpType::Concat) &&
            p.initializers.count(n.inputs[i]) && p.initializers.at(n.inputs[i]).numel() != 1)
          constants_ok = false;
      if (seen.size() == 1 && constants_ok && (!n.is(OpType::Concat) || acts.size() == n.inputs.size())) {
        out_perm = *seen.begin();
        if (n.is(OpType::Concat)) remap_axis(n, out_perm, rank_of(n.inputs[acts[0]]));
      } else {
        for (size_t i : acts) n.inputs[i] = transpose_to(n.inputs[i], {});
      }
    } else if (n.is(OpType::Softmax) || n.is(OpType::LogSoftmax)) {
      out_perm = acts.empty() ? std::vector<int64_t>{} : perm_of(n.inputs[0]);
      remap_axis(n, out_perm, acts.empty() ? 0 : rank_of(n.inputs[0]));
    } else {
      for (size_t i : acts) n.inputs[i] = transpose_to(n.inputs[i], {});
    }
    for (const std::string& o : n.outputs)
      if (!out_perm.empty() && rank_of(o) == out_perm.size()) perm[o] = out_perm;
    nodes.push_back(std::move(n));
  }
  p.nodes = std::move(nodes);
  for (auto& [name, vi] : p.values) {
    vi.perm = perm_of(name);
    vi.shape = source_shape[name];
    if (!vi.perm.empty() && vi.shape.size() == vi.perm.size()) {
      Shape s(vi.shape.size());
      for (size_t d = 0; d < s.size(); ++d) s[d] = vi.shape[size_t(vi.perm[d])];
      vi.shape = s;
    }
  }
}
}  // namespace

runtime::IntGraph build_integer_program(const Graph& g, const QuantPlan& plan, const LoweredModel& lowered,
                                        const Target& target, exec::Executor& ex, bool channels_last) {
  Builder b{g, plan, lowered, target, ex, {}, {}, {}, {}, {}, {}, {}, {}, 0, {}};
  b.build();
  if (channels_last) to_channels_last(b.p);
  runtime::verify_program(b.p);
  return std::move(b.p);
}

std::vector<float> to_source_layout(const IntGraph& p, const std::string& value, const IntTensor& t, Shape* shape) {
  std::vector<float> v = runtime::dequantize(t);
  const ValueInfo& vi = p.value(value);
  if (vi.perm.empty() || t.shape.size() != vi.perm.size()) {
    if (shape) *shape = t.shape;
    return v;
  }
  return permute(v, t.shape, inverse(vi.perm), shape);
}

std::vector<float> to_program_layout(const IntGraph& p, const std::string& value, const std::vector<float>& v,
                                     const Shape& source_shape, Shape* program_shape) {
  const ValueInfo& vi = p.value(value);
  if (vi.perm.empty() || source_shape.size() != vi.perm.size()) {
    if (program_shape) *program_shape = source_shape;
    return v;
  }
  return permute(v, source_shape, vi.perm, program_shape);
}

std::vector<std::vector<float>> run_source_sample(const IntGraph& p, const std::vector<std::vector<float>>& inputs,
                                                  const std::vector<Shape>& shapes, std::vector<Shape>* out_shapes,
                                                  runtime::TensorMap* state) {
  if (inputs.size() != p.inputs.size() || shapes.size() != p.inputs.size())
    fail(ErrorCode::InvalidInput,
         "the program takes " + std::to_string(p.inputs.size()) + " inputs, given " + std::to_string(inputs.size()));
  runtime::TensorMap in;
  for (size_t k = 0; k < inputs.size(); ++k) {
    Shape shape;
    std::vector<float> pv = to_program_layout(p, p.inputs[k], inputs[k], shapes[k], &shape);
    in[p.inputs[k]] = runtime::quantize_for_input(p, p.inputs[k], pv, shape);
  }
  runtime::TensorMap out = runtime::run_program(p, in, false, state);
  std::vector<std::vector<float>> result(p.outputs.size());
  if (out_shapes) out_shapes->resize(p.outputs.size());
  for (size_t k = 0; k < p.outputs.size(); ++k)
    result[k] = to_source_layout(p, p.outputs[k], out.at(p.outputs[k]), out_shapes ? &(*out_shapes)[k] : nullptr);
  return result;
}

}  // namespace edgequant::deploy
