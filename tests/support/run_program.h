// Running the suite's programs from tests: with arguments (no shell),
// capturing stdout and stderr; spawning one to kill it; reading its JSON.
#pragma once

#include <nlohmann/json.hpp>

#include <random>
#include <string>
#include <sys/types.h>
#include <vector>

namespace vu::test {

struct ProgramResult {
  int status = -1; // exit status, or -signal when killed
  std::string out;
  std::string err;
  bool timed_out = false; // killed after the timeout
  long max_rss_kb = 0;    // the program's peak resident memory
};

// Runs argv with the environment plus extra_env; a program still running
// after timeout_s seconds (0: no limit) is killed and reported timed_out.
ProgramResult run_program(const std::vector<std::string>& argv,
                          const std::vector<std::string>& extra_env = {}, int timeout_s = 0);

// Runs vunify (the binary under test) with `args`.
ProgramResult run_vunify(const std::vector<std::string>& args,
                         const std::vector<std::string>& extra_env = {});
// The other programs under test.
ProgramResult run_vhashify(const std::vector<std::string>& args,
                           const std::vector<std::string>& extra_env = {});
ProgramResult run_vdu(const std::vector<std::string>& args,
                      const std::vector<std::string>& extra_env = {});
ProgramResult run_setattr(const std::vector<std::string>& args);
ProgramResult run_showattr(const std::vector<std::string>& args);
ProgramResult run_vbarrier(const std::vector<std::string>& args);

// Starts argv[0] with argv, stdout and stderr to /dev/null, and this
// process's environment plus extra_env; returns its pid (-1 on failure).
// The caller reaps it.
pid_t spawn_quiet(const std::vector<std::string>& argv,
                  const std::vector<std::string>& extra_env = {});

// The program's stdout as JSON; a test failure (and null) when it is not.
nlohmann::json json_of(const ProgramResult& r);

// True when both paths (not following symlinks) name the same inode.
bool same_inode(const std::string& a, const std::string& b);
// True when something (a dangling symlink included) exists at `path`.
bool fs_exists(const std::string& path);

// Delays for kill -9 tests: uniform in [0, fraction x the time of a full
// run]. A run that ends before its kill shortens the window: the timed
// first run can be much slower than the rest (cold caches, writeback),
// and a window that mostly misses kills nothing.
class KillDelay {
public:
  KillDelay(double full_us, double fraction, unsigned seed)
      : m_window(full_us * fraction), m_rng(seed) {}
  // Sleeps the next delay, sends SIGKILL to pid and reaps it. True when
  // the kill ended the run; false when it had ended first (the window
  // then shrinks).
  bool kill_after_delay(int pid);
  double window_us() const { return m_window; }

private:
  double m_window;
  std::mt19937 m_rng;
};

} // namespace vu::test
