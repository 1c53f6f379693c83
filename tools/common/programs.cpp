// Running the suite's programs and commands in guests (see programs.h).
#include "tools/common/programs.h"

#include "core/runtime.h"
#include "kernel/fd.h"
#include "kernel/ns.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstdio>

namespace vu {

std::string program_dir() {
  char self[4096];
  ssize_t n = ::readlink("/proc/self/exe", self, sizeof self - 1);
  std::string dir = n > 0 ? std::string(self, static_cast<size_t>(n)) : std::string();
  return dir.substr(0, dir.rfind('/'));
}

std::string sibling_program(const std::string& tool) {
  const std::string dir = program_dir();
  std::string bin = dir + "/" + tool;
  if (dir.empty() || ::access(bin.c_str(), X_OK) != 0) bin = "/usr/sbin/" + tool;
  return bin;
}

Result<StartedProgram> start_host_program(const std::vector<std::string>& argv) {
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
  return StartedProgram{argv[0], pid, std::move(r)};
}

Result<int> finish_host_program_into(StartedProgram& started,
                                     const std::function<Status(std::string_view)>& sink) {
  Status delivered;
  char buf[65536];
  for (ssize_t n; (n = ::read(started.out.get(), buf, sizeof buf)) != 0;) {
    if (n < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (delivered.ok()) delivered = sink(std::string_view(buf, static_cast<size_t>(n)));
  }
  started.out.reset();
  VU_TRY_ASSIGN(code, wait_exit_code(started.pid));
  if (!delivered.ok()) return delivered.error();
  return code;
}

Result<ProgramOutput> finish_host_program(StartedProgram& started, size_t max_bytes) {
  ProgramOutput result;
  auto code = finish_host_program_into(started, [&](std::string_view s) -> Status {
    if (result.out.size() + s.size() > max_bytes)
      return described_error(EFBIG, started.name + " wrote more than " + std::to_string(max_bytes) +
                                        " bytes");
    result.out.append(s);
    return {};
  });
  if (!code.ok()) return code.error();
  result.exit_code = *code;
  return result;
}

Result<ProgramOutput> run_host_program(const std::vector<std::string>& argv, size_t max_bytes) {
  VU_TRY_ASSIGN(started, start_host_program(argv));
  return finish_host_program(started, max_bytes);
}

Result<int> run_in_guest_reading(const VServerConfig& config, const std::vector<std::string>& argv,
                                 const std::function<Status(std::string_view)>& sink,
                                 const std::vector<ContextDir>& mounts) {
  RuntimeIo io;
  io.sink = sink;
  return run_in_guest_context(config, argv, io, mounts);
}

} // namespace vu
