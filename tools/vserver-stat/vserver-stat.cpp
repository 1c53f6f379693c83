// vserver-stat: one line per running guest, as util-vserver prints it:
// CTX PROC VSZ RSS userTIME sysTIME UPTIME NAME (sums over the guest's
// processes, from /proc and the guest's cgroup); --json for scripts.
#include "tools/vserver-stat/vserver-stat.h"

#include "core/guest_procs.h"
#include "tools/common/cli.h"
#include "tools/common/json_out.h"
#include "version.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <unistd.h>

#include <ctime>
#include <iostream>

namespace vu {

namespace {

std::string size_text(uint64_t bytes) {
  const char* unit[] = {"", "K", "M", "G", "T"};
  double v = static_cast<double>(bytes);
  int i = 0;
  while (v >= 1024 && i < 4) {
    v /= 1024;
    ++i;
  }
  return i == 0 ? std::to_string(bytes) : fmt::format("{:.1f}{}", v, unit[i]);
}

// util-vserver's time form: 1h32m02, 28m35s74, 3d07h35.
std::string time_text(double seconds) {
  auto s = static_cast<uint64_t>(seconds);
  if (s >= 86400) return fmt::format("{}d{:02}h{:02}", s / 86400, s % 86400 / 3600, s % 3600 / 60);
  if (s >= 3600) return fmt::format("{}h{:02}m{:02}", s / 3600, s % 3600 / 60, s % 60);
  return fmt::format("{}m{:02}s{:02}", s / 60, s % 60,
                     static_cast<int>((seconds - static_cast<double>(s)) * 100));
}

struct Line {
  std::string name;
  unsigned context;
  size_t procs;
  ProcUsage use;
  int64_t uptime;
};

int run(int argc, char** argv) {
  CLI::App app{"vserver-stat: processes, memory and CPU time of each running guest",
               "vserver-stat"};
  app.set_version_flag("--version", std::string("vserver-stat ") + k_version);
  bool json = false;
  app.add_flag("--json", json, "one JSON array on stdout");
  add_help_footer(app, "0 done; 2 usage error",
                  {"vserver-stat          # one line per running guest",
                   "vserver-stat --json   # the same for a program"});
  if (auto done = parse_command_line(app, argc, argv)) return *done;
  std::vector<Line> lines;
  const double hz = static_cast<double>(::sysconf(_SC_CLK_TCK));
  for (const auto& g : list_running_guests()) {
    Line l{g.name, g.state.context, 0, {}, std::time(nullptr) - g.state.started};
    for (pid_t p : g.processes) {
      auto u = process_usage(p);
      if (!u.ok()) continue; // ended meanwhile
      ++l.procs;
      l.use.vsize += u->vsize;
      l.use.rss += u->rss;
      l.use.utime_ticks += u->utime_ticks;
      l.use.stime_ticks += u->stime_ticks;
    }
    lines.push_back(l);
  }
  if (json) {
    nlohmann::json j = nlohmann::json::object();
    auto& guests = j["guests"] = nlohmann::json::array();
    for (const auto& l : lines)
      guests.push_back({{"name", l.name},
                        {"context", l.context},
                        {"processes", l.procs},
                        {"vsz_bytes", l.use.vsize},
                        {"rss_bytes", l.use.rss},
                        {"user_seconds", static_cast<double>(l.use.utime_ticks) / hz},
                        {"system_seconds", static_cast<double>(l.use.stime_ticks) / hz},
                        {"uptime_seconds", l.uptime}});
    std::cout << with_run_info(j, "vserver-stat").dump(2) << "\n";
    return 0;
  }
  std::cout << "CTX   PROC    VSZ    RSS  userTIME   sysTIME    UPTIME NAME\n";
  for (const auto& l : lines)
    std::cout << fmt::format("{:<5} {:>4} {:>6} {:>6} {:>9} {:>9} {:>9} {}\n", l.context, l.procs,
                             size_text(l.use.vsize), size_text(l.use.rss),
                             time_text(static_cast<double>(l.use.utime_ticks) / hz),
                             time_text(static_cast<double>(l.use.stime_ticks) / hz),
                             time_text(static_cast<double>(l.uptime)), l.name);
  return 0;
}

} // namespace

int run_vserver_stat(int argc, char** argv) {
  return run_program("vserver-stat", run, argc, argv);
}

} // namespace vu
