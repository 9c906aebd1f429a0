// Observer throughput: ns per element of HistogramObserver::observe() on activations of several
// sizes (half zeros as after a ReLU, and dense), against a plain read of the same data (at::sum),
// so an observer's cost can be split into memory traffic and binning.
// Usage: bench_observer [repeats] [threads]
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>

#include "quant/observer.h"

using Clock = std::chrono::steady_clock;

int main(int argc, char** argv) {
  int repeats = argc > 1 ? std::atoi(argv[1]) : 20;
  if (argc > 2) at::set_num_threads(std::atoi(argv[2]));
  for (bool relu : {true, false})
    for (int64_t n : {int64_t(1), int64_t(4), int64_t(32)}) {
      at::Tensor x = at::randn({n, 96, 112, 112});
      if (relu) x = at::relu(x);
      edgequant::quant::HistogramObserver obs;
      obs.observe(x);  // warm-up; sets the range
      auto t = Clock::now();
      for (int r = 0; r < repeats; ++r) obs.observe(x);
      double observe_s = std::chrono::duration<double>(Clock::now() - t).count();
      t = Clock::now();
      double sink = 0;
      for (int r = 0; r < repeats; ++r) sink += at::sum(x).item<double>();
      double read_s = std::chrono::duration<double>(Clock::now() - t).count();
      double elems = double(x.numel()) * repeats;
      std::printf(
          "%-5s %2lld x 96x112x112 (%3.0f MiB): observe %.3f ns/element, read (sum) %.3f ns/element, %d threads%s\n",
          relu ? "relu" : "dense", (long long)n, x.nbytes() / 1048576.0, observe_s / elems * 1e9, read_s / elems * 1e9,
          at::get_num_threads(), sink == 0 ? " " : "");
    }
  return 0;
}
