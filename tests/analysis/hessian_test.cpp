// Hutchinson's trace against closed forms. For logits y = W x + b (a Gemm) and the mean
// cross-entropy, the Hessian in W is the mean over samples of (diag(p) - pp') kron xx', so
// tr(H_W) = mean_n sum_k p_nk (1 - p_nk) |x_n|^2 and tr(H_b) = mean_n sum_k p_nk (1 - p_nk); for
// the squared error sum |y - y0|^2, H_W = 2 J'J with tr = 2 K mean_n |x_n|^2 and tr(H_b) = 2 K.
#include "analysis/hessian.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "api/load.h"
#include "test_util.h"

using namespace edgequant;

namespace {
struct Gemm {
  std::unique_ptr<Graph> graph;
  at::Tensor w, b;
};

Gemm gemm_model(const std::string& dir) {
  at::manual_seed(3);
  at::Tensor w = at::randn({5, 6}) * 0.7, b = at::randn({5}) * 0.3;
  edgequant::testing::ModelBuilder m;
  m.input("x", {16, 6}).output("y", {16, 5});
  m.initializer("W", {5, 6}, std::vector<float>(w.data_ptr<float>(), w.data_ptr<float>() + 30));
  m.initializer("B", {5}, std::vector<float>(b.data_ptr<float>(), b.data_ptr<float>() + 5));
  edgequant::testing::ModelBuilder::attr_int(m.node("Gemm", {"x", "W", "B"}, {"y"}, "fc"), "transB", 1);
  std::string path = m.save(dir + "/gemm.onnx");
  return {load_model(path), w, b};
}

TEST(Hessian, HutchinsonMatchesTheClosedFormsOfALinearLayer) {
  std::string dir = ::testing::TempDir();
  Gemm g = gemm_model(dir);
  exec::Executor ex(*g.graph);
  std::vector<std::vector<at::Tensor>> batches;
  at::manual_seed(4);
  for (int i = 0; i < 3; ++i) batches.push_back({at::randn({16, 6})});
  at::Tensor x = at::cat({batches[0][0], batches[1][0], batches[2][0]}).to(at::kDouble);
  at::Tensor p = at::softmax(at::matmul(x, g.w.to(at::kDouble).t()) + g.b.to(at::kDouble), 1);
  at::Tensor curv = (p * (1 - p)).sum(1);  // per sample: sum_k p_k (1 - p_k)
  double want_w = (curv * x.pow(2).sum(1)).mean().item<double>();
  double want_b = curv.mean().item<double>();
  std::vector<const Value*> weights = {g.graph->find_value("W"), g.graph->find_value("B")};
  analysis::HessianOptions o;
  o.probes = 400;
  auto ce = analysis::hutchinson_traces(ex, weights, batches, analysis::HessianLoss::CrossEntropy, o);
  ASSERT_EQ(ce.size(), 2u);
  EXPECT_EQ(ce[0].numel, 30);
  for (auto [got, want] : {std::pair{ce[0], want_w}, std::pair{ce[1], want_b}}) {
    EXPECT_GT(got.std_error, 0);
    EXPECT_LT(got.std_error, 0.05 * want);
    EXPECT_NEAR(got.trace, want, 4 * got.std_error) << "closed form " << want;
  }
  double want_mse_w = 2 * 5 * x.pow(2).sum(1).mean().item<double>();
  auto mse = analysis::hutchinson_traces(ex, weights, batches, analysis::HessianLoss::OutputMse, o);
  EXPECT_NEAR(mse[0].trace, want_mse_w, 4 * mse[0].std_error + 1e-6 * want_mse_w);
  // The bias's block is 2I (5 x 5): v'2Iv = 10 for every probe, exactly (up to the float step).
  EXPECT_NEAR(mse[1].trace, 10.0, 1e-3);
  EXPECT_LT(mse[1].std_error, 1e-3);
}

TEST(Hessian, OneProbeIsRefused) {
  std::string dir = ::testing::TempDir();
  Gemm g = gemm_model(dir);
  exec::Executor ex(*g.graph);
  analysis::HessianOptions o;
  o.probes = 1;
  EXPECT_THROW(analysis::hutchinson_traces(ex, {g.graph->find_value("W")}, {{at::randn({16, 6})}},
                                           analysis::HessianLoss::CrossEntropy, o),
               Error);
}
}  // namespace
