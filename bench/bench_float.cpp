// Float inference throughput of an ONNX model on EdgeQuant's executor.
// Usage: bench_float MODEL.onnx [--batch 32] [--repeats 3] [--threads N] [--profile 1] [--chunk-mib M]
// (--chunk-mib 0: whole batches, no cache blocking across the batch)
// Prints "edgequant_images_per_s <value>" (best of the repeats, after one warm-up run); with
// --profile, the seconds per op type of one more run (hooks time each op).
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <map>
#include <string>

#include "api/load.h"
#include "exec/executor.h"

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(
        stderr,
        "usage: bench_float MODEL.onnx [--batch N] [--repeats N] [--threads N] [--profile 1] [--chunk-mib M]\n");
    return 2;
  }
  int batch = 32, repeats = 3, threads = 0, profile = 0;
  double chunk_mib = -1;  // default: ExecOptions' own
  for (int i = 2; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--batch"))
      batch = std::atoi(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--repeats"))
      repeats = std::atoi(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--threads"))
      threads = std::atoi(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--profile"))
      profile = std::atoi(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--chunk-mib"))
      chunk_mib = std::atof(argv[i + 1]);
  }
  auto t0 = std::chrono::steady_clock::now();
  auto g = edgequant::load_model(argv[1]);
  edgequant::exec::ExecOptions opts;
  opts.num_threads = threads;
  if (chunk_mib >= 0) opts.chunk_bytes = static_cast<size_t>(chunk_mib * 1024 * 1024);
  edgequant::exec::Executor ex(*g, opts);
  double load_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::vector<int64_t> shape = *g->inputs[0]->shape;
  shape[0] = batch;
  at::Tensor x = at::randn(shape, at::TensorOptions().dtype(at::kFloat));
  auto tw = std::chrono::steady_clock::now();
  ex.run({x});  // warm-up: oneDNN primitive creation (JIT) and first-touch allocations
  double first_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - tw).count();
  double best = 1e30;
  for (int r = 0; r < repeats; ++r) {
    auto s = std::chrono::steady_clock::now();
    ex.run({x});
    best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - s).count());
  }
  if (profile) {
    std::map<std::string, double> per_type;
    std::map<std::string, int> count;
    std::chrono::steady_clock::time_point t;
    edgequant::exec::ExecHooks h;
    h.allow_inplace = true;
    h.before_op = [&](const edgequant::Op&, std::vector<at::Tensor>&) { t = std::chrono::steady_clock::now(); };
    h.after_op = [&](const edgequant::Op& op, std::vector<at::Tensor>&) {
      // Convolutions split by kind (depthwise / pointwise / other): their kernels differ most.
      std::string key = op.type;
      if (op.type == "Conv") {
        const auto& w = op.input(1);
        bool pointwise = w && w->shape && w->shape->size() == 4 && (*w->shape)[2] == 1 && (*w->shape)[3] == 1;
        key += op.attr_int("group", 1) > 1 ? " depthwise" : pointwise ? " 1x1" : " other";
      }
      per_type[key] += std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
      ++count[key];
    };
    ex.run({x}, &h);
    for (const auto& [type, sec] : per_type) std::printf("op %-20s %4d ops %8.4f s\n", type.c_str(), count[type], sec);
  }
  std::printf("edgequant_first_batch_s %.3f\n", first_s);
  std::printf("edgequant_load_s %.3f\nedgequant_batch_s %.4f\nedgequant_images_per_s %.2f\nthreads %d\n", load_s, best,
              batch / best, at::get_num_threads());
  return 0;
}
