// Confining a process to a guest (see confine.h).
#include "core/confine.h"

#include <sched.h>
#include <seccomp.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>

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

class Filter {
public:
  Filter() : m_ctx(seccomp_init(SCMP_ACT_ALLOW)) {}
  ~Filter() {
    if (m_ctx) seccomp_release(m_ctx);
  }
  Filter(const Filter&) = delete;
  Filter& operator=(const Filter&) = delete;
  scmp_filter_ctx get() const { return m_ctx; }

private:
  scmp_filter_ctx m_ctx;
};

Status check(int rc, const std::string& what) {
  if (rc < 0) return make_error(-rc, "seccomp " + what);
  return {};
}

Status add_rules(scmp_filter_ctx ctx) {
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

bool plain_term(const char* t) {
  if (!t || !*t || std::strlen(t) > 64) return false;
  return std::all_of(t, t + std::strlen(t), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.' || c == '_' ||
           c == '+';
  });
}

} // namespace

Status install_guest_seccomp() {
  Filter f;
  if (!f.get()) return described_error(ENOMEM, "seccomp: cannot make a filter");
  // The same rules for 32-bit and x32 calls: otherwise int 0x80 would
  // reach every call the native filter refuses.
  for (uint32_t arch : {SCMP_ARCH_X86, SCMP_ARCH_X32}) {
    int rc = seccomp_arch_add(f.get(), arch);
    if (rc < 0 && rc != -EEXIST) return make_error(-rc, "seccomp architecture");
  }
  VU_TRY(add_rules(f.get()));
  // Without no_new_privs (libseccomp sets it by default): a guest's users
  // must still gain root through su, sudo or passwd, and ping its file
  // capability - within the guest's bounding set. Loading a filter without
  // it needs CAP_SYS_ADMIN, which this process still holds.
  VU_TRY(check(seccomp_attr_set(f.get(), SCMP_FLTATR_CTL_NNP, 0), "no_new_privs"));
  return check(seccomp_load(f.get()), "load");
}

Status confine_to_guest(const VServerConfig& config) {
  VU_TRY(install_guest_seccomp());
  return restrict_capabilities(config.capabilities);
}

std::vector<std::string> guest_environment(const VServerConfig& config,
                                           const std::vector<std::string>& extra) {
  std::vector<std::string> env{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                               "HOME=/root", "USER=root", "LOGNAME=root", "container=vserver"};
  const char* term = std::getenv("TERM");
  env.push_back(std::string("TERM=") + (plain_term(term) ? term : "dumb"));
  for (const auto& e : config.environment) env.push_back(e);
  for (const auto& e : extra) env.push_back(e);
  return env;
}

Status exec_in_place(const std::vector<std::string>& argv, const std::vector<std::string>& env) {
  if (argv.empty()) return described_error(EINVAL, "no command");
  std::vector<char*> a, e;
  for (const auto& s : argv) a.push_back(const_cast<char*>(s.c_str()));
  a.push_back(nullptr);
  for (const auto& s : env) e.push_back(const_cast<char*>(s.c_str()));
  e.push_back(nullptr);
  // The guest's PATH, not ours: a bare name is looked up in the guest.
  if (argv[0].find('/') == std::string::npos) {
    for (const char* dir :
         {"/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"}) {
      std::string p = std::string(dir) + "/" + argv[0];
      if (::access(p.c_str(), X_OK) == 0) {
        ::execve(p.c_str(), a.data(), e.data());
        break;
      }
    }
    return make_error(ENOENT, "exec " + argv[0]);
  }
  ::execve(argv[0].c_str(), a.data(), e.data());
  return make_error(errno, "exec " + argv[0]);
}

} // namespace vu
