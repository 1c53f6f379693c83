// vserver: start, stop, enter and build guests (core/runtime.h), with
// util-vserver's command line: vserver [options] NAME COMMAND [ARGS...].
#include "tools/vserver/vserver.h"

#include "core/runtime.h"
#include "tools/common/attr_choice.h"
#include "tools/common/cli.h"
#include "tools/common/json_out.h"
#include "tools/common/programs.h"
#include "tools/vserver/build.h"
#include "tools/vserver/pkgmgmt.h"
#include "version.h"

#include <nlohmann/json.hpp>
#include <unistd.h>

#include <cstring>
#include <ctime>
#include <iostream>

namespace vu {

namespace {

struct Globals {
  std::string confdir;
  bool json = false;
  bool quiet = false;
};

const char* k_commands =
    "commands: start, stop, restart, condrestart, status, running, enter, exec CMD [ARGS], "
    "unify [vunify options], hashify [vhashify options], build -m debootstrap|skeleton ..., "
    "pkgmgmt externalize|internalize";

Result<VServerConfig> load(const Globals& g, const std::string& name) {
  auto c = load_vserver_config(ConfigBase(g.confdir), name);
  if (!c.ok()) return c.error();
  return c;
}

int fail(const Error& e) {
  print_error("vserver", e.message());
  return exit_status(ExitCode::partial);
}

int status_command(const Globals& g, const std::string& name, bool quiet_form) {
  auto st = guest_status(name);
  if (!st.ok()) return fail(st.error());
  if (quiet_form) return st->running ? 0 : 1;
  if (g.json) {
    nlohmann::json j{{"name", name}, {"running", st->running}};
    if (st->running) {
      j["init_pid"] = st->state.pid;
      j["context"] = st->state.context;
      j["processes"] = st->processes.size();
      j["started"] = st->state.started;
      j["uptime_seconds"] = std::time(nullptr) - st->state.started;
    }
    std::cout << with_run_info(j, "vserver").dump(2) << "\n";
  } else if (st->running) {
    std::cout << "Vserver '" << name << "' is running at context '" << st->state.context << "'\n"
              << "Number of processes: " << st->processes.size() << "\n"
              << "Uptime: " << (std::time(nullptr) - st->state.started) << " s\n";
  } else {
    std::cout << "Vserver '" << name << "' is stopped\n";
  }
  // LSB: 0 running, 3 not running.
  return st->running ? 0 : 3;
}

// vunify/vhashify beside this program, for `vserver NAME unify|hashify`.
int run_sibling(const std::string& tool, const Globals& g, const std::string& name,
                const std::vector<std::string>& args) {
  const std::string bin = sibling_program(tool);
  std::vector<std::string> argv{bin};
  if (!g.confdir.empty()) argv.insert(argv.end(), {"--confdir", g.confdir});
  argv.insert(argv.end(), args.begin(), args.end());
  argv.push_back(name);
  std::vector<char*> a;
  for (auto& s : argv) a.push_back(s.data());
  a.push_back(nullptr);
  ::execv(bin.c_str(), a.data());
  print_error("vserver", "cannot run " + bin + ": " + std::strerror(errno));
  return exit_status(ExitCode::usage);
}

int guest_command(const Globals& g, const std::string& name, const std::string& cmd,
                  const std::vector<std::string>& args) {
  if (cmd == "status") return status_command(g, name, false);
  if (cmd == "running") return status_command(g, name, true);
  if (cmd == "unify") return run_sibling("vunify", g, name, args);
  if (cmd == "hashify") return run_sibling("vhashify", g, name, args);
  auto c = load(g, name);
  if (!c.ok()) return fail(c.error());
  RuntimeIo io{1, g.quiet, {}};
  if (cmd == "start" || cmd == "stop" || cmd == "restart" || cmd == "condrestart") {
    if (cmd == "condrestart") {
      auto st = guest_status(name);
      if (!st.ok()) return fail(st.error());
      if (!st->running) return 0;
    }
    if (cmd != "start")
      if (auto r = stop_guest(*c, io); !r.ok()) return fail(r.error());
    if (cmd != "stop") {
      if (auto r = check_attr_backend_for_start(g.confdir); !r.ok()) return fail(r.error());
      if (auto r = start_guest(*c, io); !r.ok()) return fail(r.error());
    }
    return 0;
  }
  if (cmd == "enter" || cmd == "exec") {
    if (cmd == "exec" && args.empty()) {
      print_error("vserver", "exec needs a command (see vserver --help)");
      return exit_status(ExitCode::usage);
    }
    const Terminal t =
        ::isatty(STDIN_FILENO) && ::isatty(STDOUT_FILENO) ? Terminal::pty : Terminal::none;
    auto code = exec_in_guest(*c, cmd == "enter" ? std::vector<std::string>{} : args, t);
    if (!code.ok()) return fail(code.error());
    return *code;
  }
  print_error("vserver", "unknown command '" + cmd + "'; " + k_commands);
  return exit_status(ExitCode::usage);
}

int run(int argc, char** argv) {
  CLI::App app{"vserver: start, stop, enter and build guests\n\n"
               "usage: vserver [options] NAME COMMAND [ARGS...]\n" +
                   std::string(k_commands),
               "vserver"};
  app.set_version_flag("--version", std::string("vserver ") + k_version);
  app.prefix_command();
  Globals g;
  add_confdir_option(app, g.confdir);
  app.add_flag("--json", g.json, "status: one JSON object on stdout");
  app.add_flag("-q,--quiet,--silent", g.quiet, "no notices on stderr");
  bool verbose = false; // accepted for util-vserver's scripts; notices are always shown
  app.add_flag("-v,--verbose", verbose, "accepted for util-vserver's scripts");
  add_help_footer(app,
                  "0 done; 1 failed (one line on stderr); 2 usage error; status: 0 running, 3 "
                  "stopped; exec, enter: the command's status",
                  {"vserver web1 start", "vserver web1 exec ps ax", "vserver web1 stop"});
  if (auto done = parse_command_line(app, argc, argv)) return *done;
  require_config_base(g.confdir);
  std::vector<std::string> rest = app.remaining();
  if (rest.size() < 2) {
    print_error("vserver", "usage: vserver [options] NAME COMMAND [ARGS...] (see vserver --help)");
    return exit_status(ExitCode::usage);
  }
  const std::string name = rest[0], cmd = rest[1];
  if (name.empty() || name.find('/') != std::string::npos || name[0] == '.') {
    print_error("vserver", "'" + name + "' is not a guest name (see vserver --help)");
    return exit_status(ExitCode::usage);
  }
  std::vector<std::string> args(rest.begin() + 2, rest.end());
  if (cmd == "build") return run_build(g.confdir, name, args);
  if (cmd == "pkgmgmt") return run_pkgmgmt(g.confdir, name, args, g.quiet);
  return guest_command(g, name, cmd, args);
}

} // namespace

int run_vserver(int argc, char** argv) {
  return run_program("vserver", run, argc, argv);
}

} // namespace vu
