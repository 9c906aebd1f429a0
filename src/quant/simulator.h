// Quantized simulation: executor hooks that fake-quantize every configured tensor with the
// target's rounding and clamping (weights and biases once, activations after each op, aligned
// inputs per use), so the float executor computes the float view of what the chip computes.
#pragma once
#include <ATen/core/Tensor.h>

#include <set>
#include <unordered_map>

#include "exec/executor.h"
#include "ir/quant_config.h"

namespace edgequant::quant {

class QuantSimulator {
 public:
  // The plan must be calibrated (every Quantized config has scales).
  QuantSimulator(const Graph& graph, const QuantPlan& plan, exec::Executor& executor);

  // Hooks for a run; with `only`, just those ops' tensors are quantized (layerwise analysis).
  exec::ExecHooks hooks(const std::set<const Op*>* only = nullptr) const;
  std::vector<at::Tensor> run(const std::vector<at::Tensor>& inputs);
  // The quantized-then-dequantized constant (weight/bias) the simulation uses.
  at::Tensor quantized_constant(const Value* v) const;
  void before_op(const Op& op, std::vector<at::Tensor>& inputs, const std::set<const Op*>* only) const;
  void after_op(const Op& op, std::vector<at::Tensor>& outputs, const std::set<const Op*>* only) const;

 private:
  struct OpPlan {
    std::vector<std::pair<size_t, at::Tensor>> constants;            // fake-quantized constant inputs
    std::vector<std::pair<size_t, const QuantConfig*>> activations;  // graph inputs, aligned inputs
    std::vector<std::pair<size_t, const QuantConfig*>> outputs;
  };
  const Graph& graph_;
  const QuantPlan& plan_;
  exec::Executor& executor_;
  std::unordered_map<const Op*, OpPlan> ops_;
  std::unordered_map<const Value*, at::Tensor> constants_;
};

// Bias config scales from s_in * s_w (per channel); called once scales are known.
void set_bias_scales(QuantPlan& plan, const Graph& graph);

}  // namespace edgequant::quant
