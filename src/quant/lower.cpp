// Lowering to the integer form (see lower.h).
#include "quant/lower.h"

#include <ATen/ATen.h>

#include <cmath>

#include "edgequant/error.h"
#include "exec/kernel.h"
#include "ir/op_traits.h"
#include "quant/fake_quant.h"

namespace edgequant::quant {

namespace {
LoweredTensor grid_of(const std::string& name, const QuantConfig& c) {
  LoweredTensor t;
  t.value = name;
  t.role = c.role;
  t.bits = c.bits;
  t.dtype = code_dtype(c.bits, c.is_signed);
  t.qmin = c.quant_min;
  t.qmax = c.quant_max;
  t.axis = c.axis;
  t.scales = c.scales;
  t.zero_points = c.zero_points;
  if (c.scale_kind == ScaleKind::PowerOfTwo) t.exponents = c.exponents();
  return t;
}

// Integer codes of a constant: weights and other constants with the simulator's own float
// arithmetic (quantize_codes); biases in double, exact up to 2^53 (40- and 64-bit biases).
Tensor constant_codes(const at::Tensor& value, const QuantConfig& c) {
  at::Tensor codes;
  if (c.role == QuantRole::Bias) {
    auto [s, z] = scale_tensors(c, value.dim(), at::TensorOptions().dtype(at::kDouble));
    codes =
        at::clamp(round_tensor(value.to(at::kDouble) / s, c.rounding) + z, double(c.quant_min), double(c.quant_max));
  } else {
    codes = quantize_codes(value.to(at::kFloat).contiguous(), c);
  }
  return exec::to_ir_tensor(codes.to(at::kLong).contiguous());
}

// Requantization from grid `in` (times grid `w`, per channel, for accumulators) to grid `out`.
Requantization requant(const QuantConfig& in, const QuantConfig* w, const QuantConfig& out, RoundingMode rounding) {
  Requantization r;
  r.rounding = rounding;
  size_t n = w ? w->scales.size() : 1;
  bool pow2 = in.scale_kind == ScaleKind::PowerOfTwo && out.scale_kind == ScaleKind::PowerOfTwo &&
              (!w || w->scale_kind == ScaleKind::PowerOfTwo);
  for (size_t i = 0; i < n; ++i) {
    double s_acc = in.scales[0] * (w ? w->scales[i] : 1.0);
    if (pow2) {
      r.shift.push_back(static_cast<int>(std::lround(std::log2(out.scales[0]) - std::log2(s_acc))));
    } else {
      int32_t m;
      int shift;
      quantize_multiplier(s_acc / out.scales[0], m, shift);
      r.multiplier.push_back(m);
      r.shift.push_back(shift);
    }
  }
  return r;
}

// The table of a single-input activation: every input code through the float kernel, then the
// output quantization the simulator applies (int8: all 256 codes; int16: sampled every `step`).
LookupTable make_table(const Op& op, int64_t opset, const QuantConfig& in, const QuantConfig& out, int step) {
  LookupTable t;
  t.in_min = in.quant_min;
  t.step = in.bits <= 8 ? 1 : step;
  std::vector<float> xs;
  for (int64_t q = in.quant_min; q <= in.quant_max + (t.step > 1 ? 1 : 0); q += t.step)
    xs.push_back(static_cast<float>((q - in.zero_points[0]) * in.scales[0]));
  at::Tensor x = at::tensor(xs, at::kFloat);
  exec::Kernel kernel = exec::find_kernel_factory(op.type)(op, opset);
  std::vector<at::Tensor> args(op.inputs.size());
  args[0] = x;
  at::Tensor y = kernel(args)[0];
  at::Tensor codes = quantize_codes(y.to(at::kFloat), out).to(at::kInt).contiguous();
  t.table.assign(codes.data_ptr<int32_t>(), codes.data_ptr<int32_t>() + codes.numel());
  return t;
}
}  // namespace

LoweredModel lower(const Graph& g, const QuantPlan& plan, const Target& target, exec::Executor& ex) {
  at::NoGradGuard no_grad;
  LoweredModel m;
  m.target = plan.target_name;
  m.rounding = target.rounding;
  m.requant_rounding = target.requant_rounding;
  for (const auto& [name, c] : plan.values) {
    if (c.state == QuantState::Quantized && !c.has_scale())
      fail(ErrorCode::Internal, "lowering: '" + name + "' has no scale (calibrate first)");
    if (!has_integer_grid(&c)) continue;
    LoweredTensor t = grid_of(name, c);
    const Value* v = g.find_value(name);
    if (v && v->is_constant()) {
      t.codes = constant_codes(ex.constant(v), c);
    }
    m.tensors[name] = std::move(t);
  }
  std::map<std::string, std::vector<const InputRequant*>> requants;
  for (const auto& r : plan.requants) requants[r.op].push_back(&r);
  for (const auto& op_ptr : g.ops()) {
    const Op& op = *op_ptr;
    LoweredOp lo;
    lo.op = op.name;
    lo.type = op.type;
    const Value* out = op.outputs.empty() ? nullptr : op.outputs[0];
    const QuantConfig* oc = out ? plan.find(out->name) : nullptr;
    if (oc && oc->state == QuantState::Fused) {
      lo.fused_activation = oc->fused_into;
      const Op* act = g.find_op(oc->fused_into);
      out = act && !act->outputs.empty() ? act->outputs[0] : nullptr;
      oc = out ? plan.find(out->name) : nullptr;
    }
    const QuantConfig* oeff = out ? plan.effective(out->name) : nullptr;
    lo.output = out ? out->name : "";
    const QuantConfig* ic = plan.input_config(op, 0);
    if (is_compute_op(op.type) && has_integer_grid(oeff) && has_integer_grid(ic) && op.input(1)) {
      const QuantConfig* wc = plan.effective(op.input(1)->name);
      if (has_integer_grid(wc)) {
        lo.accumulator_bits = target.accumulator_bits_for(std::max(ic->bits, oeff->bits));
        lo.output_requant = requant(*ic, wc, *oeff, oeff->rounding);
      }
    }
    for (const InputRequant* r : requants[op.name]) {
      const Value* v = op.input(static_cast<size_t>(r->index));
      const QuantConfig* from = v ? plan.effective(v->name) : nullptr;
      const QuantConfig* to = plan.requant_config(*r);
      if (has_integer_grid(from) && has_integer_grid(to))
        lo.input_requants[r->index] = requant(*from, nullptr, *to, to->rounding);
    }
    bool lut = target.lut_activations.count(op.type) && is_unary_activation(op.type) && has_integer_grid(ic) && oc &&
               oc->state == QuantState::Quantized && oc->has_scale() && ic->granularity == Granularity::PerTensor &&
               ic->bits <= 16 && op.inputs.size() >= 1;
    if (lut) lo.lut = make_table(op, g.opset, *ic, *oc, target.int16_lut_step);
    if (lo.output_requant || !lo.input_requants.empty() || lo.lut) m.ops.push_back(std::move(lo));
  }
  return m;
}

}  // namespace edgequant::quant
