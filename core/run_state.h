// What the host knows about running guests: one directory per guest under
// the run directory ($VSERVER_RUNDIR, else /run/vservers, the place
// util-vserver's /var/run/vservers is on Debian), holding
//
//   lock    flock()ed by every command that starts or stops the guest
//   state   written atomically once the guest's init exists: its pid, its
//           start time and the boot it belongs to (so a reused pid or a
//           reboot is never taken for the guest), the context number,
//           its cgroups and when it started
//
// A state whose process is gone is stale: the next start, stop or status
// finds it, kills what is left in the guest's cgroups and removes it.
#pragma once

#include "kernel/fd.h"
#include "kernel/result.h"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <sys/types.h>
#include <vector>

namespace vu {

struct RunState {
  pid_t pid = 0;
  uint64_t start_ticks = 0;
  std::string boot;
  unsigned context = 0;
  std::string cgroup2;              // the guest's cgroup2 directory
  std::vector<std::string> cgroup1; // its directories in v1 hierarchies
  int64_t started = 0;              // seconds since the epoch
};

std::string format_run_state(const RunState& s);
// Parses a state file; every field is checked (paths absolute, numbers in
// range). Exposed for tests and fuzzing.
Result<RunState> parse_run_state(std::string_view text);

enum class Liveness { running, stale };
// running: the state's process exists, started at the recorded time, in
// this boot.
Liveness liveness(const RunState& s);

// $VSERVER_RUNDIR, else /run/vservers.
std::string run_directory();

enum class LockWait : bool { no = false, yes = true };

class GuestRunDir {
public:
  // <run directory>/<name>, made (0700) when missing.
  static Result<GuestRunDir> open(const std::string& name);
  // The guest's lock (flock, exclusive); held while the descriptor lives.
  // EWOULDBLOCK when another command holds it and `wait` is no.
  Result<UniqueFd> lock(LockWait wait) const;
  Result<std::optional<RunState>> read() const;
  Status write(const RunState& s) const;
  Status clear() const;
  const std::string& path() const { return m_path; }

private:
  std::string m_path;
  UniqueFd m_fd;
};

// Every guest with a state file, by name.
std::vector<std::pair<std::string, RunState>> running_guests();

} // namespace vu
