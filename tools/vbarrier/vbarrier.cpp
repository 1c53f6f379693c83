#include "tools/vbarrier/vbarrier.h"

#include "barrier/barrier.h"
#include "version.h"

#include <CLI/CLI.hpp>

#include <iostream>

namespace vu {

int run_vbarrier(int argc, char** argv) {
  try {
    CLI::App app{"vbarrier: check or set the chroot barrier on the guest base", "vbarrier"};
    app.set_version_flag("--version", std::string("vbarrier ") + k_version);
    app.require_subcommand(1);
    std::string confdir, base, store;
    app.add_option("--confdir", confdir, "configuration base (default: $VSERVER_CONFDIR or /etc/vservers)");
    auto* check = app.add_subcommand("check", "report every way the guest base is not a barrier");
    auto* set = app.add_subcommand("set", "make the guest base a barrier (mode 000, root, attribute)");
    for (auto* sub : {check, set}) {
      sub->add_option("base", base, "guest base (default: the configuration's vdirbase)");
      sub->add_option("--store", store, "hash store (default: .defaults/apps/vunify/hash or <base>/.hash)");
    }
    try {
      app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
      return app.exit(e) == 0 ? 0 : 2;
    }
    ConfigBase config(confdir);
    if (base.empty()) base = config.vdirbase();
    if (store.empty()) store = default_hash_store(config);
    if (set->parsed()) {
      auto backend = detect_attr_backend();
      auto r = set_guest_base_barrier(base, store, *backend);
      if (!r.ok()) {
        std::cerr << "vbarrier: " << r.error().message() << "\n";
        return 1;
      }
      return 0;
    }
    std::vector<Guest> guests;
    auto all = config.all();
    if (all.ok()) guests = std::move(*all);
    auto problems = check_guest_base(base, guests, store);
    if (!problems.ok()) {
      std::cerr << "vbarrier: error: " << problems.error().message() << "\n";
      return 2;
    }
    for (const auto& p : *problems) std::cout << p << "\n";
    if (problems->empty()) std::cout << base << " is a barrier\n";
    return problems->empty() ? 0 : 1;
  } catch (const std::exception& e) {
    std::cerr << "vbarrier: error: " << e.what() << "\n";
    return 2;
  }
}

} // namespace vu
