// A package manager of the host's working on a stopped guest (vrpm
// --host-rpm), util-vserver's rpm-fake way done safely: the program runs
// on the host under libvu-preload.so (pkgmgmt/preload) in its broker mode.
//
//   - The program must be a regular file of root's, not writable by group
//     or others, not set-uid or set-gid, and dynamically linked (an ELF
//     with an interpreter): a static program would ignore LD_PRELOAD.
//     Anything else is refused before it runs.
//   - It runs in a mount namespace of its own, where `mounts` (an external
//     database) are attached beneath the guest's root; its environment is
//     made here (LD_PRELOAD, VU_PRELOAD_ROOT, VU_PRELOAD_BROKER, LC_ALL=C,
//     PATH, HOME), nothing of the caller's.
//   - User and group lookups come from the guest's files; every exec -
//     rpm's scriptlets - is sent over a socket to this process, which runs
//     it in the guest's context (core/runtime.h) and answers with its
//     status. The library forbids execve/execveat in the program with a
//     seccomp filter, so a direct system call runs nothing on the host.
//
// The guest must stay stopped meanwhile (a running guest is refused: the
// program resolves paths beneath the guest root on the host). Output (the
// program's and the commands') goes to `output_fd`, or to `sink` when set.
#pragma once

#include "core/guest_root.h"
#include "core/vserver_config.h"
#include "kernel/result.h"

#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace vu {

struct HostManagerRun {
  std::string program; // absolute path
  std::vector<std::string> args;
  std::vector<ContextDir> mounts;
  int output_fd = 1;
  std::function<Status(std::string_view)> sink;
};

// The program's exit status (128 + signal when killed).
Result<int> run_host_manager(const VServerConfig& c, const HostManagerRun& run);

// The checks above on `program` (exposed for tests).
Status check_host_program(const std::string& program);

// libvu-preload.so: beside the build tree's programs, else installed
// (<prefix>/lib/vunify/), checked to be root's and not writable by others.
Result<std::string> preload_library();

} // namespace vu
