// Capability names and sets (see caps.h).
#include "kernel/caps.h"

#include "kernel/fs.h"

#include <linux/capability.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>

namespace vu {

namespace {

// Names as capabilities(7) spells them, by number.
constexpr const char* k_names[] = {"CHOWN",
                                   "DAC_OVERRIDE",
                                   "DAC_READ_SEARCH",
                                   "FOWNER",
                                   "FSETID",
                                   "KILL",
                                   "SETGID",
                                   "SETUID",
                                   "SETPCAP",
                                   "LINUX_IMMUTABLE",
                                   "NET_BIND_SERVICE",
                                   "NET_BROADCAST",
                                   "NET_ADMIN",
                                   "NET_RAW",
                                   "IPC_LOCK",
                                   "IPC_OWNER",
                                   "SYS_MODULE",
                                   "SYS_RAWIO",
                                   "SYS_CHROOT",
                                   "SYS_PTRACE",
                                   "SYS_PACCT",
                                   "SYS_ADMIN",
                                   "SYS_BOOT",
                                   "SYS_NICE",
                                   "SYS_RESOURCE",
                                   "SYS_TIME",
                                   "SYS_TTY_CONFIG",
                                   "MKNOD",
                                   "LEASE",
                                   "AUDIT_WRITE",
                                   "AUDIT_CONTROL",
                                   "SETFCAP",
                                   "MAC_OVERRIDE",
                                   "MAC_ADMIN",
                                   "SYSLOG",
                                   "WAKE_ALARM",
                                   "BLOCK_SUSPEND",
                                   "AUDIT_READ",
                                   "PERFMON",
                                   "BPF",
                                   "CHECKPOINT_RESTORE"};
constexpr int k_known = static_cast<int>(sizeof k_names / sizeof k_names[0]);

int last_cap() {
  static const int last = [] {
    auto text = read_host_file("/proc/sys/kernel/cap_last_cap", 64);
    if (!text.ok()) return k_known - 1;
    int v = std::atoi(text->c_str());
    return v > 0 && v < 64 ? v : k_known - 1;
  }();
  return last;
}

} // namespace

std::optional<int> capability_by_name(std::string_view name) {
  std::string upper;
  for (char c : name) upper += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  if (upper.rfind("CAP_", 0) == 0) upper.erase(0, 4);
  for (int i = 0; i < k_known; ++i)
    if (upper == k_names[i]) return i;
  return std::nullopt;
}

std::string capability_name(int cap) {
  if (cap >= 0 && cap < k_known) return std::string("CAP_") + k_names[cap];
  return "CAP_" + std::to_string(cap);
}

CapMask all_capabilities() {
  const int last = last_cap();
  return last >= 63 ? ~CapMask(0) : (cap_bit(last + 1) - 1);
}

std::string capability_list(CapMask mask) {
  std::string out;
  for (int c = 0; c < 64; ++c)
    if (mask & cap_bit(c)) out += (out.empty() ? "" : ",") + capability_name(c);
  return out;
}

Status restrict_capabilities(CapMask keep) {
  const int last = last_cap();
  for (int c = 0; c <= last; ++c) {
    if ((keep & cap_bit(c)) || c == CAP_SETPCAP) continue;
    if (::prctl(PR_CAPBSET_DROP, c, 0, 0, 0) != 0 && errno != EINVAL)
      return make_error(errno, "drop " + capability_name(c) + " from the bounding set");
  }
  if (!(keep & cap_bit(CAP_SETPCAP)) && ::prctl(PR_CAPBSET_DROP, CAP_SETPCAP, 0, 0, 0) != 0)
    return make_error(errno, "drop CAP_SETPCAP from the bounding set");
  if (::prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0 && errno != EINVAL)
    return make_error(errno, "clear the ambient capabilities");
  __user_cap_header_struct head{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[2] = {};
  for (int i = 0; i < 2; ++i) {
    const auto part = static_cast<uint32_t>(keep >> (32 * i));
    data[i].effective = data[i].permitted = data[i].inheritable = part;
  }
  if (::syscall(SYS_capset, &head, data) != 0) return make_error(errno, "capset");
  return {};
}

Result<CapMask> process_capabilities(pid_t pid, std::string_view set) {
  VU_TRY_ASSIGN(text, read_host_file("/proc/" + std::to_string(pid) + "/status", 1 << 16));
  const std::string key = std::string(set) + ":";
  size_t at = 0;
  while (at < text.size()) {
    size_t end = text.find('\n', at);
    if (end == std::string::npos) end = text.size();
    std::string_view line(text.data() + at, end - at);
    if (line.rfind(key, 0) == 0) {
      std::string hex(line.substr(key.size()));
      return static_cast<CapMask>(std::strtoull(hex.c_str(), nullptr, 16));
    }
    at = end + 1;
  }
  return described_error(EINVAL,
                         "no " + std::string(set) + " in /proc/" + std::to_string(pid) + "/status");
}

} // namespace vu
