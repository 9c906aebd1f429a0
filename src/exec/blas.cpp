#include "exec/blas.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <dlfcn.h>

#include <mutex>

namespace edgequant::exec {

void confine_blas_threads() {
  static std::once_flag once;
  std::call_once(once, [] {
    // Looked up, not linked: LibTorch's BLAS is whatever libblas.so.3 points to.
    using SetThreads = void (*)(int);
    if (auto set = reinterpret_cast<SetThreads>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads"))) set(1);
  });
}

namespace {

// Below this many multiply-adds a product is not worth a fork (the pool's wake-up is ~10 us).
constexpr int64_t kParallelMacs = int64_t{1} << 20;

bool records_gradient(const at::Tensor& a, const at::Tensor& b) {
  return at::GradMode::is_enabled() && (a.requires_grad() || b.requires_grad());
}

}  // namespace

at::Tensor parallel_mm(const at::Tensor& a, const at::Tensor& b) {
  const int64_t m = a.size(0), k = a.size(1), n = b.size(1);
  const int threads = at::get_num_threads();
  // at::mm also reports mismatched shapes, with its own message.
  if (threads < 2 || k != b.size(0) || m * k * n < kParallelMacs || records_gradient(a, b) || at::in_parallel_region())
    return at::mm(a, b);
  at::Tensor out = at::empty({m, n}, a.options().dtype(at::promote_types(a.scalar_type(), b.scalar_type())));
  if (m >= 4 * threads) {
    // Rows of the output are contiguous slices: each thread writes its own.
    at::parallel_for(0, m, (m + threads - 1) / threads, [&](int64_t begin, int64_t end) {
      at::Tensor rows = out.narrow(0, begin, end - begin);
      at::mm_out(rows, a.narrow(0, begin, end - begin), b);
    });
    return out;
  }
  // Few rows (a batch of one through a classifier): split the columns, each into its own block.
  at::Tensor bt = b.t().contiguous();  // [n, k]: a column block is a contiguous row block
  at::Tensor outt = at::empty({n, m}, out.options());
  at::parallel_for(0, n, (n + threads - 1) / threads, [&](int64_t begin, int64_t end) {
    at::Tensor block = outt.narrow(0, begin, end - begin);
    at::mm_out(block, bt.narrow(0, begin, end - begin), a.t());
  });
  return outt.t().contiguous();
}

at::Tensor parallel_matmul(const at::Tensor& a, const at::Tensor& b) {
  if (a.dim() < 2 || b.dim() < 2 || records_gradient(a, b) || at::in_parallel_region()) return at::matmul(a, b);
  if (b.dim() == 2) {
    // [..., m, k] @ [k, n]: one product with the leading dimensions folded into the rows.
    std::vector<int64_t> shape = a.sizes().vec();
    shape.back() = b.size(1);
    return parallel_mm(a.reshape({-1, a.size(-1)}), b).reshape(shape);
  }
  // Batched on both sides: broadcast the batch dimensions, one product per batch entry.
  std::vector<int64_t> batch_a(a.sizes().begin(), a.sizes().end() - 2), batch_b(b.sizes().begin(), b.sizes().end() - 2);
  std::vector<int64_t> batch = at::infer_size(batch_a, batch_b);
  const int64_t m = a.size(-2), k = a.size(-1), n = b.size(-1);
  int64_t count = 1;
  for (int64_t d : batch) count *= d;
  if (count < 2 || k != b.size(-2) || count * m * k * n < kParallelMacs || at::get_num_threads() < 2)
    return at::matmul(a, b);
  std::vector<int64_t> shape_a = batch, shape_b = batch, shape_out = batch;
  shape_a.insert(shape_a.end(), {m, k});
  shape_b.insert(shape_b.end(), {k, n});
  shape_out.insert(shape_out.end(), {m, n});
  at::Tensor a3 = a.expand(shape_a).reshape({count, m, k}), b3 = b.expand(shape_b).reshape({count, k, n});
  at::Tensor out = at::empty({count, m, n}, a.options().dtype(at::promote_types(a.scalar_type(), b.scalar_type())));
  at::parallel_for(0, count, 1, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      at::Tensor slice = out[i];
      at::mm_out(slice, a3[i], b3[i]);
    }
  });
  return out.reshape(shape_out);
}

}  // namespace edgequant::exec
