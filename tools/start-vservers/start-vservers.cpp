// start-vservers: starts or stops a set of guests in the order their
// apps/init/depends ask for - util-vserver's boot-time helper (its
// vservers-default service runs `start-vservers -m default --start`).
//
//   start-vservers [-c CFGDIR] [-m MARK] [-j N] --start|--stop
//                  [--all|--marked|--unmarked|--running|--stopped] [-- NAME...]
//
// A guest named in another's depends is started before it and stopped
// after it, whether selected or not. Guests already in the wanted state
// are left alone. Exit status as util-vserver's: 0 when every guest that
// needed it was started (or stopped), 1 when none was, 2 when some were.
#include "tools/start-vservers/start-vservers.h"

#include "core/runtime.h"
#include "core/vserver_config.h"
#include "tools/common/attr_choice.h"
#include "tools/common/cli.h"
#include "version.h"

#include <algorithm>
#include <iostream>
#include <map>
#include <set>

namespace vu {

namespace {

enum class Action { start, stop };

struct Selection {
  std::string mark;
  bool all = false, marked = false, unmarked = false, running = false, stopped = false;
  std::vector<std::string> names;
};

// Each guest's configuration, read once: selection, ordering and the start
// itself see the same one.
class Configs {
public:
  explicit Configs(const ConfigBase& base) : m_base(base) {}
  const ConfigBase& base() const { return m_base; }
  const Result<VServerConfig>& get(const std::string& name) {
    auto it = m_loaded.find(name);
    if (it == m_loaded.end()) it = m_loaded.emplace(name, load_vserver_config(m_base, name)).first;
    return it->second;
  }

private:
  const ConfigBase& m_base;
  std::map<std::string, Result<VServerConfig>> m_loaded;
};

bool is_running(const std::string& name) {
  auto st = guest_status(name);
  return st.ok() && st->running;
}

// The guests the options select, by name. A guest whose configuration
// cannot be read is reported and counted in `unreadable` (its mark is
// unknown, so it may be one that should have been started).
Result<std::vector<std::string>> select_guests(Configs& configs, const Selection& s,
                                               size_t& unreadable) {
  std::vector<std::string> out = s.names;
  const bool by_config =
      s.all || s.marked || s.unmarked || s.running || s.stopped || !s.mark.empty();
  if (!by_config) return out;
  VU_TRY_ASSIGN(list, configs.base().all());
  for (const auto& g : list.guests) {
    const auto& c = configs.get(g.name);
    if (!c.ok()) {
      print_error("start-vservers", "'" + g.name + "': " + c.error().message());
      ++unreadable;
      continue;
    }
    const std::string& mark = c->mark;
    bool take = s.all;
    if (!s.mark.empty() && !s.unmarked) take = take || mark == s.mark;
    if (s.marked && s.mark.empty()) take = take || !mark.empty();
    if (s.unmarked) take = take || (s.mark.empty() ? mark.empty() : mark != s.mark);
    if (s.running) take = take || is_running(g.name);
    if (s.stopped) take = take || !is_running(g.name);
    if (take) out.push_back(g.name);
  }
  return out;
}

// Every selected guest and what it depends on, dependencies first. A cycle
// is an error naming it when starting; when stopping it is not in the way
// (the guests still stop, in some order).
class Order {
public:
  Order(Configs& configs, Action action) : m_configs(configs), m_action(action) {}
  Status add(const std::string& name) {
    if (m_done.count(name)) return {};
    if (m_visiting.count(name)) {
      if (m_action == Action::stop) return {};
      return described_error(ELOOP, "apps/init/depends forms a cycle through '" + name + "'");
    }
    m_visiting.insert(name);
    const auto& c = m_configs.get(name);
    if (c.ok())
      for (const auto& dep : c->depends) VU_TRY(add(dep));
    m_visiting.erase(name);
    m_done.insert(name);
    m_order.push_back(name);
    return {};
  }
  const std::vector<std::string>& order() const { return m_order; }

private:
  Configs& m_configs;
  Action m_action;
  std::set<std::string> m_done, m_visiting;
  std::vector<std::string> m_order;
};

// The selected guests and their dependencies, in the order to act on them.
Result<std::vector<std::string>> in_order(Configs& configs, const Selection& s, Action action,
                                          size_t& unreadable) {
  VU_TRY_ASSIGN(selected, select_guests(configs, s, unreadable));
  Order order(configs, action);
  for (const auto& name : selected) VU_TRY(order.add(name));
  std::vector<std::string> list = order.order();
  if (action == Action::stop) std::reverse(list.begin(), list.end());
  return list;
}

// Starts or stops each guest that needs it; returns the exit status.
int act(Configs& configs, const std::vector<std::string>& order, Action action, bool quiet,
        size_t unreadable) {
  size_t needed = unreadable, done = 0;
  for (const auto& name : order) {
    if (is_running(name) == (action == Action::start)) continue;
    ++needed;
    const auto& c = configs.get(name);
    Status r = c.ok() ? (action == Action::start ? start_guest(*c, RuntimeIo{1, quiet, {}})
                                                 : stop_guest(*c, RuntimeIo{1, quiet, {}}))
                      : Status(c.error());
    if (r.ok())
      ++done;
    else
      print_error("start-vservers", "'" + name + "': " + r.error().message());
  }
  if (done == needed) return 0;
  return done == 0 ? 1 : 2;
}

int run(int argc, char** argv) {
  CLI::App app{"start-vservers: start or stop a set of guests in dependency order",
               "start-vservers"};
  app.set_version_flag("--version", std::string("start-vservers ") + k_version);
  std::string confdir;
  Selection s;
  bool start = false, stop = false, quiet = false;
  unsigned jobs = 1;
  app.add_option("-c", confdir, "configuration base (default: $VSERVER_CONFDIR or /etc/vservers)")
      ->check(non_empty());
  app.add_option("-m,--mark", s.mark, "guests whose apps/init/mark is MARK")->check(non_empty());
  app.add_option("-j", jobs, "accepted for util-vserver's scripts; guests go one at a time")
      ->check(CLI::Range(1u, 1000u));
  app.add_flag("--start", start, "start the guests");
  app.add_flag("--stop", stop, "stop the guests (dependents first)");
  app.add_flag("--all", s.all, "every configured guest");
  app.add_flag("--marked", s.marked, "guests with MARK (any mark without -m)");
  app.add_flag("--unmarked", s.unmarked, "guests without MARK (without any mark without -m)");
  app.add_flag("--running", s.running, "guests that run");
  app.add_flag("--stopped", s.stopped, "guests that do not run");
  app.add_flag("-q,--quiet", quiet, "no notices");
  app.add_option("names", s.names, "guests by name (after --)");
  add_help_footer(
      app,
      "0 every guest that needed it was started or stopped; 1 none was, or a cycle; 2 "
      "some were, or a usage error",
      {"start-vservers -m default --start           # the guests marked default, at boot",
       "start-vservers --all --running --stop       # stop every running guest"});
  if (auto done = parse_command_line(app, argc, argv)) return *done;
  if (start == stop) {
    print_error("start-vservers", "say --start or --stop (see start-vservers --help)");
    return exit_status(ExitCode::usage);
  }
  for (const auto& n : s.names)
    if (n.empty() || n.find('/') != std::string::npos || n[0] == '.') {
      print_error("start-vservers", "'" + n + "' is not a guest name");
      return exit_status(ExitCode::usage);
    }
  require_config_base(confdir);
  if (start)
    if (auto r = check_attr_backend_for_start(confdir); !r.ok()) {
      print_error("start-vservers", r.error().message());
      return exit_status(ExitCode::partial);
    }
  ConfigBase base(confdir);
  Configs configs(base);
  size_t unreadable = 0;
  auto list = in_order(configs, s, start ? Action::start : Action::stop, unreadable);
  if (!list.ok()) {
    print_error("start-vservers", list.error().message());
    return exit_status(ExitCode::partial);
  }
  return act(configs, *list, start ? Action::start : Action::stop, quiet, unreadable);
}

} // namespace

int run_start_vservers(int argc, char** argv) {
  return run_program("start-vservers", run, argc, argv);
}

} // namespace vu
