// The guest's seccomp rules (see seccomp_rules.h).
#include "core/seccomp_rules.h"

#include <sched.h>
#include <sys/ioctl.h>

#include <string>

namespace vu {

namespace {

// Calls refused with EPERM. Most already need a capability a guest does
// not have; the filter is the second wall, and covers what needs none
// (keyrings, userfaultfd, perf with a permissive sysctl).
constexpr const char* k_refused[] = {"kexec_load",
                                     "kexec_file_load",
                                     "init_module",
                                     "finit_module",
                                     "delete_module",
                                     "open_by_handle_at",
                                     "name_to_handle_at",
                                     "bpf",
                                     "perf_event_open",
                                     "iopl",
                                     "ioperm",
                                     "swapon",
                                     "swapoff",
                                     "acct",
                                     "add_key",
                                     "keyctl",
                                     "request_key",
                                     "userfaultfd",
                                     "mount",
                                     "umount2",
                                     "pivot_root",
                                     "fsopen",
                                     "fsconfig",
                                     "fsmount",
                                     "fspick",
                                     "move_mount",
                                     "open_tree",
                                     "mount_setattr",
                                     "lookup_dcookie",
                                     "syslog",
                                     "settimeofday",
                                     "clock_settime",
                                     "clock_adjtime",
                                     "uselib",
                                     "nfsservctl",
                                     "quotactl",
                                     "setns",
                                     "vhangup"};

Status check(int rc, const std::string& what) {
  if (rc < 0) return make_error(-rc, "seccomp " + what);
  return {};
}

Status add_calls(scmp_filter_ctx ctx) {
  for (const char* name : k_refused) {
    int nr = seccomp_syscall_resolve_name(name);
    if (nr == __NR_SCMP_ERROR) continue; // not on this architecture
    VU_TRY(check(seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), nr, 0), name));
  }
  // New user namespaces would give a guest process every capability again
  // inside them. clone3 passes its flags in memory a filter cannot read:
  // ENOSYS makes the C library fall back to clone.
  VU_TRY(check(seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(unshare), 1,
                                SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_NEWUSER, CLONE_NEWUSER)),
               "unshare"));
  VU_TRY(check(seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(clone), 1,
                                SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_NEWUSER, CLONE_NEWUSER)),
               "clone"));
  VU_TRY(check(seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0), "clone3"));
  // Pushing characters into a terminal's input (TIOCSTI) would type
  // commands into the shell of whoever ran `vserver NAME exec`.
  for (unsigned long req :
       {static_cast<unsigned long>(TIOCSTI), static_cast<unsigned long>(TIOCLINUX)})
    VU_TRY(check(seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(ioctl), 1,
                                  SCMP_A1(SCMP_CMP_MASKED_EQ, 0xffffffffUL, req)),
                 "ioctl"));
  return {};
}

} // namespace

Status add_guest_rules(scmp_filter_ctx ctx) {
  for (uint32_t arch : {SCMP_ARCH_X86, SCMP_ARCH_X32}) {
    int rc = seccomp_arch_add(ctx, arch);
    if (rc < 0 && rc != -EEXIST) return make_error(-rc, "seccomp architecture");
  }
  VU_TRY(add_calls(ctx));
  return check(seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 0), "no_new_privs");
}

} // namespace vu
