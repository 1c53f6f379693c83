// Control groups (see cgroup.h).
#include "kernel/cgroup.h"

#include "kernel/fs.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <thread>

namespace vu {

namespace {

bool is_cgroup2(const std::string& path) {
  struct statfs fs {};
  return ::statfs(path.c_str(), &fs) == 0 && fs.f_type == CGROUP2_SUPER_MAGIC;
}

} // namespace

Result<std::string> cgroup2_root(const std::string& fallback) {
  for (const char* p : {"/sys/fs/cgroup", "/sys/fs/cgroup/unified"})
    if (is_cgroup2(p)) return std::string(p);
  if (is_cgroup2(fallback)) return fallback;
  if (::mkdir(fallback.c_str(), 0755) != 0 && errno != EEXIST)
    return make_error(errno, "mkdir " + fallback);
  if (::mount("cgroup2", fallback.c_str(), "cgroup2", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr) !=
      0)
    return make_error(errno, "mount cgroup2 on " + fallback);
  return fallback;
}

std::string cgroup1_mount(const std::string& controller) {
  for (const auto& m : mountinfo())
    if (m.type == "cgroup" && has_mount_option(m.super_options, controller)) return m.mount_point;
  return {};
}

Result<Cgroup> Cgroup::open(const std::string& path, bool create) {
  if (create && ::mkdir(path.c_str(), 0755) != 0 && errno != EEXIST)
    return make_error(errno, "mkdir " + path);
  int fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return make_error(errno, "open " + path);
  Cgroup c;
  c.m_path = path;
  c.m_fd = UniqueFd(fd);
  return c;
}

Status Cgroup::write(const std::string& name, const std::string& value) const {
  if (!is_plain_name(name)) return described_error(EINVAL, "bad cgroup file " + name);
  int fd = ::openat(m_fd.get(), name.c_str(), O_WRONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return make_error(errno, m_path + "/" + name);
  UniqueFd f(fd);
  if (::write(fd, value.data(), value.size()) != static_cast<ssize_t>(value.size()))
    return make_error(errno, "write " + value + " to " + m_path + "/" + name);
  return {};
}

Result<std::string> Cgroup::read(const std::string& name) const {
  if (!is_plain_name(name)) return described_error(EINVAL, "bad cgroup file " + name);
  int fd = ::openat(m_fd.get(), name.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return make_error(errno, m_path + "/" + name);
  UniqueFd f(fd);
  return read_to_end(fd, 1 << 20, m_path + "/" + name);
}

std::vector<pid_t> Cgroup::processes() const {
  std::vector<pid_t> out;
  auto procs = read("cgroup.procs");
  if (procs.ok()) {
    const char* p = procs->c_str();
    char* end = nullptr;
    for (long v = std::strtol(p, &end, 10); end != p; v = std::strtol(p, &end, 10)) {
      out.push_back(static_cast<pid_t>(v));
      p = end;
    }
  }
  auto entries = read_directory(m_fd.get());
  if (!entries.ok()) return out;
  for (const auto& e : *entries) {
    if (e.type != DT_DIR) continue;
    auto child = Cgroup::open(m_path + "/" + e.name, false);
    if (!child.ok()) continue;
    for (pid_t pid : child->processes()) out.push_back(pid);
  }
  return out;
}

bool Cgroup::populated() const {
  auto events = read("cgroup.events");
  if (events.ok()) return events->find("populated 1") != std::string::npos;
  return !processes().empty();
}

Status Cgroup::kill_all(int timeout_ms) const {
  const bool has_kill = write("cgroup.kill", "1").ok();
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (populated()) {
    if (!has_kill)
      for (pid_t pid : processes()) ::kill(pid, SIGKILL);
    if (std::chrono::steady_clock::now() > deadline)
      return described_error(EBUSY, "processes of " + m_path + " are still there after SIGKILL");
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return {};
}

Status Cgroup::remove() const {
  auto entries = read_directory(m_fd.get());
  if (entries.ok())
    for (const auto& e : *entries) {
      if (e.type != DT_DIR) continue;
      auto child = Cgroup::open(m_path + "/" + e.name, false);
      if (child.ok()) (void)child->remove();
    }
  if (::rmdir(m_path.c_str()) != 0 && errno != ENOENT) return make_error(errno, "rmdir " + m_path);
  return {};
}

} // namespace vu
