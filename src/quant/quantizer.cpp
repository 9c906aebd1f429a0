// Quant config assignment (see quantizer.h). Target facts come from the Target; nothing here
// names a chip.
#include "quant/quantizer.h"

#include <algorithm>
#include <cmath>
#include <set>

#include "edgequant/error.h"
#include "ir/op_traits.h"

namespace edgequant::quant {

namespace {

bool is_float(const Value* v) { return v && (v->dtype == DType::Float32 || v->dtype == DType::Undefined); }

std::string list_names(const std::vector<std::string>& names) {
  std::string s;
  size_t shown = std::min<size_t>(names.size(), 40);
  for (size_t i = 0; i < shown; ++i) s += (i ? ", " : "") + names[i];
  if (names.size() > shown) s += ", ... (" + std::to_string(names.size()) + " in all)";
  return s;
}

QuantConfig make_config(const TensorSpec& spec, int bits, ScaleKind kind, RoundingMode rounding, QuantRole role) {
  QuantConfig c;
  c.symmetric = spec.symmetric;
  c.granularity = spec.granularity;
  c.scale_kind = kind;
  c.rounding = rounding;
  c.role = role;
  c.set_range(bits, spec.is_signed, spec.narrow_range);
  return c;
}

int parse_dispatch_bits(const std::string& op, const std::string& v) {
  if (v == "float" || v == "fp32") return 0;
  if (v == "int16" || v == "16") return 16;
  if (v == "int8" || v == "8") return 8;
  if (v == "int4" || v == "4") return 4;
  if (v == "int2" || v == "2") return 2;
  fail(ErrorCode::InvalidSetting,
       "dispatching_table: '" + op + "' -> '" + v + "' (valid: int8, int16, int4, int2, float)");
}

void check_channel_rules(const Graph& g, const Target& t, QuantPlan& plan) {
  const ChannelRules& r = t.channel_rules;
  if (!r.enabled) return;
  bool first_conv = true;
  for (const auto& op : g.ops()) {
    bool interesting = is_compute_op(op->type) || op->type.find("Pool") != std::string::npos;
    if (!interesting) continue;
    std::string where = op->describe();
    if (!r.accelerated_ops.count(op->type)) {
      plan.notes.push_back("CPU fallback: " + where + " is not an accelerated layer type");
      continue;
    }
    const Value* w = op->input(1);
    if (op->is(OpType::Conv) && w && w->shape && w->shape->size() >= 2) {
      int64_t group = op->attr_int("group", 1);
      int64_t out_c = (*w->shape)[0], in_c = (*w->shape)[1] * group;
      if (first_conv && r.first_conv_in_channels > 0) {
        if (in_c != r.first_conv_in_channels)
          plan.notes.push_back("CPU fallback: " + where + " is the first conv and has " + std::to_string(in_c) +
                               " input channels; the NPU needs exactly " + std::to_string(r.first_conv_in_channels));
      } else if (r.channel_multiple > 0 && (in_c % r.channel_multiple || out_c % r.channel_multiple)) {
        plan.notes.push_back("CPU fallback: " + where + " has " + std::to_string(in_c) + " input / " +
                             std::to_string(out_c) + " output channels; the NPU needs multiples of " +
                             std::to_string(r.channel_multiple));
      }
      first_conv = false;
    } else if (op->is(OpType::Gemm) && w && w->shape && w->shape->size() == 2 && r.channel_multiple > 0) {
      int64_t in_f = op->attr_int("transB", 0) ? (*w->shape)[1] : (*w->shape)[0];
      if (in_f % r.channel_multiple)
        plan.notes.push_back("CPU fallback: " + where + " has " + std::to_string(in_f) +
                             " input features; the NPU needs a multiple of " + std::to_string(r.channel_multiple));
    }
  }
}

}  // namespace

namespace {
// The widths a setting asks for: activation and weight bits, and per op of the dispatching
// table (0 = float), each checked against the target's allowed widths.
struct Widths {
  int act_bits = 8, w_bits = 8;
  std::map<const Op*, int> op_bits;
  int of(const Op* op, int fallback) const {
    auto it = op_bits.find(op);
    return it == op_bits.end() ? fallback : it->second;
  }
};

Widths resolve_widths(const Graph& g, const Target& t, const Setting& s) {
  Widths w;
  w.act_bits = s.activation_bits ? s.activation_bits : t.activation.bits;
  w.w_bits = s.weight_bits ? s.weight_bits : t.conv_weight.bits;
  auto check_bits = [&](int b, const std::string& what) {
    if (std::find(t.allowed_bits.begin(), t.allowed_bits.end(), b) == t.allowed_bits.end()) {
      std::string allowed;
      for (int a : t.allowed_bits) allowed += (allowed.empty() ? "" : ", ") + std::to_string(a);
      fail(ErrorCode::InvalidSetting, what + ": " + std::to_string(b) + " bits is not supported by target '" + t.name +
                                          "' (allowed: " + allowed + ")");
    }
  };
  // Weights may go below the activation width (TI 4/2-bit), activations stay at 8/16.
  check_bits(w.w_bits, "weight_bits");
  if (w.act_bits != 8 && w.act_bits != 16) check_bits(w.act_bits, "activation_bits");
  std::vector<std::string> op_names;
  for (const auto& op : g.ops()) op_names.push_back(op->name);
  for (const auto& [name, v] : s.dispatching_table) {
    const Op* op = g.find_op(name);
    if (!op)
      fail(ErrorCode::InvalidSetting,
           "dispatching_table: no op named '" + name + "' (valid: " + list_names(op_names) + ")");
    int b = parse_dispatch_bits(name, v);
    if (b) check_bits(b, "dispatching_table '" + name + "'");
    w.op_bits[op] = b;
  }
  return w;
}

// Op outputs come out of a requantization on the chip; graph inputs are rounded from float.
QuantConfig activation_config(const Target& t, int bits) {
  return make_config(t.activation, bits, t.scale_kind, t.requant_rounding, QuantRole::Activation);
}

// The configs of an op's outputs: float, passive (data movement: its input's grid), or their own
// grid; a fusable activation after a computing op marks the computing op's output Fused.
void assign_outputs(const Graph& g, const Target& t, const Op* op, int bits, int dispatched, bool keep_float,
                    QuantPlan& plan) {
  for (const Value* out : op->outputs) {
    if (!out || !is_float(out) || out->is_constant()) continue;
    if (out->dtype == DType::Undefined && !(is_compute_op(op->type) || op->is(OpType::Relu))) continue;
    QuantConfig c = activation_config(t, bits);
    const Value* in0 = op->input(0);
    const QuantConfig* in_cfg = in0 ? plan.find(in0->name) : nullptr;
    if (keep_float) {
      c.state = QuantState::Float;
    } else if (is_passive_op(*op) &&
               !(dispatched >= 8 && in_cfg && in_cfg->state != QuantState::Float && in_cfg->bits != dispatched)) {
      // (A data-movement op dispatched to another width gets a grid of its own: its input is
      // requantized at the boundary below, as ESP-DL does for an int8 Resize in an int16 model.)
      if (!in_cfg || in_cfg->state == QuantState::Float) {
        c.state = QuantState::Float;
      } else {
        c = *in_cfg;
        c.state = QuantState::Passive;
        c.master = in0->name;
        c.custom_scale = false;
      }
    } else if (t.fused_activations.count(op->type) && in0 && in0->producer &&
               fusable_activation(g, *in0->producer) == op && in_cfg && in_cfg->state == QuantState::Quantized) {
      // Conv+activation run as one kernel on the chip: the conv output is never materialised.
      plan.values[in0->name].state = QuantState::Fused;
      plan.values[in0->name].fused_into = op->name;
    }
    plan.values[out->name] = c;
  }
}

// A computing op's weights (per-channel axis by op type) and bias (passive: s_in * s_w).
void assign_weights(const Target& t, const Op* op, int wb, QuantPlan& plan) {
  if (is_compute_op(op->type) && op->input(1) && op->input(1)->is_constant() &&
      op->input(1)->data->dtype() == DType::Float32) {
    const Value* w = op->input(1);
    const TensorSpec& spec = (op->is(OpType::Conv) || op->is(OpType::ConvTranspose)) ? t.conv_weight
                             : op->is(OpType::MatMul)                                ? t.matmul_weight
                                                                                     : t.gemm_weight;
    ScaleKind kind = wb < 8 ? t.sub8bit_weight_scale_kind : t.scale_kind;
    QuantConfig c = make_config(spec, wb, kind, t.rounding, QuantRole::Weight);
    int64_t rank = static_cast<int64_t>(w->data->shape().size());
    if (op->is(OpType::Conv))
      c.axis = 0;
    else if (op->is(OpType::ConvTranspose)) {
      c.axis = 1;
      if (op->attr_int("group", 1) != 1) c.granularity = Granularity::PerTensor;
    } else if (op->is(OpType::Gemm))
      c.axis = op->attr_int("transB", 0) ? 0 : 1;
    else
      c.axis = rank - 1;
    if (rank < 2) c.granularity = Granularity::PerTensor;
    plan.values[w->name] = c;
    const Value* b = op->input(2);
    if (b && b->is_constant() && b->data->dtype() == DType::Float32) {
      QuantConfig bc;
      bc.state = QuantState::Passive;  // s_b = s_in * s_w, computed after calibration
      bc.role = QuantRole::Bias;
      bc.symmetric = true;
      bc.scale_kind = ScaleKind::Float;  // a product of scales; power of two when both are
      bc.rounding = t.rounding;
      bc.granularity = c.granularity;
      bc.axis = 0;
      bc.set_range(t.bias_bits_for(wb), true, false);
      plan.values[b->name] = bc;
    }
  }
}

// Other float constants read as data (Add/Mul operands, PRelu slopes).
void assign_data_constants(const Target& t, const Op* op, int bits, QuantPlan& plan) {
  for (size_t i : data_inputs(*op)) {
    const Value* v = op->input(i);
    if (!v || !v->is_constant() || v->data->dtype() != DType::Float32 || plan.find(v->name)) continue;
    if (is_compute_op(op->type) && i != 0) continue;
    QuantConfig c = activation_config(t, bits);
    c.role = QuantRole::Constant;
    c.rounding = t.rounding;
    c.symmetric = true;
    c.set_range(bits, true, false);
    plan.values[v->name] = c;
  }
}

// Alignment of elementwise inputs to one scale.
void align_inputs(const Setting& s, const Op* op, QuantPlan& plan) {
  if (is_aligned_op(op->type) && s.alignment != Alignment::None && op->outputs.size() == 1 && op->outputs[0]) {
    QuantConfig* oc = plan.find(op->outputs[0]->name);
    if (oc && oc->state == QuantState::Quantized) {
      // Align to Large takes the union of the inputs' grids; a float input has none, so such an
      // op's output is calibrated on its own values (align to output) instead.
      bool float_input = false;
      for (size_t i : data_inputs(*op)) {
        const Value* v = op->input(i);
        const QuantConfig* vc = v && !v->is_constant() ? plan.find(v->name) : nullptr;
        float_input |= vc && vc->state == QuantState::Float;
      }
      if (s.alignment == Alignment::AlignToLarge && !float_input) oc->align_to_large = true;
      for (size_t i : data_inputs(*op)) {
        const Value* v = op->input(i);
        const QuantConfig* vc = v ? plan.find(v->name) : nullptr;
        // (A float input, out of a float op, is quantized straight onto the output's grid.)
        if (vc && vc->state != QuantState::Fused)
          plan.requants.push_back({op->name, static_cast<int>(i), op->outputs[0]->name, std::nullopt});
      }
    }
  }
}

// The target's fixed output grids (TFLite's LOGISTIC/TANH/SOFTMAX) on 8-bit outputs of those ops.
void apply_fixed_grids(const Graph& g, const Target& t, QuantPlan& plan) {
  for (const auto& op : g.ops()) {
    auto it = t.fixed_output_grids.find(op->type);
    if (it == t.fixed_output_grids.end() || op->outputs.empty() || !op->outputs[0]) continue;
    QuantConfig* c = plan.find(op->outputs[0]->name);
    if (!c || c->state != QuantState::Quantized || c->bits != 8 || !c->is_signed) continue;
    c->scales = {it->second.scale};
    c->zero_points = {it->second.zero_point};
    c->custom_scale = true;
    c->source = RangeSource::Custom;
  }
}

// Custom scales ("focused logits"): by op name (its first output) or value name.
void apply_custom_scales(const Graph& g, const Target& t, const Setting& s, QuantPlan& plan) {
  for (const auto& [name, scale] : s.custom_scales) {
    std::string value = name;
    if (const Op* op = g.find_op(name)) value = op->outputs.empty() || !op->outputs[0] ? "" : op->outputs[0]->name;
    QuantConfig* c = plan.find(value);
    if (!c || c->state != QuantState::Quantized) {
      std::vector<std::string> valid;
      for (const auto& [n, cfg] : plan.values)
        if (cfg.state == QuantState::Quantized && cfg.role != QuantRole::Weight) valid.push_back(n);
      fail(ErrorCode::InvalidSetting,
           "custom_scales: '" + name + "' is not a quantized op output or value (valid: " + list_names(valid) + ")");
    }
    if (c->scale_kind == ScaleKind::PowerOfTwo && std::abs(std::log2(scale) - std::round(std::log2(scale))) > 1e-9)
      fail(ErrorCode::InvalidSetting, "custom_scales: '" + name + "' = " + std::to_string(scale) +
                                          " is not a power of two, as target '" + t.name + "' requires");
    c->scales = {scale};
    c->zero_points = {0};
    c->custom_scale = true;
    c->source = RangeSource::Custom;
  }
}

// Mixed-precision boundaries: an op that computes at other bits than its input tensor reads it
// through a requantization to a grid of its own width (ESP-DL inserts RequantizeLinear there).
void add_width_boundaries(const Graph& g, const Target& t, QuantPlan& plan) {
  std::set<std::pair<std::string, int>> requanted;
  for (const auto& r : plan.requants) requanted.insert({r.op, r.index});
  for (const auto& op_ptr : g.ops()) {
    const Op* op = op_ptr.get();
    if (op->outputs.empty() || !op->outputs[0]) continue;
    const QuantConfig* oc = plan.find(op->outputs[0]->name);
    if (is_passive_op(*op) && !(oc && oc->state == QuantState::Quantized)) continue;
    if (oc && oc->state == QuantState::Fused) oc = plan.find(g.find_op(oc->fused_into)->outputs[0]->name);
    int weight_bits = 0;
    if (is_compute_op(op->type) && op->input(1) && plan.find(op->input(1)->name))
      weight_bits = plan.find(op->input(1)->name)->bits;
    int op_bits = weight_bits ? std::max(weight_bits, 8) : (oc && oc->state != QuantState::Float ? oc->bits : 0);
    if (!op_bits) continue;
    for (size_t i : data_inputs(*op)) {
      const Value* v = op->input(i);
      if (!v || v->is_constant() || requanted.count({op->name, static_cast<int>(i)})) continue;
      const QuantConfig* ic = plan.effective(v->name);
      if (ic && ic->state == QuantState::Float && v->dtype == DType::Float32) {
        // Float-to-integer boundary: a quantized op reading the output of a float op (dispatched
        // to float, or float-only on the target) quantizes it with a grid of its own, calibrated
        // on that float tensor, as it would a graph input (ESP-DL inserts QuantizeLinear there).
        QuantConfig grid = make_config(t.activation, op_bits, t.scale_kind, t.rounding, QuantRole::Input);
        plan.requants.push_back({op->name, static_cast<int>(i), v->name, grid});
        continue;
      }
      if (!ic || (ic->state != QuantState::Quantized && ic->state != QuantState::Passive) || ic->bits == op_bits)
        continue;
      QuantConfig grid = *ic;
      grid.state = QuantState::Quantized;
      grid.master.clear();
      grid.set_range(op_bits, ic->is_signed, false);
      grid.scales.clear();
      grid.zero_points.clear();
      plan.requants.push_back({op->name, static_cast<int>(i), v->name, grid});
    }
  }
}
}  // namespace

QuantPlan assign_quant_configs(const Graph& g, const Target& t, const Setting& s) {
  QuantPlan plan;
  plan.target_name = t.name;
  const Widths widths = resolve_widths(g, t, s);
  for (const Value* in : g.inputs)
    if (is_float(in) && in->dtype == DType::Float32) {
      QuantConfig c = make_config(t.activation, widths.act_bits, t.scale_kind, t.rounding, QuantRole::Input);
      plan.values[in->name] = c;
    }
  for (const auto& op_ptr : g.ops()) {
    const Op* op = op_ptr.get();
    // A dispatched width applies to the op's weights; activations go no lower than 8 bits.
    int dispatched = widths.of(op, -1);
    int bits = dispatched < 0 ? widths.act_bits : (dispatched >= 8 ? dispatched : widths.act_bits);
    int wb = dispatched > 0 ? dispatched : widths.w_bits;
    bool keep_float = dispatched == 0 || t.float_ops.count(op->type) || op_traits(op->type).has(kFloatOnly);
    if (op->is(OpType::If))
      plan.notes.push_back(op->describe() +
                           ": its condition depends on the input data, so both branches are kept and run "
                           "in float (the If's outputs are not quantized)");
    assign_outputs(g, t, op, bits, dispatched, keep_float, plan);
    if (keep_float) continue;
    assign_weights(t, op, wb, plan);
    assign_data_constants(t, op, bits, plan);
    align_inputs(s, op, plan);
  }
  apply_fixed_grids(g, t, plan);
  apply_custom_scales(g, t, s, plan);
  add_width_boundaries(g, t, plan);
  check_channel_rules(g, t, plan);
  plan.verify(g);
  return plan;
}

}  // namespace edgequant::quant
