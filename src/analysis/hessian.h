// Hessian trace of a loss with respect to each weight tensor, by Hutchinson's estimator:
// E[v' H_ii v] = tr(H_ii) for random Rademacher vectors v (entries +-1) over the elements of
// weight i. H_ii is taken in its Gauss-Newton form J_i' A J_i (J_i: the outputs' Jacobian in W_i;
// A: the loss's Hessian in the outputs, diag(p) - pp' for cross-entropy, 2I for squared error).
// That is the exact diagonal block wherever the outputs are linear in each single layer's weights
// (Conv/Gemm with ReLU, pooling, Add: the usual quantized network), and positive semi-definite
// everywhere, so no estimate comes out negative. J_i v is a central difference of the outputs,
// (f(W_i + e v) - f(W_i - e v)) / 2e, e relative to W_i's RMS: forward runs only, continuous
// across ReLU kinks (a gradient difference is not: it jumps there, and divided by e it swamped a
// first version of this estimator). HAWQ-V2 (Dong et al. 2020) ranks layers by
// tr(H_i)/n_i * |Q(W_i) - W_i|^2.
#pragma once
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <vector>

#include "exec/executor.h"

namespace edgequant::analysis {

enum class HessianLoss {
  CrossEntropy,  // the first output as [N, C] logits (labels need not be known: A depends on p only)
  OutputMse,     // squared error of every float output against the model's own (a distillation loss)
};

struct HessianOptions {
  int probes = 16;
  uint64_t seed = 20261208;
  double relative_step = 1e-3;  // e_i = relative_step * RMS(W_i)
};

struct HessianTrace {
  double trace = 0;      // mean over probes of v' H_ii v
  double std_error = 0;  // standard error of that mean
  int64_t numel = 0;
  double mean_diagonal() const { return numel ? trace / static_cast<double>(numel) : 0; }
};

// The loss is the mean over every sample of `batches` (one tensor per graph input each).
// `weights` are constants of the executor's graph, taken at the tensors the executor holds.
std::vector<HessianTrace> hutchinson_traces(exec::Executor& executor, const std::vector<const Value*>& weights,
                                            const std::vector<std::vector<at::Tensor>>& batches, HessianLoss loss,
                                            const HessianOptions& options = {});

}  // namespace edgequant::analysis
