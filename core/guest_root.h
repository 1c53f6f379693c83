// The file system a guest sees, built in its new mount namespace:
//
//   /       a recursive bind of the guest's root (a mount point of its own,
//           so pivot_root can make it the root)
//   /proc   a new proc for the guest's PID namespace; kcore, kmsg,
//           sysrq-trigger, keys, timer_list, sched_debug, latency_stats and
//           the kpage* files covered by /dev/null, acpi and scsi by empty
//           read-only directories, sys, bus, fs and irq read-only (the
//           kernel's settings - core_pattern among them - are not the
//           guest's to change)
//   /dev    a new tmpfs with null zero full random urandom tty, ptmx and
//           pts (a devpts instance of its own), shm, mqueue, console
//           (/dev/null), the fd links - and no disk
//   /sys    sysfs, read-only
//
// then pivot_root into it with the old root detached, so nothing of the
// host is left reachable, not even through "..". Every mount point is
// found beneath the guest root without following symlinks (kernel/mount.h):
// a guest whose /proc is a symlink to / gets an error, not the host's root.
#pragma once

#include "kernel/result.h"

namespace vu {

// In the new mount namespace (its mounts private), `root` an O_PATH
// descriptor of the guest's root directory. Afterwards "/" is the guest.
Status enter_guest_root(int root);

} // namespace vu
