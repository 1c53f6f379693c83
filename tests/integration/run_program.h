// Runs a program with arguments (no shell), capturing stdout and stderr.
#pragma once

#include <random>
#include <string>
#include <vector>

namespace vu::test {

struct ProgramResult {
  int status = -1; // exit status, or -signal when killed
  std::string out;
  std::string err;
};

ProgramResult run_program(const std::vector<std::string>& argv,
                          const std::vector<std::string>& extra_env = {});

// Runs vunify (the binary under test) with `args`.
ProgramResult run_vunify(const std::vector<std::string>& args,
                         const std::vector<std::string>& extra_env = {});

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
