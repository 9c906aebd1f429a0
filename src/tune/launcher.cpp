#include "tune/launcher.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <thread>

#include "core/files.h"
#include "edgequant/error.h"

namespace edgequant::tuning {

void mark_failed_unless_finished(const std::string& dir, const std::string& reason) {
  if (std::filesystem::exists(dir + "/metrics.json")) return;
  write_file_atomic(dir + "/metrics.json", nlohmann::json{{"status", "failed"}, {"reason", reason}}.dump(1) + "\n");
}

namespace {

class LocalLauncher : public Launcher {
 public:
  LocalLauncher(std::string worker, int jobs, double timeout_s)
      : worker_(std::move(worker)), jobs_(std::max(1, jobs)), timeout_s_(timeout_s) {
    unsigned cores = std::max(1u, std::thread::hardware_concurrency());
    threads_ = std::max(1, static_cast<int>(cores) / jobs_);
  }
  int threads_per_trial() const override { return threads_; }

  void run(const std::vector<std::string>& dirs) override {
    using clock = std::chrono::steady_clock;
    struct Running {
      std::string dir;
      clock::time_point start;
      bool killed = false;
    };
    std::map<pid_t, Running> running;
    size_t next = 0;
    while (next < dirs.size() || !running.empty()) {
      while (next < dirs.size() && static_cast<int>(running.size()) < jobs_) {
        pid_t pid = spawn(dirs[next]);
        running[pid] = {dirs[next], clock::now()};
        ++next;
      }
      int status = 0;
      pid_t done = waitpid(-1, &status, WNOHANG);
      if (done > 0 && running.count(done)) {
        Running r = running[done];
        running.erase(done);
        std::string why;
        if (r.killed)
          why = "timed out after " + std::to_string(static_cast<int>(timeout_s_)) + " s (killed)";
        else if (WIFSIGNALED(status))
          why = "the worker was killed by signal " + std::to_string(WTERMSIG(status)) + " (see worker.log)";
        else
          why = "the worker exited with status " + std::to_string(WEXITSTATUS(status)) + " (see worker.log)";
        mark_failed_unless_finished(r.dir, why);
        continue;
      }
      if (timeout_s_ > 0)
        for (auto& [pid, r] : running)
          if (!r.killed && std::chrono::duration<double>(clock::now() - r.start).count() > timeout_s_) {
            kill(-pid, SIGKILL);  // the worker's group: an --eval-cmd it started goes too
            r.killed = true;
          }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }

 private:
  pid_t spawn(const std::string& dir) {
    std::string log = dir + "/worker.log";
    std::string threads = std::to_string(threads_);
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) fail(ErrorCode::Internal, "cannot start a trial worker: fork failed");
    if (pid == 0) {
      // Dies with the driver: a killed `tune` leaves no worker writing into a trial it will redo.
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (getppid() != parent) _exit(127);
      setpgid(0, 0);
      int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      if (fd >= 0) {
        dup2(fd, 1);
        dup2(fd, 2);
        close(fd);
      }
      setenv("EDGEQUANT_THREADS", threads.c_str(), 1);
      setenv("OMP_NUM_THREADS", threads.c_str(), 1);
      execl(worker_.c_str(), worker_.c_str(), "tune-trial", dir.c_str(), static_cast<char*>(nullptr));
      _exit(127);
    }
    return pid;
  }

  std::string worker_;
  int jobs_, threads_ = 1;
  double timeout_s_;
};

}  // namespace

std::unique_ptr<Launcher> local_launcher(const std::string& worker, int jobs, double timeout_s) {
  return std::make_unique<LocalLauncher>(worker, jobs, timeout_s);
}

}  // namespace edgequant::tuning
