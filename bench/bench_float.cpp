// Float inference throughput of an ONNX model on EdgeQuant's executor.
// Usage: bench_float MODEL.onnx [--batch 32] [--repeats 3] [--threads N]
// Prints "edgequant_images_per_s <value>" (best of the repeats, after one warm-up run).
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>

#include "api/load.h"
#include "exec/executor.h"

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: bench_float MODEL.onnx [--batch N] [--repeats N] [--threads N]\n");
    return 2;
  }
  int batch = 32, repeats = 3, threads = 0;
  for (int i = 2; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--batch")) batch = std::atoi(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--repeats")) repeats = std::atoi(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--threads")) threads = std::atoi(argv[i + 1]);
  }
  auto t0 = std::chrono::steady_clock::now();
  auto g = edgequant::load_model(argv[1]);
  edgequant::exec::ExecOptions opts;
  opts.num_threads = threads;
  edgequant::exec::Executor ex(*g, opts);
  double load_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::vector<int64_t> shape = *g->inputs[0]->shape;
  shape[0] = batch;
  at::Tensor x = at::randn(shape, at::TensorOptions().dtype(at::kFloat));
  ex.run({x});  // warm-up: oneDNN primitive creation
  double best = 1e30;
  for (int r = 0; r < repeats; ++r) {
    auto s = std::chrono::steady_clock::now();
    ex.run({x});
    best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - s).count());
  }
  std::printf("edgequant_load_s %.3f\nedgequant_batch_s %.4f\nedgequant_images_per_s %.2f\nthreads %d\n", load_s, best,
              batch / best, at::get_num_threads());
  return 0;
}
