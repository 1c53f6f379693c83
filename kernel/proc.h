// What /proc tells about other processes: who waits for a file lease, and
// which directory a process sees as its root. Knows nothing of guests.
#pragma once

#include "kernel/result.h"

#include <cstdint>
#include <string_view>
#include <sys/types.h>
#include <vector>

namespace vu {

// The processes waiting in open() (or truncate) for a lease that process
// `holder` holds on the inode (dev, ino), as /proc/locks lists them ("->"
// lines under the lease). Empty when there are none or /proc/locks cannot
// be read.
std::vector<pid_t> lease_waiters(pid_t holder, uint64_t dev, uint64_t ino);
// Parses /proc/locks text (exposed for tests and fuzzing).
std::vector<pid_t> parse_lease_waiters(std::string_view text, pid_t holder, uint64_t dev,
                                       uint64_t ino);

// (dev, ino) of the root directory of process `pid` (/proc/PID/root); a
// process in a chroot or a mount namespace whose root is a guest's root
// directory gives that directory's identity. ESRCH when it has exited.
Result<std::pair<uint64_t, uint64_t>> process_root(pid_t pid);

} // namespace vu
