// Trainable quantization parameters: scales (alpha = log2 s for power-of-two configs, s itself
// for float-scale configs, one per channel when per-channel) and, where a pass asks, weights,
// held as leaf tensors that the simulator reads on every forward. bake() writes the results back
// (exact powers of two where the target needs them) into the plan, the executor and the graph.
#pragma once
#include <ATen/core/Tensor.h>

#include <map>
#include <string>
#include <vector>

#include "exec/executor.h"
#include "ir/quant_config.h"

namespace edgequant::quant {

class ParameterStore {
 public:
  // Creates (first call) or returns the scale parameter of `value`'s config (requires grad).
  // `grad_scale` multiplies the scale's gradient, not its value (LSQ's 1/sqrt(N * Qp)).
  at::Tensor scale_param(const std::string& value, const QuantConfig& config, double grad_scale = 1.0);
  // Creates (first call) or returns the trainable copy of a constant (requires grad).
  at::Tensor weight_param(const Value* value, const at::Tensor& init);
  bool has_scale(const std::string& value) const { return scales_.count(value) != 0; }
  bool has_weight(const Value* value) const { return weights_.count(value) != 0; }
  // AdaRound: a learned rounding offset V per weight element (scales frozen). The weight is
  // s * clamp(floor(w / s) + h(V), qmin, qmax) with h the rectified sigmoid, or h = [V >= 0]
  // in hard mode. Initialised so that h(V) = w/s - floor(w/s) (the soft form of nearest rounding).
  at::Tensor rounding_param(const Value* value, const at::Tensor& weight, const QuantConfig& config);
  bool has_rounding(const Value* value) const { return rounding_.count(value) != 0; }
  at::Tensor rounded_weight(const Value* value, const QuantConfig& config) const;
  at::Tensor rounding_h(const Value* value) const;  // h(V) (soft), for the regulariser
  void set_hard_rounding(bool hard) { hard_rounding_ = hard; }
  bool empty() const { return scales_.empty() && weights_.empty() && rounding_.empty(); }
  at::Tensor weight(const Value* value) const;
  // The scale the forward uses, shaped to broadcast along the config's axis for a rank-`rank`
  // tensor: 2^(alpha + stopgrad(round(alpha) - alpha)) for power-of-two configs (the
  // straight-through exponent), the raw scale otherwise.
  at::Tensor scale(const std::string& value, const QuantConfig& config, int64_t rank) const;
  std::vector<at::Tensor> parameters() const;

  // Copies of every parameter (for rollback) and their restoration, bit for bit.
  using Snapshot = std::vector<at::Tensor>;
  Snapshot snapshot() const;
  void restore(const Snapshot& snapshot);

  // Every parameter by a name that outlives the process ("scale:VALUE", "weight:VALUE",
  // "rounding:VALUE"), in name order: checkpoints.
  std::vector<std::pair<std::string, at::Tensor>> named_parameters() const;
  // Writes scales into `plan` and weights into `graph`'s constants (found by value name) and
  // keeps the store: a copy of the model as trained so far (QAT's per-epoch integer model).
  void write_to(QuantPlan& plan, Graph& graph) const;

  // Writes scales into `plan` (2^round(alpha) on power-of-two configs, source Trained) and
  // weights into the executor and the graph's constants; then empties the store. Returns the
  // constants as they were before (the float reference keeps them).
  std::map<const Value*, at::Tensor> bake(QuantPlan& plan, Graph& graph, exec::Executor& executor);
  void clear();

 private:
  void write_scales(QuantPlan& plan) const;
  std::map<std::string, at::Tensor> scales_;
  std::map<std::string, bool> pow2_;
  std::map<std::string, double> grad_scale_;
  std::map<const Value*, at::Tensor> weights_;
  struct Rounding {
    at::Tensor v, floor_codes;  // learned offset; floor(w / s) of the original weight
  };
  std::map<const Value*, Rounding> rounding_;
  bool hard_rounding_ = false;
};

}  // namespace edgequant::quant
