// QuantSimulator implementation.
#include "quant/simulator.h"

#include <ATen/ATen.h>

#include "edgequant/error.h"
#include "exec/kernel.h"
#include "ir/op_traits.h"
#include "quant/fake_quant.h"
#include "quant/parameter_store.h"
#include "runtime/kernels/kernels.h"

namespace edgequant::quant {

namespace {
const QuantConfig* usable(const QuantConfig* c) {
  if (!c || c->state == QuantState::Float || c->state == QuantState::Fused) return nullptr;
  if (c->scales.empty()) fail(ErrorCode::Internal, "quantization config without a scale (calibrate first)");
  return c;
}

// Dequantized constant from the lowered form's integer codes: (q - z) * s in float32, the
// arithmetic of fake quantization's last step.
at::Tensor dequantize_codes(const LoweredTensor& t, const QuantConfig& c, const at::Tensor& like) {
  at::Tensor q = exec::view_tensor(t.codes).to(at::kFloat).to(like.device());
  auto [s, z] = scale_tensors(c, q.dim(), q.options());
  return ((q - z) * s).to(like.scalar_type()).contiguous(like.suggest_memory_format());
}
}  // namespace

namespace {
// ESP-DL's Div in real values (runtime::DivForm), before the output's quantization: a / b, or
// a * (1 / b) where the chip multiplies by a rounded reciprocal; 0 where a is 0; +-inf (the
// saturated code) where b is 0. The form is chosen on the shapes of one sample, as the chip runs.
at::Tensor esp_div(const at::Tensor& a, const at::Tensor& b, int bits) {
  int64_t rank = std::max(a.dim(), b.dim());
  auto sample_shape = [&](const at::Tensor& t) {
    Shape s(t.sizes().begin(), t.sizes().end());
    if (t.dim() == rank && rank > 0) s[0] = 1;
    return s;
  };
  Shape sa = sample_shape(a), sb = sample_shape(b), out(size_t(rank), 1);
  for (int64_t d = 1; d <= rank; ++d) {
    int64_t x = d <= int64_t(sa.size()) ? sa[sa.size() - size_t(d)] : 1,
            y = d <= int64_t(sb.size()) ? sb[sb.size() - size_t(d)] : 1;
    out[size_t(rank - d)] = std::max(x, y);
  }
  runtime::DivForm form = runtime::espdl_div_form(sa, sb, out, bits > 8 ? DType::Int16 : DType::Int8);
  at::Tensor v = form == runtime::DivForm::ReciprocalProduct ? a * at::reciprocal(b) : a / b;
  at::Tensor inf = at::full({}, INFINITY, v.options());
  if (form == runtime::DivForm::QuotientZeroByZeroIsMin)  // b = 0: the table's +-inf, 0 / 0 included
    return at::where(b == 0, at::where(a > 0, inf, -inf), v);
  return at::where(a == 0, at::zeros({}, v.options()), v);
}
}  // namespace

void set_bias_scales(QuantPlan& plan, const Graph& g) {
  for (const auto& op : g.ops()) {
    if (!is_compute_op(op->type) || !op->input(2)) continue;
    QuantConfig* bc = plan.find(op->input(2)->name);
    const QuantConfig* wc = op->input(1) ? plan.effective(op->input(1)->name) : nullptr;
    const QuantConfig* ic = plan.input_config(*op, 0);
    if (!bc || bc->role != QuantRole::Bias || !wc || !ic || wc->scales.empty() || ic->scales.empty() ||
        ic->state == QuantState::Float)
      continue;
    bc->scales.clear();
    for (double sw : wc->scales) bc->scales.push_back(sw * ic->scales[0]);
    bc->zero_points.assign(bc->scales.size(), 0);
    bc->granularity = bc->scales.size() > 1 ? Granularity::PerChannel : Granularity::PerTensor;
  }
}

void refresh_derived_scales(QuantPlan& plan, const Graph& g) {
  for (auto& [name, c] : plan.values) {
    if (c.state != QuantState::Passive || c.master.empty()) continue;
    if (const QuantConfig* m = plan.effective(name)) {
      c.scales = m->scales;
      c.zero_points = m->zero_points;
      c.range_min = m->range_min;
      c.range_max = m->range_max;
    }
  }
  set_bias_scales(plan, g);
}

QuantSimulator::QuantSimulator(const Graph& g, const QuantPlan& plan, exec::Executor& ex, const LoweredModel* lowered)
    : graph_(g), plan_(plan), executor_(ex), lowered_(lowered) {
  at::NoGradGuard no_grad;
  std::set<const Value*> graph_inputs(g.inputs.begin(), g.inputs.end());
  std::map<std::string, std::vector<const InputRequant*>> requants;
  for (const auto& r : plan.requants) requants[r.op].push_back(&r);
  for (const auto& op_ptr : g.ops()) {
    const Op* op = op_ptr.get();
    OpPlan p;
    for (size_t i = 0; i < op->inputs.size(); ++i) {
      const Value* v = op->inputs[i];
      if (!v) continue;
      const QuantConfig* c = usable(plan.find(v->name));
      if (v->is_constant()) {
        if (!c) continue;
        auto it = constants_.find(v);
        if (it == constants_.end()) {
          at::Tensor w = ex.constant(v);
          const LoweredTensor* lt = lowered ? lowered->tensor(v->name) : nullptr;
          if (lowered && !lt) fail(ErrorCode::Internal, "the lowered form has no codes for '" + v->name + "'");
          // Biases in double: their codes reach 32-64 bits, beyond float32's 24-bit mantissa.
          at::Tensor q =
              lt ? dequantize_codes(*lt, *c, w)
                 : fake_quantize(w.to(c->role == QuantRole::Bias ? at::kDouble : at::kFloat), *c).to(w.scalar_type());
          it = constants_.emplace(v, q).first;
        }
        p.constants.push_back({i, it->second});
        p.trainable_constants.push_back({i, v, c});
      } else if (graph_inputs.count(v) && c) {
        p.activations.push_back({i, v, c});
      }
    }
    for (const InputRequant* r : requants[op->name]) {
      const QuantConfig* c = usable(plan.requant_config(*r));
      if (!c) continue;
      int index = r->index;
      // A trained scale applies to an aligned requant (the output's); a boundary grid has none.
      const Value* scale_owner = r->grid ? nullptr : g.find_value(r->target);
      // A requant replaces the graph-input quantization of the same input, if any.
      auto& acts = p.activations;
      acts.erase(std::remove_if(acts.begin(), acts.end(), [&](const Quantize& a) { return a.index == size_t(index); }),
                 acts.end());
      acts.push_back({static_cast<size_t>(index), scale_owner, c});
    }
    for (size_t i = 0; i < op->outputs.size(); ++i) {
      const Value* v = op->outputs[i];
      if (!v) continue;
      const QuantConfig* c = plan.find(v->name);
      // Passive outputs are already on their master's grid; only owners are re-quantized.
      if (c && c->state == QuantState::Quantized) p.outputs.push_back({i, v, usable(c)});
    }
    // Lookup-table activations (int8): the table replaces the float function and the output
    // quantization; the input is on its grid already.
    const LoweredOp* lo = lowered ? lowered->op(op->name) : nullptr;
    if (lo && lo->lut && lo->lut->step == 1 && !p.outputs.empty()) {
      const QuantConfig* ic = plan.input_config(*op, 0);
      const QuantConfig& oc = *p.outputs[0].config;
      std::vector<float> deq;
      for (int32_t q : lo->lut->table)
        deq.push_back((static_cast<float>(q) - static_cast<float>(oc.zero_points[0])) *
                      static_cast<float>(oc.scales[0]));
      tables_[op] = Table{at::tensor(deq, at::kFloat), lo->lut->in_min, ic->scales[0], ic->zero_points[0]};
      p.table = &tables_[op];
    }
    // int16 layers: the chip's int64 accumulator is exact; float32 sums of 30-bit products are not.
    const QuantConfig* in0 = is_compute_op(op->type) ? usable(plan.input_config(*op, 0)) : nullptr;
    p.wide = in0 && in0->bits > 8;
    if (op->is(OpType::Div) && !p.outputs.empty() && p.outputs[0].config->scale_kind == ScaleKind::PowerOfTwo &&
        p.outputs[0].config->bits <= 16)
      p.div_bits = p.outputs[0].config->bits;
    if (!p.constants.empty() || !p.activations.empty() || !p.outputs.empty() || p.wide) ops_[op] = std::move(p);
  }
}

at::Tensor QuantSimulator::quantize(const at::Tensor& x, const Quantize& q) const {
  if (params_ && q.value && params_->has_scale(q.value->name)) {
    const QuantConfig& c = *q.config;
    at::Tensor s = params_->scale(q.value->name, c, x.dim()).to(x.device());
    auto zs = scale_tensors(c, x.dim(), x.options()).second;
    return fake_quantize(x, s, zs, c.quant_min, c.quant_max, c.rounding);
  }
  return fake_quantize(x, *q.config);
}

void QuantSimulator::before_op(const Op& op, std::vector<at::Tensor>& in, const std::set<const Op*>* only) const {
  if (only && !only->count(&op)) return;
  auto it = ops_.find(&op);
  if (it == ops_.end()) return;
  const OpPlan& p = it->second;
  for (const auto& [i, t] : p.constants) in[i] = t;
  if (params_ && !params_->empty())
    for (const Quantize& q : p.trainable_constants) {
      if (params_->has_rounding(q.value)) {
        in[q.index] = params_->rounded_weight(q.value, *q.config).to(in[q.index].device());
        continue;
      }
      bool w = params_->has_weight(q.value), s = params_->has_scale(q.value->name);
      if (w || s) in[q.index] = quantize(w ? params_->weight(q.value) : executor_.constant(q.value), q);
    }
  for (const Quantize& q : p.activations) in[q.index] = quantize(in[q.index], q);
  if (p.wide)
    for (at::Tensor& t : in)
      if (t.defined() && t.is_floating_point()) t = t.to(at::kDouble);
  if (p.div_bits && in.size() >= 2) div_inputs_[&op] = {in[0], in[1]};
  if (p.table && !(params_ && !params_->empty())) {
    // Input codes, exact: the input is on its grid (a quantized producer or a graph input).
    const Table& t = *p.table;
    at::Tensor codes = at::round(in[0].to(at::kDouble) / t.in_scale) + double(t.in_zero);
    table_inputs_[&op] = (codes - double(t.in_min)).to(at::kLong).clamp(0, t.values.numel() - 1);
  }
}

void QuantSimulator::after_op(const Op& op, std::vector<at::Tensor>& out, const std::set<const Op*>* only) const {
  if (only && !only->count(&op)) return;
  auto it = ops_.find(&op);
  if (it == ops_.end()) return;
  auto tin = it->second.table ? table_inputs_.find(&op) : table_inputs_.end();
  if (tin != table_inputs_.end()) {
    at::Tensor idx = tin->second;
    table_inputs_.erase(tin);
    out[0] = at::index_select(it->second.table->values.to(idx.device()), 0, idx.reshape({-1}))
                 .reshape(idx.sizes())
                 .contiguous(out[0].suggest_memory_format());
    return;
  }
  auto div = it->second.div_bits ? div_inputs_.find(&op) : div_inputs_.end();
  if (div != div_inputs_.end()) {
    out[0] = esp_div(div->second.first, div->second.second, it->second.div_bits).to(out[0].scalar_type());
    div_inputs_.erase(div);
  }
  for (const Quantize& q : it->second.outputs)
    if (q.index < out.size()) {
      bool wide = out[q.index].scalar_type() == at::kDouble;
      out[q.index] = quantize(out[q.index], q);
      if (wide) out[q.index] = out[q.index].to(at::kFloat);  // codes * 2^e: exact in float32 at 16 bits
    }
}

bool QuantSimulator::needs_value(const Value& value) const {
  auto rewrites = [&](const Op* op, bool inputs) {
    auto it = op ? ops_.find(op) : ops_.end();
    if (it == ops_.end()) return false;
    const OpPlan& p = it->second;
    return inputs
               ? !p.constants.empty() || !p.trainable_constants.empty() || !p.activations.empty() || p.wide || p.table
               : !p.outputs.empty() || p.table;
  };
  if (rewrites(value.producer, false)) return true;
  for (const Op* reader : value.consumers)
    if (rewrites(reader, true)) return true;
  return false;
}

exec::ExecHooks QuantSimulator::hooks(const std::set<const Op*>* only) const {
  exec::ExecHooks h;
  h.before_op = [this, only](const Op& op, std::vector<at::Tensor>& in) { before_op(op, in, only); };
  h.after_op = [this, only](const Op& op, std::vector<at::Tensor>& out) { after_op(op, out, only); };
  // Fake quantization is per value: inference runs may fuse Conv+Clip where the Conv's output
  // has no grid of its own, and run large batches in chunks.
  h.watches = [this](const Value& v) { return needs_value(v); };
  h.fusable = true;
  return h;
}

std::vector<at::Tensor> QuantSimulator::run(const std::vector<at::Tensor>& inputs) {
  exec::ExecHooks h = hooks();
  return executor_.run(inputs, &h);
}

at::Tensor QuantSimulator::quantized_constant(const Value* v) const {
  auto it = constants_.find(v);
  if (it == constants_.end()) fail(ErrorCode::Internal, "'" + v->name + "' is not a quantized constant");
  return it->second;
}

}  // namespace edgequant::quant
