// Matrix products split over the executor's pool (exec/blas.h) against float64 products, and the
// executor confining OpenBLAS to the calling thread.
#include "exec/blas.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <dlfcn.h>
#include <gtest/gtest.h>

#include <filesystem>

#include "api/load.h"
#include "exec/executor.h"
#include "test_util.h"

using namespace edgequant;

namespace {

void expect_product(const at::Tensor& got, const at::Tensor& a, const at::Tensor& b) {
  at::Tensor want = at::matmul(a.to(at::kDouble), b.to(at::kDouble));
  ASSERT_EQ(got.sizes(), want.sizes());
  double scale = want.abs().max().item<double>();
  EXPECT_LT((got.to(at::kDouble) - want).abs().max().item<double>(), 1e-5 * scale);
}

}  // namespace

TEST(ParallelMatmul, EverySplitGivesTheProduct) {
  edgequant::testing::ScopedThreads two(2);  // the split paths need a pool of two
  at::manual_seed(7);
  // Rows split (a batch through a classifier), columns split (one row), tiny (no split).
  for (auto [m, k, n] : {std::tuple<int64_t, int64_t, int64_t>{256, 300, 200}, {2, 2000, 1000}, {3, 4, 5}}) {
    at::Tensor a = at::randn({m, k}), b = at::randn({k, n});
    expect_product(exec::parallel_mm(a, b), a, b);
    expect_product(exec::parallel_mm(a, b.t().contiguous().t()), a, b);  // a transposed operand (Gemm transB)
  }
  // Leading dimensions folded into the rows, broadcast batches, 1-D operands.
  at::Tensor x = at::randn({5, 64, 128}), w = at::randn({128, 70});
  expect_product(exec::parallel_matmul(x, w), x, w);
  at::Tensor p = at::randn({4, 1, 64, 128}), q = at::randn({3, 128, 96});
  expect_product(exec::parallel_matmul(p, q), p, q);
  at::Tensor v = at::randn({128});
  expect_product(exec::parallel_matmul(x, v), x, v);
  expect_product(exec::parallel_matmul(v, w), v, w);
  at::Tensor i = at::randint(-9, 9, {200, 100}, at::kLong),
             j = at::randint(-9, 9, {100, 80}, at::kLong);  // split, no BLAS
  EXPECT_TRUE(at::equal(exec::parallel_matmul(i, j), at::matmul(i, j)));
}

TEST(ParallelMatmul, AutogradStillRecordsTheProduct) {
  at::Tensor a = at::randn({256, 300}).requires_grad_(), b = at::randn({300, 200});
  at::Tensor y = exec::parallel_mm(a, b);
  y.sum().backward();
  ASSERT_TRUE(a.grad().defined());
  EXPECT_TRUE(at::allclose(a.grad(), b.sum(1).expand({256, 300}), 1e-4, 1e-4));
}

TEST(ParallelMatmul, TheExecutorConfinesOpenBlasToTheCallingThread) {
  using GetThreads = int (*)();
  auto get = reinterpret_cast<GetThreads>(dlsym(RTLD_DEFAULT, "openblas_get_num_threads"));
  if (!get) GTEST_SKIP() << "LibTorch's BLAS is not OpenBLAS here";
  edgequant::testing::ModelBuilder b;
  b.input("x", {1, 4});
  b.node("Relu", {"x"}, {"y"});
  b.output("y");
  auto g = load_model(b.save((std::filesystem::temp_directory_path() / "blas_confined.onnx").string()));
  exec::Executor ex(*g);
  EXPECT_EQ(get(), 1);
}
