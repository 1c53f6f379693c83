// Namespaces and processes: clone3 into new namespaces and a cgroup,
// pidfds, joining a process's namespaces, and telling a process from a
// later one that got its pid.
#pragma once

#include "kernel/fd.h"
#include "kernel/result.h"

#include <cstdint>
#include <string>
#include <sys/types.h>

namespace vu {

// A child made by clone3: its pid (in our namespace) and a pidfd.
struct Child {
  pid_t pid = -1;
  UniqueFd pidfd;
};

// clone3(2) with `ns_flags` (CLONE_NEW*), a pidfd, and - when `cgroup_fd`
// is a cgroup2 directory - born inside that cgroup (CLONE_INTO_CGROUP),
// so not one instruction of the child runs outside it. In the child the
// result has pid 0 (and no pidfd); the parent death signal is SIGKILL
// when `die_with_parent`.
enum class DieWithParent : bool { no = false, yes = true };
Result<Child> clone_into(uint64_t ns_flags, int cgroup_fd, DieWithParent die_with_parent);

// pidfd_open(2).
Result<UniqueFd> open_pidfd(pid_t pid);
// setns(2) on a pidfd for the namespaces in `ns_flags` at once.
Status join_namespaces(int pidfd, uint64_t ns_flags);
// Waits for `pid` (a child) and returns its wait status as a shell does:
// the exit code, or 128 + the signal.
Result<int> wait_exit_code(pid_t pid);

// The start time of a process in clock ticks since boot (/proc/PID/stat,
// field 22): with the pid it names one process for good, even after the
// pid is reused. ESRCH when there is no such process, or when it has
// ended and waits to be reaped (a zombie).
Result<uint64_t> process_start_ticks(pid_t pid);
// The boot id of this kernel boot (/proc/sys/kernel/random/boot_id): state
// written before a reboot names processes of another boot.
std::string boot_id();

// Closes every descriptor from `first` up (close_range).
void close_descriptors_from(int first);

// fork(2), stdio flushed first, with a child that is killed (SIGKILL) when
// this process ends (PR_SET_PDEATHSIG; one whose parent is already gone
// exits at once with 126). 0 in the child, its pid in the parent.
Result<pid_t> fork_dying_with_parent();

} // namespace vu
