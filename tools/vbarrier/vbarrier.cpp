// vbarrier: check or set the barrier on the guest base (barrier/).
#include "tools/vbarrier/vbarrier.h"

#include "barrier/barrier.h"
#include "tools/common/attr_choice.h"
#include "tools/common/cli.h"
#include "version.h"

#include <iostream>

namespace vu {

namespace {

int run(int argc, char** argv) {
  CLI::App app{"vbarrier: check or set the chroot barrier on the guest base", "vbarrier"};
  app.set_version_flag("--version", std::string("vbarrier ") + k_version);
  app.require_subcommand(1);
  std::string confdir, base, store;
  add_confdir_option(app, confdir);
  std::string attr_backend;
  add_attr_backend_option(app, attr_backend);
  auto* check = app.add_subcommand("check", "report every way the guest base is not a barrier");
  auto* set =
      app.add_subcommand("set", "make the guest base a barrier (mode 000, root, attribute)");
  for (auto* sub : {check, set}) {
    sub->add_option("base", base, "guest base (default: the configuration's vdirbase)")
        ->check(non_empty());
    sub->add_option("--store", store,
                    "hash store (default: every store the configuration names, else <base>/.hash)")
        ->check(non_empty());
  }
  add_help_footer(app, "0 a barrier (or set); 1 problems found (or setting failed); 2 usage error",
                  {"vbarrier check     # every way /vservers is not a barrier",
                   "vbarrier set       # make it one (mode 000, root, the attribute)"});
  if (auto done = parse_command_line(app, argc, argv)) return *done;
  require_config_base(confdir);
  ConfigBase config(confdir);
  if (base.empty()) base = config.vdirbase();
  std::vector<std::string> stores = store.empty() ? config.hash_stores() : std::vector{store};
  if (set->parsed()) {
    auto backend = choose_attr_backend("vbarrier", attr_backend, confdir);
    for (const auto& s : stores) {
      auto r = set_guest_base_barrier(base, s, *backend);
      if (!r.ok()) {
        print_error("vbarrier", r.error().message());
        return exit_status(ExitCode::partial);
      }
    }
    return exit_status(ExitCode::ok);
  }
  std::vector<Guest> guests;
  if (auto all = config.all(); all.ok()) guests = std::move(all->guests);
  auto problems = check_guest_base(base, guests, stores);
  if (!problems.ok()) {
    print_error("vbarrier", problems.error().message());
    return exit_status(ExitCode::usage);
  }
  // Under the bpf back end the barrier is also the mark its program
  // enforces (processes of started guests, whatever their capabilities).
  auto backend = choose_attr_backend("vbarrier", attr_backend, confdir);
  if (std::string(backend->name()) == "bpf") {
    auto marked = has_barrier_attr(*backend, base);
    if (!marked.ok() || !*marked)
      problems->push_back(base + " lacks the bpf back end's barrier mark (vbarrier set)");
  }
  for (const auto& p : *problems) std::cout << p << "\n";
  if (problems->empty()) std::cout << base << " is a barrier\n";
  return exit_status(problems->empty() ? ExitCode::ok : ExitCode::partial);
}

} // namespace

int run_vbarrier(int argc, char** argv) {
  return run_program("vbarrier", run, argc, argv);
}

} // namespace vu
