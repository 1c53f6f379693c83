// Running the suite's programs and commands in guests (see programs.h).
#include "tools/common/programs.h"

#include "core/runtime.h"
#include "kernel/fd.h"
#include "kernel/ns.h"

#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <thread>

namespace vu {

std::string sibling_program(const std::string& tool) {
  char self[4096];
  ssize_t n = ::readlink("/proc/self/exe", self, sizeof self - 1);
  std::string dir = n > 0 ? std::string(self, static_cast<size_t>(n)) : std::string();
  dir = dir.substr(0, dir.rfind('/'));
  std::string bin = dir + "/" + tool;
  if (dir.empty() || ::access(bin.c_str(), X_OK) != 0) bin = "/usr/sbin/" + tool;
  return bin;
}

Result<ProgramOutput> run_host_program(const std::vector<std::string>& argv, size_t max_bytes) {
  if (argv.empty()) return described_error(EINVAL, "no program");
  int p[2];
  if (::pipe2(p, O_CLOEXEC) != 0) return make_error(errno, "pipe");
  UniqueFd r(p[0]), w(p[1]);
  std::vector<char*> a;
  for (const auto& s : argv) a.push_back(const_cast<char*>(s.c_str()));
  a.push_back(nullptr);
  std::fflush(nullptr);
  pid_t pid = ::fork();
  if (pid < 0) return make_error(errno, "fork");
  if (pid == 0) {
    int null = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (null >= 0) ::dup2(null, 0);
    ::dup2(w.get(), 1);
    ::execv(a[0], a.data());
    ::_exit(127);
  }
  w.reset();
  ProgramOutput result;
  bool too_much = false;
  char buf[65536];
  for (ssize_t n; (n = ::read(r.get(), buf, sizeof buf)) != 0;) {
    if (n < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (result.out.size() + static_cast<size_t>(n) > max_bytes) too_much = true;
    if (!too_much) result.out.append(buf, static_cast<size_t>(n));
  }
  VU_TRY_ASSIGN(code, wait_exit_code(pid));
  result.exit_code = code;
  if (too_much)
    return described_error(EFBIG,
                           argv[0] + " wrote more than " + std::to_string(max_bytes) + " bytes");
  return result;
}

Result<int> run_in_guest_reading(const VServerConfig& config, const std::vector<std::string>& argv,
                                 const std::function<Status(std::string_view)>& sink) {
  int p[2];
  if (::pipe2(p, O_CLOEXEC) != 0) return make_error(errno, "pipe");
  UniqueFd r(p[0]), w(p[1]);
  std::atomic<bool> ended{false};
  Result<int> code = Error{};
  // The command runs on a thread; this one reads, so a full pipe never
  // stops the command. Once the command has ended, whatever a leftover
  // process of the guest still holds open is not waited for.
  std::thread runner([&] {
    code = run_in_guest_context(config, argv, w.get());
    w.reset();
    ended = true;
  });
  Status sunk;
  char buf[65536];
  for (;;) {
    pollfd pfd{r.get(), POLLIN, 0};
    int ready = ::poll(&pfd, 1, 100);
    if (ready < 0 && errno != EINTR) break;
    if (ready <= 0) {
      if (ended) break;
      continue;
    }
    ssize_t n = ::read(r.get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    if (sunk.ok()) sunk = sink(std::string_view(buf, static_cast<size_t>(n)));
  }
  runner.join();
  if (!sunk.ok()) return sunk.error();
  return code;
}

} // namespace vu
