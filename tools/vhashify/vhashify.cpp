// vhashify: arguments, the choice of hash store per guest, the report. The
// store run itself is unify/hashify.
#include "tools/vhashify/vhashify.h"

#include "barrier/barrier.h"
#include "tools/common/attr_choice.h"
#include "tools/common/cli.h"
#include "tools/common/guest_selection.h"
#include "tools/common/json_out.h"
#include "tools/common/progress_line.h"
#include "unify/hashify.h"
#include "version.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <unistd.h>

#include <algorithm>
#include <iostream>
#include <map>
#include <optional>

namespace vu {

namespace {

struct CliOptions {
  GuestSelection sel;
  HashifyOptions run;
  std::string destination;
  int verbose = 0;
  bool quiet = false, json = false, stats = false, no_immutable = false, no_wait = false;
  bool insecure = false; // util-vserver's option; nothing here is less careful with it
  std::string attr_backend;
  std::unique_ptr<AttrBackend> attrs; // chosen after parsing
  uint64_t memory_limit = UINT64_MAX; // UINT64_MAX: default_memory_limit()
};

// A usage or set-up error: "vhashify: error: ...", exit status 2.
struct SetupError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

void add_options(CLI::App& app, CliOptions& o) {
  app.add_option("guests", o.sel.args,
                 "guest names or paths; with --manually: <path> <excludelist> pairs")
      ->check(non_empty());
  app.add_flag("--all", o.sel.all, "every guest of the configuration base");
  app.add_flag(
      "--manually", o.sel.manually,
      "util-vserver form: --destination DIR <path> <excludelist> [<path> <excludelist>]...");
  app.add_option("--destination", o.destination,
                 "the hash store directory (default: the guest's apps/vunify/hash entry on its "
                 "file system, or <vdirbase>/.hash)")
      ->check(non_empty());
  add_confdir_option(app, o.sel.confdir);
  add_attr_backend_option(app, o.attr_backend);
  app.add_flag("-n,--dry-run", o.run.dry_run,
               "hash and report; create and link nothing (a cache that exists is refreshed)");
  app.add_flag("--refresh", o.run.refresh, "ignore the hash cache and read every candidate again");
  app.add_flag("--ignore-mtime", o.run.ignore_mtime,
               "also link files whose modification times differ (their names then show the "
               "store entry's time)");
  app.add_flag("--insecure", o.insecure, "accepted for compatibility; every safety check stays on");
  app.add_flag("--gc", o.run.gc, "remove store entries no guest links any more (alone: only that)");
  app.add_flag("--no-wait", o.no_wait, "fail instead of waiting when another run holds the store");
  app.add_flag("-v,--verbose", o.verbose,
               "list what is (or would be) linked; twice: also what was left alone and why");
  app.add_flag("-q,--quiet", o.quiet, "print only errors");
  app.add_flag("--json", o.json, "one JSON object on stdout");
  app.add_flag("--stats", o.stats, "print the time each pass took, and the total");
  app.add_option("--threads", o.run.threads, "worker threads (default: 8 per core, 8 to 32)")
      ->check(CLI::Range(1u, 256u));
  app.add_flag("--no-immutable", o.no_immutable, "do not set the immutable flag");
  app.add_option("--exclude-from", o.sel.exclude_from, "exclude list replacing the default list")
      ->check(non_empty());
  app.add_flag("--no-default-excludes", o.sel.no_default_excludes, "no default exclude list");
  app.add_flag("--no-pkgmgmt", o.sel.no_pkgmgmt, "do not read package databases for config files");
  add_size_option(app, "--min-size", o.run.min_size,
                  "leave smaller files alone (default 16; 1M = 1 MiB)")
      ->check(CLI::Range(uint64_t(1), uint64_t(1) << 62));
  add_size_option(app, "--max-size", o.run.max_size, "leave larger files alone");
  add_size_option(app, "--memory-limit", o.memory_limit,
                  "memory for the run's records (default a quarter of the RAM; 0: no limit); more "
                  "files are worked in size ranges, one after the other");
  add_pattern_options(app, o.sel.excludes, o.sel.includes);
}

// The guests of each store: --destination for all, else each guest's own
// (ConfigBase::hash_store_of), in the order first named.
std::vector<std::pair<std::string, std::vector<UnifyGuest>>>
guests_by_store(const CliOptions& o, std::vector<UnifyGuest> guests, const ConfigBase& config) {
  std::vector<std::pair<std::string, std::vector<UnifyGuest>>> out;
  for (auto& g : guests) {
    std::string store = o.destination;
    if (store.empty()) {
      auto s = config.hash_store_of(g.guest);
      if (!s.ok()) throw SetupError(s.error().message());
      store = *s;
    }
    auto it = std::find_if(out.begin(), out.end(), [&](const auto& p) { return p.first == store; });
    if (it == out.end()) out.push_back({store, {}}), it = out.end() - 1;
    it->second.push_back(std::move(g));
  }
  return out;
}

// Adds a run's counters to the total of all stores.
void add_up(Report& total, const Report& r) {
  total.guests.insert(total.guests.end(), r.guests.begin(), r.guests.end());
  for (auto [field, value] : {std::pair{&Report::files_scanned, r.files_scanned},
                              {&Report::bytes_scanned, r.bytes_scanned},
                              {&Report::files_excluded, r.files_excluded},
                              {&Report::files_config, r.files_config},
                              {&Report::files_small, r.files_small},
                              {&Report::files_large, r.files_large},
                              {&Report::files_other, r.files_other},
                              {&Report::files_hashed, r.files_hashed},
                              {&Report::bytes_hashed, r.bytes_hashed},
                              {&Report::files_compared, r.files_compared},
                              {&Report::duplicate_groups, r.duplicate_groups},
                              {&Report::files_linked, r.files_linked},
                              {&Report::bytes_saved, r.bytes_saved},
                              {&Report::files_already_shared, r.files_already_shared},
                              {&Report::inodes_protected, r.inodes_protected},
                              {&Report::temporaries_removed, r.temporaries_removed},
                              {&Report::bytes_compared, r.bytes_compared},
                              {&Report::files_in_store, r.files_in_store},
                              {&Report::cache_hits, r.cache_hits},
                              {&Report::store_entries_created, r.store_entries_created},
                              {&Report::store_entries_removed, r.store_entries_removed}})
    total.*field += value;
  merge_failures(total, r);
  total.actions.insert(total.actions.end(), r.actions.begin(), r.actions.end());
  for (const auto& stage : r.stage_seconds) { // each store's passes, by name
    auto same = std::find_if(total.stage_seconds.begin(), total.stage_seconds.end(),
                             [&](const auto& t) { return t.first == stage.first; });
    if (same == total.stage_seconds.end())
      total.stage_seconds.push_back(stage);
    else
      same->second += stage.second;
  }
  total.seconds += r.seconds;
  total.parts = std::max(total.parts, r.parts);
}

int gc_only(const CliOptions& o, const ConfigBase& config) {
  Report total;
  std::vector<std::string> stores =
      o.destination.empty() ? config.hash_stores() : std::vector<std::string>{o.destination};
  for (const auto& store : stores) {
    HashifyOptions h = o.run;
    h.store = store;
    if (!path_exists(store)) continue;
    auto gc = run_store_gc(h);
    if (!gc.ok()) throw SetupError(gc.error().message());
    add_up(total, *gc);
  }
  if (o.json)
    std::cout << with_run_info(report_to_json(total), "vhashify").dump(2) << "\n";
  else if (!o.quiet)
    std::cout << fmt::format("{} store entries removed, {} temporaries removed\n",
                             total.store_entries_removed, total.temporaries_removed);
  return exit_status(total.failed() ? ExitCode::partial : ExitCode::ok);
}

using StoreGuests = std::vector<std::pair<std::string, std::vector<UnifyGuest>>>;

// One run per hash store, under one progress line each.
Report hashify_stores(const CliOptions& o, StoreGuests& by_store) {
  Report total;
  total.dry_run = o.run.dry_run;
  Progress progress;
  for (auto& [store, guests] : by_store) {
    HashifyOptions h = o.run;
    h.store = store;
    h.progress = &progress;
    if (!o.quiet && !o.json) {
      std::string base = store.substr(0, store.rfind('/'));
      auto problems = check_guest_base(base.empty() ? "/" : base, {}, {store});
      if (problems.ok())
        for (const auto& p : *problems) std::cerr << "vhashify: warning: barrier: " << p << "\n";
    }
    Result<Report> r = Error{};
    {
      std::optional<ProgressLine> line;
      if (!o.quiet && !o.json && ::isatty(STDERR_FILENO)) line.emplace(progress, "vhashify");
      r = run_hashify(guests, h);
    }
    if (!r.ok()) throw SetupError(r.error().message());
    add_up(total, *r);
  }
  return total;
}

void print_report(const CliOptions& o, const Report& total, const StoreGuests& by_store) {
  std::string stores;
  for (const auto& [store, guests] : by_store) stores += (stores.empty() ? "" : ", ") + store;
  if (o.json) {
    auto j = report_to_json(total);
    j["store"] = by_store.size() == 1 ? by_store.front().first : stores;
    std::cout << with_run_info(j, "vhashify").dump(2) << "\n";
    return;
  }
  for (const auto& a : total.actions) std::cout << a << "\n";
  if (!o.quiet) {
    std::cout << report_to_text(total, o.verbose);
    std::cout << fmt::format(
        "store {}: {} names already linked, {} entries created, {} "
        "removed; {} read ({} hashes from the cache)\n",
        stores, total.files_in_store, total.store_entries_created, total.store_entries_removed,
        human_bytes(total.bytes_hashed + total.bytes_compared), total.cache_hits);
  } else if (total.failed()) {
    std::cerr << report_to_text(total, 0);
  }
  if (o.stats) {
    for (const auto& [pass, seconds] : total.stage_seconds)
      std::cout << fmt::format("{:>8}: {:.3f} s\n", pass, seconds);
    std::cout << fmt::format("{:.3f} s\n", total.seconds);
  }
}

int run(int argc, char** argv) {
  CLI::App app{"vhashify: link guests' files to a content-addressed hash store", "vhashify"};
  app.set_version_flag("--version", std::string("vhashify ") + k_version);
  CliOptions o;
  o.sel.classic_refservers = false;
  o.sel.min_manual_pairs = 1;
  add_options(app, o);
  add_help_footer(app, k_common_exit_codes,
                  {"vhashify --all --gc             # what the nightly job runs",
                   "vhashify -n --destination /srv/.hash web1 web2   # a dry run, store named"});
  if (auto done = parse_command_line(app, argc, argv)) return *done;
  if (!o.run.dry_run)
    require_capabilities(linking_capabilities(!o.no_immutable),
                         "linking guests' files to the store", "-n (a dry run) works without");
  o.run.protect = o.no_immutable ? Protect::none : Protect::immutable;
  o.attrs = choose_attr_backend("vhashify", o.attr_backend, o.sel.confdir);
  o.run.attrs = o.attrs.get();
  o.run.wait_for_lock = !o.no_wait;
  o.run.log_actions = o.verbose >= 1 && !o.json;
  o.run.log_skips = o.verbose >= 2 && !o.json;
  o.run.on_lock_wait = [quiet = o.quiet](const std::string& what, const std::string& holder) {
    if (!quiet)
      std::cerr << "vhashify: waiting: " << what << " is being changed by " << holder << "\n";
  };
  o.run.lock_holder = "vhashify";
  o.run.memory_limit = o.memory_limit == UINT64_MAX ? default_memory_limit() : o.memory_limit;
  ConfigBase config(o.sel.confdir);
  if (o.sel.manually && o.destination.empty())
    throw SetupError("--manually needs --destination (the hash store)");
  if (o.sel.args.empty() && !o.sel.all) {
    if (!o.run.gc) throw SetupError("no guests given (name guests, paths, or --all; or --gc)");
    return gc_only(o, config);
  }

  auto selected = select_guests(o.sel);
  if (!selected.ok()) throw SetupError(selected.error().message());
  print_left_out("vhashify", *selected);
  if (auto all = config.all(); all.ok()) o.run.other_guests = std::move(all->guests);
  StoreGuests by_store = guests_by_store(o, std::move(selected->guests), config);
  // Every store is checked before any of them is touched.
  for (const auto& [store, guests] : by_store) {
    auto placed = check_store_place(store, guests, o.run.other_guests);
    if (!placed.ok()) throw SetupError(placed.error().message());
  }
  Report total = hashify_stores(o, by_store);
  note_left_out(*selected, total);
  print_report(o, total, by_store);
  return exit_status(total.failed() ? ExitCode::partial : ExitCode::ok);
}

} // namespace

int run_vhashify(int argc, char** argv) {
  return run_program("vhashify", run, argc, argv);
}

} // namespace vu
