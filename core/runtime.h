// Starting, stopping and entering guests (vserver(8)).
//
// start: under the guest's lock (core/run_state.h), its cgroups are made
// (core/guest_cgroup.h) and its init is cloned straight into them and into
// new mount, PID, UTS, IPC, network and cgroup namespaces. The host
// records the state, gives the guest its network devices
// (core/guest_net.h) and lets the child go on: it builds the guest's file
// system and pivots into it (core/guest_root.h), sets the host name,
// confines itself (core/confine.h) and becomes the guest's init:
//
//   sysv      a minimal init of this suite as PID 1 that runs the guest's
//             /etc/init.d/rc <runlevel> (util-vserver's default) and then
//             only reaps orphans
//   plain     the guest's /sbin/init as PID 1
//   none      like sysv, running apps/init/cmd.start instead of rc
//
// The start command's output is relayed to the caller; its exit status
// is start's. stop runs the stop command (rc <runlevel.stop>, cmd.stop),
// sends the kill sequence (apps/init/killseq: TERM, 5 s, KILL) to every
// process of the guest's cgroup, ends its init (which ends the PID
// namespace) and removes the cgroups and the state: nothing is left.
//
// exec/enter: a process joins the guest's cgroups, then all its
// namespaces at once through a pidfd of the guest's init (checked to be
// the recorded process), forks into the PID namespace, confines itself
// and runs the command. Without a terminal it has none (setsid); with
// one, `enter` and `exec` give it a new pseudo-terminal whose other end
// the host relays, so the guest never holds the caller's terminal.
#pragma once

#include "core/guest_root.h"
#include "core/run_state.h"
#include "core/vserver_config.h"

#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace vu {

// Output of start/stop (the start and stop commands' output) and notices.
struct RuntimeIo {
  int output_fd = 1;
  bool quiet = false;
  // run_in_guest_context: when set, the command's output goes here instead
  // of output_fd, read by the calling thread while the command runs (no
  // other thread is needed; the guest's processes are cloned with clone3,
  // which runs none of glibc's fork handlers, so a thread allocating
  // meanwhile could leave the child a held malloc lock). After the first
  // error it returns, output is read and dropped, and that error is
  // run_in_guest_context's result.
  std::function<Status(std::string_view)> sink;
};

Status start_guest(const VServerConfig& config, const RuntimeIo& io);
// Stopping a guest that is not running succeeds (and says so unless quiet).
Status stop_guest(const VServerConfig& config, const RuntimeIo& io);

struct GuestStatus {
  bool running = false;
  bool stale_cleaned = false; // a stale state was found and removed
  RunState state;
  std::vector<pid_t> processes; // host pids of the guest's processes
};
Result<GuestStatus> guest_status(const std::string& name);

enum class Terminal { none, pty };
// Runs `argv` in the running guest; returns its exit status (128 + signal
// when killed). Empty argv: the guest's shell (`shell`, else bash -login,
// else sh -l).
Result<int> exec_in_guest(const VServerConfig& config, const std::vector<std::string>& argv,
                          Terminal terminal);

// Runs `argv` in the guest's context whether the guest runs or not: in the
// running guest as exec does, or else in a context made for this call
// alone - the guest's namespaces, cgroups, root, network and confinement,
// with the command as the only thing its init runs, and everything the
// command leaves behind ended afterwards (the guest's lock is held for the
// duration: a start meanwhile is refused as busy). stdin is /dev/null;
// stdout and stderr go to io.output_fd or io.sink. Returns the command's
// exit status (128 + signal when killed).
//
// `dirs` (core/guest_root.h) are seen by this command and what it starts
// alone: in the context made for the call, or in a running guest in a copy
// of its mount namespace made for the command, from which they are
// detached when it ends (a daemon it started keeps that copy, not them).
// This is how a package database kept outside the guest is shown to the
// guest's package manager for one transaction.
Result<int> run_in_guest_context(const VServerConfig& config, const std::vector<std::string>& argv,
                                 const RuntimeIo& io, const std::vector<ContextDir>& dirs = {});

} // namespace vu
