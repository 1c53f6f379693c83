// Confining a process to a guest: what every process that enters a guest
// - its init, each `vserver NAME exec` - goes through, in this order,
// after it has joined the guest's namespaces and cgroup and before it runs
// a single instruction of the guest's code:
//
//  1. a seccomp filter (seccomp_rules.h, compiled at build time) that
//     refuses the calls a guest has no business making (modules, kexec,
//     handles, BPF, perf, keyrings, mounts, user namespaces, terminal
//     injection), for every x86 ABI;
//  2. the capabilities cut to the guest's set (kernel/caps.h), the
//     bounding set included, so no exec gains more;
//  3. a clean environment.
//
// The filter is loaded first because loading it without no_new_privs
// needs CAP_SYS_ADMIN, which step 2 removes. A process being confined cannot be taken over by the
// guest: while it holds more capabilities than the guest's processes,
// ptrace and /proc/PID access are refused to them (and CAP_SYS_PTRACE,
// which would bypass that, is never a guest capability).
#pragma once

#include "core/vserver_config.h"

#include <string>
#include <vector>

namespace vu {

// Steps 1 and 2 for the calling process.
Status confine_to_guest(const VServerConfig& config);

// Step 1 alone (exposed for tests).
Status install_guest_seccomp();

// The environment a guest's processes start with: PATH, HOME, USER,
// LOGNAME, TERM (the caller's, when it is a plain terminal name),
// container=vserver, then apps/init/environment and `extra`.
std::vector<std::string> guest_environment(const VServerConfig& config,
                                           const std::vector<std::string>& extra);

// execve with `env`; returns only on failure.
Status exec_in_place(const std::vector<std::string>& argv, const std::vector<std::string>& env);

} // namespace vu
