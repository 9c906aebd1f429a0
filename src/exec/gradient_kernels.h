// Differentiable kernels whose ATen backward is slow on small training tensors (block training
// and QAT run them at every step): ClampBackward and ThresholdBackward go through boolean masks
// and at::where, MeanBackward through a division over an expanded tensor, each ~0.5-1 ms on a
// [32, 48, 14, 14] tensor where a multiplication takes 0.03 ms. Each function gives the same
// values and gradients, bit for bit, as the ATen op it replaces (tests/exec/gradient_kernels_test);
// without autograd (or off float32 CPU tensors) it is that ATen op.
#pragma once
#include <ATen/core/Tensor.h>
#include <c10/core/Scalar.h>
#include <c10/util/Optional.h>

namespace edgequant::exec {

// at::clamp(x, lo, hi); gradient g where lo <= x <= hi (an absent bound always holds), else 0.
// The bounds as given (an integer bound keeps an integer tensor integer).
at::Tensor clamp_differentiable(const at::Tensor& x, const c10::optional<at::Scalar>& lo,
                                const c10::optional<at::Scalar>& hi);
// at::relu(x); gradient g where relu(x) > 0, else 0.
at::Tensor relu_differentiable(const at::Tensor& x);
// (a - t).pow(2).mean(); gradient to a (g / numel) * (2 * (a - t)); t gets none.
at::Tensor mse_loss(const at::Tensor& a, const at::Tensor& t);

}  // namespace edgequant::exec
