// A guest's network (see guest_net.h).
#include "core/guest_net.h"

#include "kernel/ns.h"

#include <fcntl.h>
#include <net/if.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>

namespace vu {

namespace {

const char* ip_binary() {
  for (const char* p : {"/usr/sbin/ip", "/usr/bin/ip", "/sbin/ip", "/bin/ip"})
    if (::access(p, X_OK) == 0) return p;
  return nullptr;
}

// Runs `ip args...`, inside the network namespace of `netns_pidfd` when it
// is >= 0. Its output goes to our stderr only when it fails.
Status run_ip(const std::vector<std::string>& args, int netns_pidfd) {
  const char* ip = ip_binary();
  if (!ip)
    return described_error(ENOENT, "iproute2's ip is not installed (apt-get install iproute2)");
  int err[2];
  if (::pipe2(err, O_CLOEXEC) != 0) return make_error(errno, "pipe");
  pid_t pid = ::fork();
  if (pid < 0) return make_error(errno, "fork");
  if (pid == 0) {
    if (netns_pidfd >= 0 && ::setns(netns_pidfd, CLONE_NEWNET) != 0) ::_exit(126);
    ::dup2(err[1], 1);
    ::dup2(err[1], 2);
    std::vector<char*> argv{const_cast<char*>(ip)};
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    char* env[] = {nullptr};
    ::execve(ip, argv.data(), env);
    ::_exit(127);
  }
  ::close(err[1]);
  std::string out;
  char buf[512];
  ssize_t n;
  while ((n = ::read(err[0], buf, sizeof buf)) > 0 && out.size() < 4096)
    out.append(buf, static_cast<size_t>(n));
  ::close(err[0]);
  VU_TRY_ASSIGN(code, wait_exit_code(pid));
  if (code == 0) return {};
  while (!out.empty() && out.back() == '\n') out.pop_back();
  std::string cmd = "ip";
  for (const auto& a : args) cmd += " " + a;
  return described_error(EIO, cmd + ": " + (out.empty() ? "exit " + std::to_string(code) : out));
}

std::string temp_name(pid_t pid, size_t index) {
  return "vst" + std::to_string(pid % 10000000) + "." + std::to_string(index % 100);
}

Status create_device(const VServerConfig& c, const InterfaceConfig& i, pid_t pid, size_t index) {
  const std::string tmp = temp_name(pid, index);
  if (!i.dev.empty())
    return run_ip({"link", "add", "link", i.dev, "name", tmp, "type", "macvlan", "mode", "bridge"},
                  -1);
  const std::string host = host_veth_name(c, pid, index);
  VU_TRY(run_ip({"link", "add", host, "type", "veth", "peer", "name", tmp}, -1));
  return run_ip({"link", "set", host, "up"}, -1);
}

} // namespace

std::string host_veth_name(const VServerConfig& config, pid_t pid, size_t index) {
  const std::string id = config.context ? std::to_string(config.context) : std::to_string(pid);
  return ("vs" + id).substr(0, 12) + "." + std::to_string(index % 100);
}

Status bring_up_loopback() {
  int s = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (s < 0) return make_error(errno, "socket");
  ifreq req{};
  std::strncpy(req.ifr_name, "lo", IFNAMSIZ - 1);
  Status r;
  if (::ioctl(s, SIOCGIFFLAGS, &req) != 0) r = make_error(errno, "lo flags");
  req.ifr_flags = static_cast<short>(req.ifr_flags | IFF_UP | IFF_RUNNING);
  if (r.ok() && ::ioctl(s, SIOCSIFFLAGS, &req) != 0) r = make_error(errno, "bring lo up");
  ::close(s);
  return r;
}

Status configure_interfaces(const VServerConfig& config, pid_t pid, int pidfd) {
  for (size_t n = 0; n < config.interfaces.size(); ++n) {
    const InterfaceConfig& i = config.interfaces[n];
    const std::string addr = i.ip + "/" + std::to_string(i.prefix);
    if (i.nodev) {
      VU_TRY(run_ip({"addr", "add", addr, "dev", "lo"}, pidfd));
      continue;
    }
    VU_TRY(create_device(config, i, pid, n));
    const std::string tmp = temp_name(pid, n);
    auto moved = run_ip({"link", "set", tmp, "netns", std::to_string(pid)}, -1);
    if (!moved.ok()) {
      (void)run_ip({"link", "del", tmp}, -1);
      return moved;
    }
    VU_TRY(run_ip({"link", "set", tmp, "name", i.name}, pidfd));
    VU_TRY(run_ip({"addr", "add", addr, "dev", i.name}, pidfd));
    if (!i.down) VU_TRY(run_ip({"link", "set", i.name, "up"}, pidfd));
  }
  return {};
}

} // namespace vu
