// Confining a process to a guest (see confine.h).
#include "core/confine.h"

#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>

namespace vu {

namespace {

// The guest's seccomp rules as a BPF program (seccomp_rules.h), made by the
// build's vu-seccomp-gen.
#include "core/guest_seccomp.inc"

bool plain_term(const char* t) {
  if (!t || !*t || std::strlen(t) > 64) return false;
  return std::all_of(t, t + std::strlen(t), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.' || c == '_' ||
           c == '+';
  });
}

} // namespace

Status install_guest_seccomp() {
  sock_fprog prog{static_cast<unsigned short>(std::size(k_guest_filter)),
                  const_cast<sock_filter*>(k_guest_filter)};
  // Flags 0: no thread sync (one thread here), and no_new_privs stays as it
  // is (clear): see seccomp_rules.h.
  if (::syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) != 0)
    return make_error(errno, "load the seccomp filter");
  return {};
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
