// vunify: argument handling, guest resolution, progress and report output.
// The work itself is unify/ (run_unify, run_deunify, run_hashify).
#include "tools/vunify/vunify.h"

#include "barrier/barrier.h"
#include "tools/common/attr_choice.h"
#include "tools/common/guest_selection.h"
#include "tools/common/json_out.h"
#include "tools/common/progress_line.h"
#include "unify/deunify.h"
#include "unify/hashify.h"
#include "unify/unify.h"
#include "version.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <unistd.h>

#include <iostream>
#include <optional>
#include <stdexcept>

namespace vu {

namespace {

struct CliOptions {
  std::vector<std::string> args;
  bool all = false;
  bool manually = false;
  bool dry_run = false;
  int verbose = 0;
  bool quiet = false;
  bool json = false;
  bool stats = false;
  uint32_t threads = 0;
  bool no_immutable = false;
  bool ignore_mtime = false;
  bool reflink = false;
  bool no_wait = false;
  std::string exclude_from;
  bool no_default_excludes = false;
  std::string confdir;
  bool no_pkgmgmt = false;
  bool revert = false;
  std::vector<std::string> paths;
  std::string store;
  uint64_t min_size = 16;
  uint64_t max_size = 0;
  uint64_t memory_limit = UINT64_MAX;          // UINT64_MAX: default_memory_limit()
  std::vector<std::string> excludes, includes; // --exclude, --include
  bool one_file_system = false;
  std::string attr_backend;
  std::unique_ptr<AttrBackend> attrs; // chosen after parsing
};

// A usage or set-up error: printed as "vunify: error: ...", exit status 2.
struct SetupError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

template <typename T> T need(Result<T> r) {
  if (!r.ok()) throw SetupError(r.error().message());
  return std::move(r).value();
}

void add_options(CLI::App& app, CliOptions& o) {
  app.add_option("guests", o.args,
                 "guest names (under --confdir) or paths containing '/'; with --manually: "
                 "<path> <excludelist> pairs")
      ->check(non_empty());
  app.add_flag("--all", o.all, "unify every guest of the configuration base");
  app.add_flag("--manually", o.manually,
               "util-vserver form: <path> <excludelist> [<path> <excludelist>]+; the first "
               "path is linked to the others");
  app.add_flag("-n,--dry-run", o.dry_run, "find duplicates and report; change nothing");
  app.add_flag("-v,--verbose", o.verbose,
               "list what is (or would be) linked; twice: also what was left alone and why");
  app.add_flag("-q,--quiet", o.quiet, "print only errors");
  app.add_flag("--json", o.json, "print the report as one JSON object on stdout");
  app.add_flag("--stats", o.stats, "print the time of each pass");
  app.add_option("--threads", o.threads,
                 "worker threads (default: 8 per core, 8 to 32; linking uses one per core)")
      ->check(CLI::Range(1u, 256u));
  app.add_flag("--no-immutable", o.no_immutable, "do not set the immutable flag on shared inodes");
  app.add_flag("--ignore-mtime", o.ignore_mtime,
               "also link files whose modification times differ (their names then show the "
               "shared inode's time)");
  app.add_flag("--reflink", o.reflink,
               "share the extents of identical files (btrfs, XFS) instead of linking them: "
               "each name keeps its own inode");
  app.add_flag("--no-wait", o.no_wait, "fail instead of waiting when another run holds a guest");
  app.add_option(
         "--exclude-from", o.exclude_from,
         "exclude list that replaces the default list (.defaults/apps/vunify/exclude or built-in)")
      ->check(non_empty());
  app.add_flag("--no-default-excludes", o.no_default_excludes, "use no default exclude list");
  add_confdir_option(app, o.confdir);
  add_attr_backend_option(app, o.attr_backend);
  app.add_flag("--no-pkgmgmt", o.no_pkgmgmt,
               "do not ask the package manager for configuration files (and unify guests "
               "whose package database cannot be read)");
  add_size_option(app, "--min-size", o.min_size,
                  "leave files smaller than this alone (default 16; 1M = 1 MiB)")
      ->check(CLI::Range(uint64_t(1), uint64_t(1) << 62));
  add_size_option(app, "--max-size", o.max_size, "leave files larger than this alone");
  add_size_option(app, "--memory-limit", o.memory_limit,
                  "memory for the run's records (default a quarter of the RAM; 0: no limit); more "
                  "files are worked in size ranges, one after the other");
  add_pattern_options(app, o.excludes, o.includes);
  app.add_option("--store", o.store,
                 "link to the hash store DIR instead of to each other (what vhashify does)")
      ->check(non_empty());
  app.add_flag("-R,--revert", o.revert,
               "de-unify: give each named guest private copies of the files it shares");
  // One value per --path, so "-R --path P GUEST" leaves GUEST a guest.
  app.add_option("--path", o.paths, "with -R: only this absolute guest path (repeatable)")
      ->check(non_empty())
      ->allow_extra_args(false);
  app.add_flag("-x,--one-file-system", o.one_file_system,
               "do not descend into directories on other file systems");
}

// What every run of this invocation shares.
RunOptions run_options(const CliOptions& o) {
  RunOptions r;
  r.threads = o.threads;
  r.dry_run = o.dry_run;
  r.protect = o.no_immutable ? Protect::none : Protect::immutable;
  r.attrs = o.attrs.get();
  r.min_size = o.min_size;
  r.max_size = o.max_size;
  r.ignore_mtime = o.ignore_mtime;
  r.reflink = o.reflink;
  r.one_file_system = o.one_file_system;
  r.memory_limit = o.memory_limit == UINT64_MAX ? default_memory_limit() : o.memory_limit;
  r.log_actions = o.verbose >= 1 && !o.json;
  r.log_skips = o.verbose >= 2 && !o.json;
  r.wait_for_lock = !o.no_wait;
  r.on_lock_wait = [quiet = o.quiet](const std::string& what, const std::string& holder) {
    if (!quiet)
      std::cerr << "vunify: waiting: " << what << " is being changed by " << holder << "\n";
  };
  if (auto all = ConfigBase(o.confdir).all(); all.ok()) r.other_guests = std::move(all->guests);
  return r;
}

// Runs f() with a progress line on stderr when that is a terminal.
template <typename F>
auto with_progress(const CliOptions& o, Progress& progress, const char* prog, F f) {
  std::optional<ProgressLine> line;
  if (!o.quiet && !o.json && ::isatty(STDERR_FILENO)) line.emplace(progress, prog);
  return f();
}

// Prints the report as the options ask and returns the exit status.
int finish(const CliOptions& o, const Report& r, const std::string& text) {
  if (o.json) {
    std::cout << with_run_info(report_to_json(r), "vunify").dump(2) << "\n";
  } else {
    for (const auto& a : r.actions) std::cout << a << "\n";
    if (!o.quiet)
      std::cout << text;
    else if (r.failed())
      std::cerr << report_to_text(r, 0);
    if (o.stats)
      for (const auto& [k, v] : r.stage_seconds)
        std::cout << fmt::format("{:>8}: {:.3f} s\n", k, v);
  }
  if (r.failed()) {
    std::cerr << fmt::format("vunify: {} file operations failed (see above)\n", r.failure_count());
    return exit_status(ExitCode::partial);
  }
  return exit_status(ExitCode::ok);
}

// Guests from a configuration base should live behind a barrier; say so
// (stderr, not with -q or --json) when the base is not one.
void warn_about_barrier(const CliOptions& o, const std::vector<UnifyGuest>& guests) {
  if (o.quiet || o.json || o.manually) return;
  std::vector<Guest> configured;
  for (const auto& g : guests)
    if (!g.guest.confdir.empty()) configured.push_back(g.guest);
  if (configured.empty()) return;
  ConfigBase config(o.confdir);
  std::string base = config.vdirbase();
  if (!path_exists(base)) return;
  auto problems = check_guest_base(base, configured, config.hash_stores());
  if (!problems.ok()) return;
  for (const auto& p : *problems) std::cerr << "vunify: warning: barrier: " << p << "\n";
}

// vunify --store DIR: the store run of vhashify(8) with vunify's options.
int run_store(const CliOptions& o, const SelectedGuests& selected) {
  HashifyOptions h;
  static_cast<RunOptions&>(h) = run_options(o);
  h.store = o.store;
  Progress progress;
  h.progress = &progress;
  auto r = with_progress(o, progress, "vunify", [&] { return run_hashify(selected.guests, h); });
  if (!r.ok()) throw SetupError(r.error().message());
  note_left_out(selected, *r);
  return finish(o, *r, report_to_text(*r, o.verbose));
}

// vunify -R: each guest separately; the package manager is not consulted
// (private copies of config files are harmless).
int run_revert(const CliOptions& o) {
  if (o.manually || o.all || o.args.empty())
    throw SetupError("-R needs guest names or paths (not --all or --manually)");
  for (const auto& p : o.paths)
    if (p.front() != '/')
      throw SetupError("--path '" + printable_path(p) +
                       "': not an absolute path inside the guest (write /" + printable_path(p) +
                       ")");
  ConfigBase config(o.confdir);
  DeunifyOptions d;
  static_cast<RunOptions&>(d) = run_options(o);
  Report total;
  total.dry_run = o.dry_run;
  // Every guest is resolved and checked before the first is touched.
  std::vector<Guest> guests;
  for (const auto& a : o.args) guests.push_back(need(config.resolve(a)));
  if (auto roots = check_guest_roots(guests); !roots.ok())
    throw SetupError(roots.error().message());
  for (const auto& g : guests) {
    UnifyGuest u;
    u.guest = g;
    Progress progress;
    d.progress = &progress;
    auto r = with_progress(o, progress, "vunify", [&] { return run_deunify(u, o.paths, d); });
    if (!r.ok()) throw SetupError(r.error().message());
    total.guests.insert(total.guests.end(), r->guests.begin(), r->guests.end());
    total.files_scanned += r->files_scanned;
    total.bytes_scanned += r->bytes_scanned;
    total.files_deunified += r->files_deunified;
    total.bytes_copied += r->bytes_copied;
    total.temporaries_removed += r->temporaries_removed;
    merge_failures(total, *r);
    total.actions.insert(total.actions.end(), r->actions.begin(), r->actions.end());
    total.seconds += r->seconds;
  }
  std::string text = fmt::format("{} guests, {} files scanned; {} names {}given private copies ({} "
                                 "copied), {} temporaries removed\n",
                                 total.guests.size(), total.files_scanned, total.files_deunified,
                                 o.dry_run ? "would be " : "", human_bytes(total.bytes_copied),
                                 total.temporaries_removed);
  for (const auto& [k, v] : total.failures)
    text += fmt::format("errors ({}): {}, e.g. {}: {}\n", failure_name(k), v.count,
                        printable_path(v.first_path), printable_path(v.first_message));
  return finish(o, total, text);
}

int run(int argc, char** argv) {
  CLI::App app{"vunify: replace identical files of several guests with protected hard links",
               "vunify"};
  app.set_version_flag("--version", std::string("vunify ") + k_version);
  CliOptions o;
  add_options(app, o);
  add_help_footer(app, k_common_exit_codes,
                  {"vunify -n -v --all            # what would be shared, and the savings",
                   "vunify --all                  # share identical files of every guest",
                   "vunify -R web1 --path /usr/bin/x   # web1 gets its own copy of one file"});
  if (auto done = parse_command_line(app, argc, argv)) return *done;
  if (o.reflink && o.revert)
    throw SetupError("--reflink and -R: files that share extents are never shared inodes; "
                     "there is nothing to revert");
  if (o.reflink && !o.store.empty())
    throw SetupError("--reflink and --store: the hash store links files; use one of them");
  if (!o.dry_run && o.reflink)
    require_capabilities(reflink_capabilities(), "sharing the extents of guests' files",
                         "-n (a dry run) works without");
  else if (!o.dry_run)
    require_capabilities(linking_capabilities(!o.no_immutable),
                         o.revert ? "giving guests their own copies" : "linking guests' files",
                         o.revert ? "" : "-n (a dry run) works without");
  o.attrs = choose_attr_backend("vunify", o.attr_backend, o.confdir);
  if (o.revert) return run_revert(o);
  if (!o.paths.empty()) throw SetupError("--path is for -R (vunify -R GUEST --path /usr/bin/x)");

  GuestSelection sel;
  sel.args = o.args;
  sel.all = o.all;
  sel.manually = o.manually;
  sel.confdir = o.confdir;
  sel.exclude_from = o.exclude_from;
  sel.no_default_excludes = o.no_default_excludes;
  sel.excludes = o.excludes;
  sel.includes = o.includes;
  sel.no_pkgmgmt = o.no_pkgmgmt;
  auto selected = need(select_guests(sel));
  print_left_out("vunify", selected);
  warn_about_barrier(o, selected.guests);
  if (!o.store.empty()) return run_store(o, selected);

  UnifyOptions uo;
  static_cast<RunOptions&>(uo) = run_options(o);
  Progress progress;
  uo.progress = &progress;
  auto report =
      with_progress(o, progress, "vunify", [&] { return run_unify(selected.guests, uo); });
  if (!report.ok()) throw SetupError(report.error().message());
  note_left_out(selected, *report);
  return finish(o, *report, report_to_text(*report, o.verbose));
}

} // namespace

int run_vunify(int argc, char** argv) {
  return run_program("vunify", run, argc, argv);
}

} // namespace vu
