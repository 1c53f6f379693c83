// The processes of running guests, as the host sees them: which guest
// each host pid belongs to (its cgroup), and what they use (/proc/PID/stat).
// For vps and vserver-stat.
#pragma once

#include "core/run_state.h"

#include <map>
#include <string>
#include <sys/types.h>
#include <vector>

namespace vu {

struct ProcUsage {
  uint64_t vsize = 0;       // bytes
  uint64_t rss = 0;         // bytes
  uint64_t utime_ticks = 0; // clock ticks
  uint64_t stime_ticks = 0;
};
// /proc/PID/stat's fields 14, 15, 23, 24. ESRCH when the process is gone.
Result<ProcUsage> process_usage(pid_t pid);

struct RunningGuest {
  std::string name;
  RunState state;
  std::vector<pid_t> processes;
};
// Every guest whose state is live, with its processes.
std::vector<RunningGuest> list_running_guests();

} // namespace vu
