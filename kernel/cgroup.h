// Control groups: one cgroup2 directory per guest for membership and
// killing, plus limits where a controller lives - in cgroup2 when it is
// enabled there, else in the cgroup v1 hierarchy that holds it (a host
// with both, as Debian hosts that boot with systemd's hybrid layout).
#pragma once

#include "kernel/fd.h"
#include "kernel/result.h"

#include <cstdint>
#include <string>
#include <sys/types.h>
#include <vector>

namespace vu {

// Where cgroup2 is mounted: /sys/fs/cgroup when it is cgroup2, else
// /sys/fs/cgroup/unified, else `fallback` (mounted there when nothing is).
Result<std::string> cgroup2_root(const std::string& fallback);

// The mount point of the cgroup v1 hierarchy holding `controller`, or
// empty when none does.
std::string cgroup1_mount(const std::string& controller);

// A cgroup directory (v2 or a v1 hierarchy's), opened without following
// symlinks, created when missing.
class Cgroup {
public:
  static Result<Cgroup> open(const std::string& path, bool create);
  const std::string& path() const { return m_path; }
  int fd() const { return m_fd.get(); }
  // Writes `value` to the control file `name` (a plain name).
  Status write(const std::string& name, const std::string& value) const;
  Result<std::string> read(const std::string& name) const;
  // Moves process `pid` into this cgroup.
  Status add(pid_t pid) const { return write("cgroup.procs", std::to_string(pid)); }
  // The processes in this cgroup and every cgroup below it.
  std::vector<pid_t> processes() const;
  // Whether any process is in it (cgroup.events "populated", else the list).
  bool populated() const;
  // SIGKILL to every process in it and below: cgroup.kill where the
  // kernel has it (v2), else kill(2) of the listed processes until none is
  // left. Waits up to `timeout_ms` for them to be gone.
  Status kill_all(int timeout_ms) const;
  // Removes the directory and empty ones below it.
  Status remove() const;

private:
  std::string m_path;
  UniqueFd m_fd;
};

} // namespace vu
