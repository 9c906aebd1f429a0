// The one-pass differentiable kernels against the ATen ops they replace in training: the same
// forward values and the same gradients, bit for bit (the same float operations per element, so
// this is not a tolerance question), in both memory layouts, with values exactly on the bounds.
#include "exec/gradient_kernels.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

namespace edgequant {
namespace {

struct Grads {
  at::Tensor y, dx;
};

// The gradient as the op hands it on (a leaf's .grad would be recopied into the leaf's layout,
// hiding the layout the op produced; later sums run in that layout's memory order).
template <typename F>
Grads run(const at::Tensor& x0, const at::Tensor& g, F f) {
  at::Tensor leaf = x0.clone().set_requires_grad(true);
  at::Tensor x = leaf * 1.0f, dx;
  x.register_hook([&dx](const at::Tensor& grad) { dx = grad.clone(at::MemoryFormat::Preserve); });
  at::Tensor y = f(x);
  y.backward(g);
  return {y.detach(), dx};
}

// Values on a 0.5 grid so that some sit exactly on 0, 6 and -1.5.
at::Tensor on_grid(at::MemoryFormat format) {
  at::manual_seed(5);
  return (at::round(at::randn({8, 12, 7, 7}) * 8) * 0.5).contiguous(format);
}

TEST(GradientKernels, ClampAndReluAreAtenBitForBit) {
  for (auto format : {at::MemoryFormat::Contiguous, at::MemoryFormat::ChannelsLast}) {
    at::Tensor x = on_grid(format), g = at::randn(x.sizes()).contiguous(format);
    // The incoming gradient in the other layout (results must take x's, as ATen's do).
    at::Tensor g_other = g.contiguous(format == at::MemoryFormat::Contiguous ? at::MemoryFormat::ChannelsLast
                                                                             : at::MemoryFormat::Contiguous);
    ASSERT_GT((x == 6).sum().item<int64_t>(), 0);
    ASSERT_GT((x == 0).sum().item<int64_t>(), 0);
    struct Bounds {
      c10::optional<double> lo, hi;
    };
    for (Bounds b : {Bounds{0.0, 6.0}, Bounds{-1.5, c10::nullopt}, Bounds{c10::nullopt, 6.0}}) {
      auto scalar = [](c10::optional<double> v) { return v ? c10::optional<at::Scalar>(*v) : c10::nullopt; };
      for (const at::Tensor& gg : {g, g_other}) {
        Grads ours =
            run(x, gg, [&](const at::Tensor& t) { return exec::clamp_differentiable(t, scalar(b.lo), scalar(b.hi)); });
        Grads aten = run(x, gg, [&](const at::Tensor& t) { return at::clamp(t, scalar(b.lo), scalar(b.hi)); });
        EXPECT_TRUE(at::equal(ours.y, aten.y));
        EXPECT_TRUE(at::equal(ours.dx, aten.dx) && ours.dx.strides() == aten.dx.strides())
            << "clamp(" << b.lo.value_or(-1e9) << ", " << b.hi.value_or(1e9) << ")";
      }
    }
    for (const at::Tensor& gg : {g, g_other}) {
      Grads ours = run(x, gg, [](const at::Tensor& t) { return exec::relu_differentiable(t); });
      Grads aten = run(x, gg, [](const at::Tensor& t) { return at::relu(t); });
      EXPECT_TRUE(at::equal(ours.y, aten.y));
      EXPECT_TRUE(at::equal(ours.dx, aten.dx) && ours.dx.strides() == aten.dx.strides());
      EXPECT_GT(ours.dx.abs().sum().item<float>(), 0.0f);
    }
  }
}

TEST(GradientKernels, MseIsAtenBitForBit) {
  for (auto format : {at::MemoryFormat::Contiguous, at::MemoryFormat::ChannelsLast}) {
    at::Tensor a = at::randn({8, 12, 7, 7}).contiguous(format), t = at::randn({8, 12, 7, 7}).contiguous(format);
    at::Tensor g = at::full({}, 0.37f);
    Grads ours = run(a, g, [&](const at::Tensor& x) { return exec::mse_loss(x, t); });
    Grads aten = run(a, g, [&](const at::Tensor& x) { return (x - t).pow(2).mean(); });
    EXPECT_TRUE(at::equal(ours.y, aten.y));
    EXPECT_TRUE(at::equal(ours.dx, aten.dx));
    EXPECT_EQ(ours.dx.strides(), aten.dx.strides());  // downstream sums run in memory order
  }
}

TEST(GradientKernels, WithoutAutogradTheyAreTheAtenOps) {
  at::Tensor x = on_grid(at::MemoryFormat::Contiguous);
  EXPECT_FALSE(exec::clamp_differentiable(x, 0.0, 6.0).requires_grad());
  EXPECT_TRUE(at::equal(exec::clamp_differentiable(x, 0.0, 6.0), at::clamp(x, 0.0, 6.0)));
  EXPECT_TRUE(at::equal(exec::relu_differentiable(x), at::relu(x)));
  // Integer bounds keep an integer tensor integer (ONNX Clip on int8).
  at::Tensor i8 = at::tensor({-100, 5, 100}, at::kChar);
  at::Tensor c = exec::clamp_differentiable(i8, at::Scalar(int64_t(-10)), at::Scalar(int64_t(10)));
  EXPECT_EQ(c.scalar_type(), at::kChar);
  EXPECT_TRUE(at::equal(c, at::tensor({-10, 5, 10}, at::kChar)));
}

}  // namespace
}  // namespace edgequant
