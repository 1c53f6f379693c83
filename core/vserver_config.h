// A guest's run configuration, in util-vserver's layout under its
// configuration directory (/etc/vservers/NAME):
//
//   vdir                  the root (guest.h)
//   context               the context number (util-vserver's xid; shown by
//                         vps and vserver-stat, names the cgroup)
//   uts/nodename          host name (legacy: hostname); uts/domainname
//   interfaces/N/         ip, prefix (or mask), dev, name, nodev, down;
//                         dev, prefix and mask in interfaces/ itself are
//                         defaults for every N
//   apps/init/style       sysv (default), plain, or none with cmd.start
//   apps/init/runlevel    (runlevel.start, runlevel.stop): 3 and 6 for sysv
//   apps/init/cmd.start   cmd.stop, cmd.prepare: one argument per line
//   apps/init/killseq     signal, seconds, signal, ... (default 15 5 9)
//   apps/init/environment one VAR=value per line
//   bcapabilities         capabilities to keep besides the default set
//                         (CAP_NET_ADMIN), or to drop ("!CAP_KILL", "~KILL")
//   ccapabilities         util-vserver context capabilities: no mainline
//                         meaning, reported
//   flags                 util-vserver context flags: reported
//   cgroup/KNOB           a cgroup setting, e.g. memory.limit_in_bytes,
//                         pids.max, cpu.shares (v1 names; written as their
//                         cgroup2 equivalents where the controller is there)
//   shell                 the shell of `vserver NAME enter`
//
// Every file is read bounded and without blocking (core/guest.h). A
// setting this suite does not know is reported once (notices), never fatal;
// a value that is malformed is an error naming the file.
#pragma once

#include "core/guest.h"
#include "kernel/caps.h"

#include <string>
#include <utility>
#include <vector>

namespace vu {

struct InterfaceConfig {
  std::string id;   // the directory's name under interfaces/
  std::string ip;   // IPv4 or IPv6 address
  int prefix = -1;  // -1: 32 for IPv4, 128 for IPv6
  std::string dev;  // host device for a macvlan; empty: a veth pair
  std::string name; // the device's name in the guest (default eth<index>)
  bool nodev = false;
  bool down = false;
};

enum class InitStyle { sysv, plain, commands };

struct VServerConfig {
  Guest guest;
  unsigned context = 0; // 0: none configured
  std::string nodename, domainname;
  std::vector<InterfaceConfig> interfaces;
  InitStyle style = InitStyle::sysv;
  std::string runlevel_start, runlevel_stop;
  std::vector<std::string> cmd_start, cmd_stop, cmd_prepare;
  std::vector<std::string> environment;
  std::vector<int> killseq{15, 5, 9};
  CapMask capabilities = 0; // what the guest keeps
  // ccapabilities RAW_ICMP: the guest's unprivileged users may ping (its
  // network namespace's net.ipv4.ping_group_range opened to every group).
  bool raw_icmp = false;
  std::vector<std::pair<std::string, std::string>> cgroup;
  std::vector<std::string> shell;
  std::string mark;                 // apps/init/mark: start-vservers -m
  std::vector<std::string> depends; // apps/init/depends: started before it
  std::vector<std::string> notices; // settings reported, not applied
};

// The capabilities a guest keeps unless bcapabilities says otherwise: what
// a distribution's services need (ownership, uid changes, binding low
// ports, raw sockets, chroot, kill of the guest's own processes) and
// nothing that reaches the host (modules, raw I/O, mounts, the clock,
// immutable flags, device nodes, handles, BPF, ...).
CapMask default_guest_capabilities();
// Capabilities a guest never keeps, whatever bcapabilities says - among
// them CAP_SYS_PTRACE: with it a guest process could attach to a process
// that `vserver NAME exec` moves into the guest before it is confined.
CapMask forbidden_guest_capabilities();

Result<VServerConfig> load_vserver_config(const ConfigBase& base, const std::string& name);

// Parsers, exposed for tests and fuzzing (parse_config_lines: guest.h).
// bcapabilities lines applied to `caps`; unknown names are errors.
Result<CapMask> apply_bcapabilities(CapMask caps, const std::vector<std::string>& lines);

} // namespace vu
