// Quantized simulation: executor hooks that fake-quantize every configured tensor with the
// target's rounding and clamping (weights and biases once, activations after each op, aligned
// inputs per use), so the float executor computes the float view of what the chip computes.
// Given the lowered integer form, constants come from its integer codes and lookup-table
// activations from its tables (the integer runtime's inputs), and the result equals the plan's
// simulation bit for bit. Given a ParameterStore, trained scales and weights are read on every
// forward, differentiably (straight-through rounding).
#pragma once
#include <ATen/core/Tensor.h>

#include <set>
#include <unordered_map>

#include "exec/executor.h"
#include "ir/lowered.h"
#include "ir/quant_config.h"

namespace edgequant::quant {

class ParameterStore;

class QuantSimulator {
 public:
  // The plan must be calibrated (every Quantized config has scales). `lowered` (optional) must
  // come from lower() on the same plan and outlive the simulator.
  QuantSimulator(const Graph& graph, const QuantPlan& plan, exec::Executor& executor,
                 const LoweredModel* lowered = nullptr);

  // Trainable parameters read on every forward (nullptr: none). Not owned.
  void set_parameters(const ParameterStore* store) { params_ = store; }

  // Hooks for a run; with `only`, just those ops' tensors are quantized (layerwise analysis).
  exec::ExecHooks hooks(const std::set<const Op*>* only = nullptr) const;
  std::vector<at::Tensor> run(const std::vector<at::Tensor>& inputs);
  // The quantized-then-dequantized constant (weight/bias) the simulation uses.
  at::Tensor quantized_constant(const Value* v) const;
  void before_op(const Op& op, std::vector<at::Tensor>& inputs, const std::set<const Op*>* only) const;
  void after_op(const Op& op, std::vector<at::Tensor>& outputs, const std::set<const Op*>* only) const;
  bool from_lowered_form() const { return lowered_ != nullptr; }
  // True when `value` must exist on its own in a run: its producer quantizes it, or a reader
  // rewrites its inputs (a fused Conv+Clip pair runs fused only when neither holds).
  bool needs_value(const Value& value) const;

 private:
  struct Quantize {
    size_t index;
    const Value* value;  // whose config (and trained scale) applies
    const QuantConfig* config;
  };
  struct Table {
    at::Tensor values;  // dequantized outputs per input code, float
    int64_t in_min;
    double in_scale;
    int64_t in_zero;
  };
  struct OpPlan {
    std::vector<std::pair<size_t, at::Tensor>> constants;  // fake-quantized constant inputs
    std::vector<Quantize> trainable_constants;             // constants with a config (store lookups)
    std::vector<Quantize> activations;                     // graph inputs, aligned inputs
    std::vector<Quantize> outputs;
    const Table* table = nullptr;  // int8 lookup-table activation
    bool wide = false;             // int16 compute op: accumulates in double (int16 products exceed float32's 24 bits)
    int div_bits = 0;              // a Div on power-of-two grids: ESP-DL's formula (runtime::DivForm) at these bits
  };
  at::Tensor quantize(const at::Tensor& x, const Quantize& q) const;
  const Graph& graph_;
  const QuantPlan& plan_;
  exec::Executor& executor_;
  const LoweredModel* lowered_;
  const ParameterStore* params_ = nullptr;
  std::unordered_map<const Op*, OpPlan> ops_;
  std::unordered_map<const Value*, at::Tensor> constants_;
  std::unordered_map<const Op*, Table> tables_;
  mutable std::unordered_map<const Op*, at::Tensor> table_inputs_;                       // codes seen by before_op
  mutable std::unordered_map<const Op*, std::pair<at::Tensor, at::Tensor>> div_inputs_;  // operands seen by before_op
};

// Bias config scales from s_in * s_w (per channel); called once scales are known.
void set_bias_scales(QuantPlan& plan, const Graph& graph);
// Passive configs copy their master's scale, biases get s_in * s_w: after any scale change.
void refresh_derived_scales(QuantPlan& plan, const Graph& graph);

}  // namespace edgequant::quant
