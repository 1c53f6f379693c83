// Namespaces and processes (see ns.h).
#include "kernel/ns.h"

#include "kernel/fs.h"

#include <linux/close_range.h>
#include <linux/sched.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace vu {

Result<Child> clone_into(uint64_t ns_flags, int cgroup_fd, DieWithParent die_with_parent) {
  int pidfd = -1;
  clone_args args{};
  args.flags = ns_flags | CLONE_PIDFD;
  args.pidfd = reinterpret_cast<uint64_t>(&pidfd);
  args.exit_signal = SIGCHLD;
  if (cgroup_fd >= 0) {
    args.flags |= CLONE_INTO_CGROUP;
    args.cgroup = static_cast<uint64_t>(cgroup_fd);
  }
  const pid_t parent = ::getpid();
  long pid = ::syscall(SYS_clone3, &args, sizeof args);
  if (pid < 0) return make_error(errno, "clone3");
  Child c;
  c.pid = static_cast<pid_t>(pid);
  if (pid == 0) {
    if (die_with_parent == DieWithParent::yes) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      // The parent may have died before the line above: then nobody is
      // there to be tied to.
      if (::getppid() != parent && !(ns_flags & CLONE_NEWPID)) ::_exit(127);
    }
    return c;
  }
  c.pidfd = UniqueFd(pidfd);
  return c;
}

Result<UniqueFd> open_pidfd(pid_t pid) {
  long fd = ::syscall(SYS_pidfd_open, pid, 0);
  if (fd < 0) return make_error(errno, "pidfd_open " + std::to_string(pid));
  return UniqueFd(static_cast<int>(fd));
}

Status join_namespaces(int pidfd, uint64_t ns_flags) {
  if (::setns(pidfd, static_cast<int>(ns_flags)) != 0) return make_error(errno, "setns");
  return {};
}

Result<int> wait_exit_code(pid_t pid) {
  int status = 0;
  for (;;) {
    pid_t r = ::waitpid(pid, &status, 0);
    if (r == pid) break;
    if (r < 0 && errno != EINTR) return make_error(errno, "waitpid");
  }
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return 255;
}

Result<uint64_t> process_start_ticks(pid_t pid) {
  auto text = read_host_file("/proc/" + std::to_string(pid) + "/stat", 4096);
  if (!text.ok())
    return make_error(text.code() == ENOENT ? ESRCH : text.code(),
                      "process " + std::to_string(pid));
  // The command name (field 2) is in parentheses and may hold anything,
  // spaces and ')' included: fields are counted from the last ')'.
  size_t close = text->rfind(')');
  if (close == std::string::npos)
    return described_error(EINVAL, "/proc/" + std::to_string(pid) + "/stat: no command name");
  size_t at = close + 1;
  for (int field = 3; field <= 22; ++field) {
    while (at < text->size() && (*text)[at] == ' ') ++at;
    size_t end = text->find(' ', at);
    if (end == std::string::npos) end = text->size();
    // A process that has ended but was not reaped yet (its parent died and
    // the host's PID 1 does not reap) is no longer running.
    if (field == 3 &&
        (text->compare(at, end - at, "Z") == 0 || text->compare(at, end - at, "X") == 0))
      return described_error(ESRCH, "process " + std::to_string(pid) + " has ended");
    if (field == 22) return std::strtoull(text->substr(at, end - at).c_str(), nullptr, 10);
    at = end;
  }
  return described_error(EINVAL, "/proc/" + std::to_string(pid) + "/stat: too few fields");
}

std::string boot_id() {
  auto text = read_host_file("/proc/sys/kernel/random/boot_id", 128);
  if (!text.ok()) return {};
  std::string id = *text;
  while (!id.empty() && (id.back() == '\n' || id.back() == ' ')) id.pop_back();
  return id;
}

Result<pid_t> fork_dying_with_parent() {
  const pid_t parent = ::getpid();
  std::fflush(nullptr);
  pid_t pid = ::fork();
  if (pid < 0) return make_error(errno, "fork");
  if (pid == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(126);
  }
  return pid;
}

void close_descriptors_from(int first) {
  if (::syscall(SYS_close_range, first, ~0U, 0) == 0) return;
  for (int fd = first; fd < 65536; ++fd) ::close(fd);
}

} // namespace vu
