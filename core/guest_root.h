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

#include <string>
#include <vector>

namespace vu {

// A directory of the host's shown in a guest's context for one command
// (core/runtime.h, run_in_guest_context): `tree` is a detached mount of it
// (kernel/mount.h: clone_mount, then set_mount_attr), attached over
// `target`, a directory beneath the guest's root given relative to it and
// reached without following symlinks (it must exist). A tree is attached
// once: run_in_guest_context makes the trees from ContextDir each call.
struct ContextMount {
  int tree = -1;
  std::string target;
};

// What a caller of run_in_guest_context gives: the host's directory `dir`
// (an open descriptor) to show at `target` with the mount attributes `attr`
// (MOUNT_ATTR_*).
struct ContextDir {
  int dir = -1;
  std::string target;
  unsigned attr = 0;
};

// `point` the mount point beneath `root` (relative path), without symlinks;
// then attaches `tree` over it.
Status attach_context_mount(int root, const ContextMount& m);

// In the new mount namespace (its mounts private), `root` an O_PATH
// descriptor of the guest's root directory; `extra` is attached after
// /proc, /dev and /sys. Afterwards "/" is the guest.
Status enter_guest_root(int root, const std::vector<ContextMount>& extra = {});

} // namespace vu
