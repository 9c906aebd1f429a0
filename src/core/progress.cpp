// Progress line implementation.
#include "core/progress.h"

#include <unistd.h>

#include <cstdio>

namespace edgequant {

Progress::Progress(std::string label, int64_t total)
    : label_(std::move(label)),
      total_(total),
      enabled_(isatty(fileno(stderr)) != 0),
      start_(std::chrono::steady_clock::now()),
      last_draw_(start_) {}

Progress::~Progress() { finish(); }

void Progress::step(int64_t n) {
  done_ += n;
  if (!enabled_) return;
  auto now = std::chrono::steady_clock::now();
  if (done_ < total_ && now - last_draw_ < std::chrono::milliseconds(200)) return;
  last_draw_ = now;
  double elapsed = std::chrono::duration<double>(now - start_).count();
  double eta = done_ > 0 ? elapsed / done_ * (total_ - done_) : 0.0;
  std::fprintf(stderr, "\r%s %lld/%lld  %.1fs elapsed, ETA %.1fs   ", label_.c_str(), (long long)done_,
               (long long)total_, elapsed, eta);
  std::fflush(stderr);
}

void Progress::finish() {
  if (finished_) return;
  finished_ = true;
  if (enabled_ && done_ > 0) std::fprintf(stderr, "\n");
}

}  // namespace edgequant
