#include "tests/support/run_program.h"

#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <stdexcept>

extern char** environ;

namespace vu::test {

namespace {

// This process's environment with `extra` added (an entry of `extra` wins:
// getenv finds the first, so it goes first).
struct Environment {
  explicit Environment(const std::vector<std::string>& extra) : store(extra) {
    for (char** e = environ; *e; ++e) store.emplace_back(*e);
    for (auto& e : store) pointers.push_back(const_cast<char*>(e.c_str()));
    pointers.push_back(nullptr);
  }
  std::vector<std::string> store;
  std::vector<char*> pointers;
};

} // namespace

ProgramResult run_program(const std::vector<std::string>& argv,
                          const std::vector<std::string>& extra_env, int timeout_s) {
  int out[2], err[2];
  if (::pipe2(out, O_CLOEXEC) != 0 || ::pipe2(err, O_CLOEXEC) != 0)
    throw std::runtime_error("pipe");
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, out[1], 1);
  posix_spawn_file_actions_adddup2(&fa, err[1], 2);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  std::vector<char*> args;
  for (auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  Environment env(extra_env);
  pid_t pid = 0;
  int rc = ::posix_spawn(&pid, args[0], &fa, nullptr, args.data(), env.pointers.data());
  posix_spawn_file_actions_destroy(&fa);
  ::close(out[1]);
  ::close(err[1]);
  if (rc != 0) throw std::runtime_error("posix_spawn " + argv[0] + ": " + std::strerror(rc));
  ProgramResult r;
  struct pollfd fds[2] = {{out[0], POLLIN, 0}, {err[0], POLLIN, 0}};
  int open_fds = 2;
  char buf[65536];
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_s);
  while (open_fds > 0) {
    int wait_ms = -1;
    if (timeout_s > 0) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      wait_ms = static_cast<int>(std::max<int64_t>(0, left.count()));
    }
    int ready = ::poll(fds, 2, wait_ms);
    if (ready < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (ready == 0 && timeout_s > 0) {
      ::kill(pid, SIGKILL);
      r.timed_out = true;
      for (auto& f : fds)
        if (f.fd >= 0) ::close(f.fd);
      break;
    }
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      ssize_t n = ::read(fds[i].fd, buf, sizeof buf);
      if (n <= 0) {
        ::close(fds[i].fd);
        fds[i].fd = -1;
        --open_fds;
        continue;
      }
      (i == 0 ? r.out : r.err).append(buf, static_cast<size_t>(n));
    }
  }
  int status = 0;
  struct rusage ru {};
  ::wait4(pid, &status, 0, &ru);
  r.status = WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
  r.max_rss_kb = ru.ru_maxrss;
  return r;
}

namespace {
ProgramResult run_bin(const char* bin, const std::vector<std::string>& args,
                      const std::vector<std::string>& extra_env = {}) {
  std::vector<std::string> argv{bin};
  argv.insert(argv.end(), args.begin(), args.end());
  return run_program(argv, extra_env);
}
} // namespace

ProgramResult run_vunify(const std::vector<std::string>& args,
                         const std::vector<std::string>& extra_env) {
  return run_bin(VUNIFY_BIN, args, extra_env);
}
ProgramResult run_vhashify(const std::vector<std::string>& args,
                           const std::vector<std::string>& extra_env) {
  return run_bin(VHASHIFY_BIN, args, extra_env);
}
ProgramResult run_vdu(const std::vector<std::string>& args,
                      const std::vector<std::string>& extra_env) {
  return run_bin(VDU_BIN, args, extra_env);
}
ProgramResult run_setattr(const std::vector<std::string>& args) {
  return run_bin(SETATTR_BIN, args);
}
ProgramResult run_showattr(const std::vector<std::string>& args) {
  return run_bin(SHOWATTR_BIN, args);
}
ProgramResult run_vbarrier(const std::vector<std::string>& args) {
  return run_bin(VBARRIER_BIN, args);
}

pid_t spawn_quiet(const std::vector<std::string>& argv, const std::vector<std::string>& extra_env) {
  std::vector<char*> a;
  for (auto& s : argv) a.push_back(const_cast<char*>(s.c_str()));
  a.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
  pid_t pid = 0;
  Environment env(extra_env);
  int rc = ::posix_spawn(&pid, a[0], &fa, nullptr, a.data(), env.pointers.data());
  posix_spawn_file_actions_destroy(&fa);
  return rc == 0 ? pid : -1;
}

nlohmann::json json_of(const ProgramResult& r) {
  try {
    return nlohmann::json::parse(r.out);
  } catch (const std::exception& e) {
    ADD_FAILURE() << "not JSON (" << e.what() << "), exit " << r.status << "\nstdout: " << r.out
                  << "\nstderr: " << r.err;
    return {};
  }
}

bool fs_exists(const std::string& path) {
  struct stat st {};
  return ::lstat(path.c_str(), &st) == 0;
}

bool same_inode(const std::string& a, const std::string& b) {
  struct stat x {
  }, y{};
  return ::lstat(a.c_str(), &x) == 0 && ::lstat(b.c_str(), &y) == 0 && x.st_dev == y.st_dev &&
         x.st_ino == y.st_ino;
}

bool KillDelay::kill_after_delay(int pid) {
  ::usleep(static_cast<useconds_t>(std::uniform_real_distribution<double>(0, m_window)(m_rng)));
  ::kill(pid, SIGKILL);
  int status = 0;
  ::waitpid(pid, &status, 0);
  bool killed = WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL;
  if (!killed) m_window *= 0.85;
  return killed;
}

} // namespace vu::test
