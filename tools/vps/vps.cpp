// vps: ps(1) with the context and guest of each process (util-vserver's
// vps). Every argument goes to the host's ps; a CONTEXT column is put
// after PID: the guest's context number and name, "0 MAIN" for the host.
#include "tools/vps/vps.h"

#include "core/guest_procs.h"
#include "kernel/ns.h"
#include "tools/common/cli.h"
#include "version.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <iostream>
#include <map>

namespace vu {

namespace {

Result<std::string> run_ps(int argc, char** argv) {
  int p[2];
  if (::pipe2(p, O_CLOEXEC) != 0) return make_error(errno, "pipe");
  pid_t pid = ::fork();
  if (pid < 0) return make_error(errno, "fork");
  if (pid == 0) {
    ::dup2(p[1], 1);
    std::vector<char*> a{const_cast<char*>("ps")};
    for (int i = 1; i < argc; ++i) a.push_back(argv[i]);
    a.push_back(nullptr);
    ::execvp("ps", a.data());
    std::cerr << "vps: ps is not installed (apt-get install procps)\n";
    ::_exit(127);
  }
  ::close(p[1]);
  std::string out;
  char buf[65536];
  ssize_t n;
  while ((n = ::read(p[0], buf, sizeof buf)) > 0) out.append(buf, static_cast<size_t>(n));
  ::close(p[0]);
  VU_TRY_ASSIGN(code, wait_exit_code(pid));
  if (code != 0 && out.empty())
    return described_error(EIO, "ps exited with " + std::to_string(code));
  return out;
}

// The end of the PID column in ps's header, or npos.
size_t pid_column_end(const std::string& header) {
  size_t at = header.find(" PID");
  if (at == std::string::npos && header.rfind("PID", 0) == 0) return 3;
  return at == std::string::npos ? at : at + 4;
}

std::string with_context(const std::string& line, size_t end,
                         const std::map<pid_t, std::pair<unsigned, std::string>>& owner) {
  if (end == std::string::npos || line.size() < end) return line;
  size_t start = line.find_last_of(' ', end - 1);
  start = start == std::string::npos ? 0 : start + 1;
  pid_t pid = static_cast<pid_t>(std::atol(line.substr(start, end - start).c_str()));
  auto it = owner.find(pid);
  std::string ctx =
      it == owner.end() ? "0 MAIN" : std::to_string(it->second.first) + " " + it->second.second;
  return line.substr(0, end) + fmt::format(" {:<19}", ctx) + line.substr(end);
}

int run(int argc, char** argv) {
  if (argc > 1 && (std::string(argv[1]) == "--help" || std::string(argv[1]) == "--version")) {
    std::cout << (std::string(argv[1]) == "--help"
                      ? "vps [ps options]: ps with each process's context and guest\n\n"
                        "Exit status: 0 done; 1 ps could not be run.\n"
                        "Examples:\n  vps aux\n  vps -e -o pid,comm\n"
                      : std::string("vps ") + k_version + "\n");
    return 0;
  }
  auto out = run_ps(argc, argv);
  if (!out.ok()) {
    print_error("vps", out.error().message());
    return exit_status(ExitCode::partial);
  }
  std::map<pid_t, std::pair<unsigned, std::string>> owner;
  for (const auto& g : list_running_guests())
    for (pid_t p : g.processes) owner[p] = {g.state.context, g.name};
  size_t nl = out->find('\n');
  std::string header = out->substr(0, nl);
  size_t end = pid_column_end(header);
  if (end == std::string::npos) { // a format without PID: as ps printed it
    std::cout << *out;
    return 0;
  }
  std::cout << header.substr(0, end) << fmt::format(" {:<19}", "CONTEXT") << header.substr(end)
            << "\n";
  size_t at = nl == std::string::npos ? out->size() : nl + 1;
  while (at < out->size()) {
    size_t e = out->find('\n', at);
    if (e == std::string::npos) e = out->size();
    std::cout << with_context(out->substr(at, e - at), end, owner) << "\n";
    at = e + 1;
  }
  return 0;
}

} // namespace

int run_vps(int argc, char** argv) {
  return run_program("vps", run, argc, argv);
}

} // namespace vu
