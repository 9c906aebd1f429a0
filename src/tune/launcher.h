// Where trials run. The search hands a launcher the directories of independent trials and waits
// for all of them; a launcher only has to run `edgequant tune-trial DIR` for each, so others (a
// Slurm job array, a Kubernetes Job) can be added without touching the search.
#pragma once
#include <memory>
#include <string>
#include <vector>

namespace edgequant::tuning {

class Launcher {
 public:
  virtual ~Launcher() = default;
  // Runs every trial; returns when all have finished. A trial that died, was killed or timed out
  // without writing DIR/metrics.json gets a failed one saying why.
  virtual void run(const std::vector<std::string>& dirs) = 0;
  virtual int threads_per_trial() const = 0;
};

// Child processes of `worker` on this machine, `jobs` at a time (each with cores / jobs threads,
// EDGEQUANT_THREADS), killed after `timeout_s` (0: never) and when the driver dies.
std::unique_ptr<Launcher> local_launcher(const std::string& worker, int jobs, double timeout_s);

// Writes DIR/metrics.json as a failed trial (atomically) unless the worker wrote one.
void mark_failed_unless_finished(const std::string& dir, const std::string& reason);

}  // namespace edgequant::tuning
