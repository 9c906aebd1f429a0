// A progress line with counts and ETA on a terminal; silent when stderr is not a tty.
#pragma once
#include <chrono>
#include <string>

namespace edgequant {

class Progress {
 public:
  Progress(std::string label, int64_t total);
  ~Progress();
  void step(int64_t n = 1);
  void finish();

 private:
  std::string label_;
  int64_t total_, done_ = 0;
  bool enabled_, finished_ = false;
  std::chrono::steady_clock::time_point start_, last_draw_;
};

}  // namespace edgequant
