// A guest's control groups: <cgroup2>/<parent>/<name> for membership,
// killing and the cgroup namespace, and the limits of cgroup/ in the
// configuration - written to cgroup2 where its controller is enabled
// there, else to <v1 hierarchy>/<parent>/<name> of the hierarchy that
// holds the controller (this machine's hybrid layout). The parent group
// is $VSERVER_CGROUP, else "vservers".
#pragma once

#include "core/vserver_config.h"
#include "kernel/cgroup.h"

#include <string>
#include <vector>

namespace vu {

struct GuestCgroups {
  Cgroup v2;
  std::vector<Cgroup> v1; // one per v1 hierarchy that got a limit
  std::vector<std::string> notices;
};

// The cgroup2 group every guest's group is in (made when missing).
Result<Cgroup> guests_parent_cgroup();

// Makes (or reuses, when empty) the guest's groups and writes its limits.
// Refuses a group that still has processes: the guest runs, or a
// previous run left processes behind.
Result<GuestCgroups> make_guest_cgroups(const VServerConfig& config);
// The groups of a running guest as the state recorded them.
Result<GuestCgroups> open_guest_cgroups(const std::string& v2, const std::vector<std::string>& v1);

// Moves `pid` into every group of `g`.
Status join_guest_cgroups(const GuestCgroups& g, pid_t pid);
// Kills everything in the guest's groups and removes them.
Status remove_guest_cgroups(const GuestCgroups& g);

// A v1 knob as cgroup2 spells it: memory.limit_in_bytes -> memory.max,
// memory.memsw.limit_in_bytes -> memory.swap.max (roughly), cpu.shares ->
// cpu.weight (value scaled), pids.max -> pids.max. Empty when it has no
// cgroup2 form.
std::pair<std::string, std::string> cgroup2_knob(const std::string& knob, const std::string& value);

} // namespace vu
