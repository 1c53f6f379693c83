#include "tools/vhashify/vhashify.h"

#include "barrier/barrier.h"
#include "tools/common/guest_selection.h"
#include "tools/common/progress_line.h"
#include "unify/hashify.h"
#include "version.h"

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <unistd.h>

#include <iostream>
#include <optional>

namespace vu {

namespace {

// The store: --destination, else the first guest's apps/vunify/hash, else
// the base's .defaults/apps/vunify/hash, else <vdirbase>/.hash.
std::string choose_store(const std::string& destination, const std::vector<UnifyGuest>& guests,
                         const ConfigBase& config) {
  if (!destination.empty()) return destination;
  for (const auto& g : guests) {
    if (g.guest.confdir.empty()) continue;
    auto r = real_path(g.guest.confdir + "/apps/vunify/hash");
    if (r.ok()) return *r;
  }
  return default_hash_store(config);
}

} // namespace

int run_vhashify(int argc, char** argv) {
  try {
    CLI::App app{"vhashify: link guests' files to a content-addressed hash store", "vhashify"};
    app.set_version_flag("--version", std::string("vhashify ") + k_version);
    GuestSelection sel;
    sel.classic_refservers = false;
    HashifyOptions o;
    std::string destination;
    bool verbose_flag = false, quiet = false, json = false, no_immutable = false, ignore_mtime = false,
         no_wait = false, stats = false;
    int verbose = 0;
    app.add_option("guests", sel.args, "guest names or paths; with --manually: <path> <excludelist> pairs");
    app.add_flag("--all", sel.all, "every guest of the configuration base");
    app.add_flag("--manually", sel.manually, "util-vserver form: <path> <excludelist> pairs");
    app.add_option("--destination", destination, "the hash store directory");
    app.add_option("--confdir", sel.confdir, "configuration base (default: $VSERVER_CONFDIR or /etc/vservers)");
    app.add_flag("-n,--dry-run", o.dry_run, "hash and report (the cache is updated); link nothing");
    app.add_flag("--refresh", o.refresh, "ignore the hash cache and read every candidate again");
    app.add_flag("--ignore-mtime", ignore_mtime, "accepted for compatibility: mtimes never matter here");
    app.add_flag("--gc", o.gc, "remove store entries no guest links any more (alone: only that)");
    app.add_flag("--no-wait", no_wait, "fail instead of waiting when another run holds the store");
    app.add_flag("-v,--verbose", verbose, "more output (twice: every linked name)");
    app.add_flag("-q,--quiet", quiet, "print only errors");
    app.add_flag("--json", json, "one JSON object on stdout");
    app.add_flag("--stats", stats, "print the run time");
    app.add_option("--threads", o.threads, "worker threads (default: 8 per core, 8 to 32)")->check(CLI::Range(1u, 256u));
    app.add_flag("--no-immutable", no_immutable, "do not set the immutable flag");
    app.add_option("--exclude-from", sel.exclude_from, "exclude list replacing the built-in one");
    app.add_flag("--no-default-excludes", sel.no_default_excludes, "no built-in exclude list");
    app.add_flag("--no-pkgmgmt", sel.no_pkgmgmt, "do not read package databases for config files");
    app.add_option("--min-size", o.min_size, "leave smaller files alone (default 16)");
    (void)verbose_flag;
    try {
      app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
      return app.exit(e) == 0 ? 0 : 2;
    }
    o.protect = no_immutable ? Protect::none : Protect::immutable;
    o.wait_for_lock = !no_wait;
    o.log_actions = verbose >= 2 && !json;
    o.on_lock_wait = [&] {
      if (!quiet) std::cerr << "vhashify: waiting for another run on the hash store to finish\n";
    };
    ConfigBase config(sel.confdir);

    if (sel.args.empty() && !sel.all) {
      if (!o.gc) {
        std::cerr << "vhashify: error: no guests given (name guests, paths, or --all; or --gc)\n";
        return 2;
      }
      o.store = destination.empty() ? default_hash_store(config) : destination;
      auto gc = run_store_gc(o);
      if (!gc.ok()) {
        std::cerr << "vhashify: error: " << gc.error().message() << "\n";
        return 2;
      }
      if (json) std::cout << report_to_json(*gc).dump(2) << "\n";
      else if (!quiet)
        std::cout << fmt::format("{} store entries removed, {} temporaries removed\n",
                                 gc->store_entries_removed, gc->temporaries_removed);
      return gc->failed() ? 1 : 0;
    }
    auto selected = select_guests(sel);
    if (!selected.ok()) {
      std::cerr << "vhashify: error: " << selected.error().message() << "\n";
      return 2;
    }
    for (const auto& r : selected->rejected)
      std::cerr << "vhashify: guest '" << printable_path(r.name) << "' not unified: " << r.message
                << " (--no-pkgmgmt or apps/vunify/pkgmgmt-ignore unify it anyway)\n";
    o.store = choose_store(destination, selected->guests, config);
    if (!quiet && !json) {
      std::string base = o.store.substr(0, o.store.rfind('/'));
      auto problems = check_guest_base(base.empty() ? "/" : base, {}, o.store);
      if (problems.ok())
        for (const auto& p : *problems) std::cerr << "vhashify: warning: barrier: " << p << "\n";
    }
    Progress progress;
    o.progress = &progress;
    Result<Report> report = Error{};
    {
      std::optional<ProgressLine> line;
      if (!quiet && !json && ::isatty(STDERR_FILENO)) line.emplace(progress, "vhashify");
      report = run_hashify(selected->guests, o);
    }
    if (!report.ok()) {
      std::cerr << "vhashify: error: " << report.error().message() << "\n";
      return 2;
    }
    Report& r = *report;
    for (const auto& rej : selected->rejected) {
      auto& f = r.failures[Failure::pkgmgmt];
      if (f.count++ == 0) {
        f.first_path = rej.name;
        f.first_message = rej.message;
      }
    }
    if (json) {
      auto j = report_to_json(r);
      j["store"] = o.store;
      std::cout << j.dump(2) << "\n";
    } else {
      for (const auto& a : r.actions) std::cout << a << "\n";
      if (!quiet) {
        std::cout << report_to_text(r, verbose);
        std::cout << fmt::format("store {}: {} names already linked, {} entries created, {} "
                                 "removed; {} read ({} hashes from the cache)\n",
                                 o.store, r.files_in_store, r.store_entries_created,
                                 r.store_entries_removed, human_bytes(r.bytes_hashed + r.bytes_compared),
                                 r.cache_hits);
      } else if (r.failed()) {
        std::cerr << report_to_text(r, 0);
      }
      if (stats) std::cout << fmt::format("{:.3f} s\n", r.seconds);
    }
    return r.failed() ? 1 : 0;
  } catch (const std::exception& e) {
    std::cerr << "vhashify: error: " << e.what() << "\n";
    return 2;
  }
}

} // namespace vu
