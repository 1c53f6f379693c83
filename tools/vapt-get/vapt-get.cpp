// vapt-get: apt-get in unified guests, util-vserver's syntax
// (vapt-get [options] NAME... -- APT-GET-ARGS). Each guest in turn:
//   1. plan (when the command changes packages): apt-get --simulate in the
//      guest gives the steps; the archives they install are downloaded
//      (apt-get --download-only) and their member names read (the guest's
//      dpkg-deb --fsys-tarfile, tar headers parsed here, pkgmgmt/
//      tar_names.h); the file lists of installed packages the steps
//      replace or remove come from the guest's dpkg database;
//   2. those of the guest's files that are shared are made private
//      (unify/deunify.h with those paths): dpkg links every file it
//      replaces, which a shared, immutable inode refuses;
//   3. apt-get runs in the guest's context (core/runtime.h: exec when the
//      guest runs, else a context made for the call);
//   4. vhashify links the guest to its hash store again, so files the
//      update made identical to other guests' are shared at once.
// Every command runs inside the guest with its capabilities: nothing of
// the guest runs on the host, and what it prints only chooses which of
// its own files are made private.
#include "tools/vapt-get/vapt-get.h"

#include "core/runtime.h"
#include "kernel/fs.h"
#include "pkgmgmt/apt_plan.h"
#include "pkgmgmt/tar_names.h"
#include "tools/common/cli.h"
#include "tools/common/guest_selection.h"
#include "tools/common/programs.h"
#include "unify/deunify.h"
#include "version.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <unistd.h>

#include <algorithm>
#include <iostream>

namespace vu {

namespace {

struct Options {
  std::vector<std::string> names;
  bool all = false;
  std::string confdir;
  bool json = false, quiet = false, dry_run = false, no_reunify = false;
  std::vector<std::string> apt_args;
};

// What happened in one guest.
struct Outcome {
  std::string name;
  bool running = false;
  bool changes = false; // the command changes packages (steps 1, 2, 4)
  size_t installs = 0, removals = 0;
  uint64_t files_planned = 0;    // names the plan touches
  uint64_t files_private = 0;    // shared names made private
  int apt_exit = -1;             // -1: apt-get did not run
  uint64_t files_shared = -1ull; // linked again by vhashify; -1: not run
  std::string error;             // empty: everything succeeded
};

// One-line notices on a terminal, never in cron or with --json/--quiet.
void stage(const Options& o, const std::string& guest, const std::string& what) {
  if (!o.quiet && !o.json && ::isatty(STDERR_FILENO))
    std::cerr << "vapt-get: " << guest << ": " << what << "\n";
}

std::vector<std::string> apt_command(const std::vector<std::string>& first,
                                     const std::vector<std::string>& args) {
  std::vector<std::string> argv{"env", "DEBIAN_FRONTEND=noninteractive", "apt-get"};
  argv.insert(argv.end(), first.begin(), first.end());
  argv.insert(argv.end(), args.begin(), args.end());
  return argv;
}

// Runs a command in the guest, collecting at most 16 MiB of its output.
Result<ProgramOutput> collect(const VServerConfig& c, const std::vector<std::string>& argv) {
  ProgramOutput r;
  auto code = run_in_guest_reading(c, argv, [&](std::string_view s) -> Status {
    if (r.out.size() + s.size() > (16u << 20))
      return described_error(EFBIG, argv[2] + " in the guest wrote more than 16 MiB");
    r.out.append(s);
    return {};
  });
  if (!code.ok()) return code.error();
  r.exit_code = *code;
  return r;
}

// The archives the transaction installs, as paths in the guest: those
// apt-get --print-uris names (after the download), the cached archives of
// the install steps, the local archives on the command line; only those
// that are regular files in the guest.
Result<std::vector<std::string>> archives_of(const Options& o, const VServerConfig& c, int root,
                                             const std::vector<AptStep>& steps) {
  VU_TRY_ASSIGN(uris, collect(c, apt_command({"--print-uris", "-qq"}, o.apt_args)));
  if (uris.exit_code != 0) {
    std::cerr << uris.out;
    return described_error(EIO, "apt-get --print-uris exited with " +
                                    std::to_string(uris.exit_code) + " (its output above)");
  }
  VU_TRY_ASSIGN(candidates, parse_apt_print_uris(uris.out));
  for (const auto& s : steps)
    if (s.action == AptAction::install)
      candidates.push_back("/var/cache/apt/archives/" + apt_archive_name(s));
  for (const auto& a : o.apt_args) // relative to the command's directory, the guest's /
    if (a.size() > 4 && a.compare(a.size() - 4, 4, ".deb") == 0 && a.find('/') != a.npos)
      candidates.push_back(a.front() == '/' ? a : "/" + a);
  std::sort(candidates.begin(), candidates.end());
  candidates.erase(std::unique(candidates.begin(), candidates.end()), candidates.end());
  std::vector<std::string> out;
  for (const auto& path : candidates) {
    auto fd = open_beneath(root, path.substr(1), O_PATH);
    auto st = fd.ok() ? stat_fd(fd->get()) : Result<FileStat>(fd.error());
    if (st.ok() && st->is_regular()) out.push_back(path);
  }
  return out;
}

// Member names of the archives, read by the guest's dpkg-deb.
Result<std::vector<std::string>> archive_names(const VServerConfig& c,
                                               const std::vector<std::string>& archives) {
  if (archives.empty()) return std::vector<std::string>{};
  std::vector<std::string> argv{
      "/bin/sh", "-c", "for f; do dpkg-deb --fsys-tarfile \"$f\" 2>/dev/null || exit 1; done",
      "sh"};
  argv.insert(argv.end(), archives.begin(), archives.end());
  TarNameReader reader;
  VU_TRY_ASSIGN(code,
                run_in_guest_reading(c, argv, [&](std::string_view s) { return reader.feed(s); }));
  if (code != 0)
    return described_error(EIO, "dpkg-deb --fsys-tarfile failed in the guest (exit " +
                                    std::to_string(code) + ") for one of: " + archives.front() +
                                    (archives.size() > 1 ? " ..." : ""));
  VU_TRY(reader.finish());
  return reader.names();
}

// The installed files of the packages the steps replace or remove.
Result<std::vector<std::string>> installed_names(int root, const std::vector<AptStep>& steps) {
  std::vector<std::string> out;
  auto admin = open_beneath(root, "var/lib/dpkg", O_RDONLY | O_DIRECTORY);
  if (!admin.ok()) {
    if (admin.code() == ENOENT) return out;
    return described_error(admin.code(), "/var/lib/dpkg: " + admin.error().message());
  }
  for (const auto& s : steps) {
    if (s.action == AptAction::configure) continue;
    if (s.action == AptAction::install && s.old_version.empty()) continue;
    VU_TRY_ASSIGN(list, read_dpkg_file_lists(admin->get(), s.package));
    out.insert(out.end(), list.begin(), list.end());
  }
  return out;
}

// What the transaction will touch: its steps and the guest paths whose
// shared inodes must be made private first (sorted, unique).
struct Plan {
  std::vector<AptStep> steps;
  std::vector<std::string> paths;
};

Result<Plan> make_plan(const Options& o, const VServerConfig& c, int root, Outcome& out) {
  stage(o, c.guest.name, "apt-get --simulate");
  VU_TRY_ASSIGN(sim, collect(c, apt_command({"--simulate", "-q"}, o.apt_args)));
  if (sim.exit_code != 0) {
    std::cerr << sim.out;
    return described_error(EIO, "apt-get --simulate exited with " + std::to_string(sim.exit_code) +
                                    " (its output above)");
  }
  Plan plan;
  VU_TRY_ASSIGN(steps, parse_apt_simulation(sim.out));
  plan.steps = std::move(steps);
  for (const auto& s : plan.steps) {
    out.installs += s.action == AptAction::install;
    out.removals += s.action == AptAction::remove || s.action == AptAction::purge;
  }
  if (out.installs > 0 && !o.dry_run) {
    stage(o, c.guest.name, "apt-get --download-only");
    VU_TRY_ASSIGN(dl, collect(c, apt_command({"--download-only", "-y", "-q"}, o.apt_args)));
    if (dl.exit_code != 0) {
      std::cerr << dl.out;
      return described_error(EIO, "apt-get --download-only exited with " +
                                      std::to_string(dl.exit_code) + " (its output above)");
    }
  }
  VU_TRY_ASSIGN(archives, archives_of(o, c, root, plan.steps));
  VU_TRY_ASSIGN(fresh, archive_names(c, archives));
  VU_TRY_ASSIGN(old, installed_names(root, plan.steps));
  plan.paths = std::move(fresh);
  plan.paths.insert(plan.paths.end(), old.begin(), old.end());
  std::sort(plan.paths.begin(), plan.paths.end());
  plan.paths.erase(std::unique(plan.paths.begin(), plan.paths.end()), plan.paths.end());
  out.files_planned = plan.paths.size();
  return plan;
}

// Step 2: the planned names that are shared get private copies.
Status make_private(const Options& o, const VServerConfig& c, const std::vector<std::string>& paths,
                    Outcome& out) {
  if (paths.empty()) return {}; // no paths would mean the whole guest
  GuestSelection sel;
  sel.args = {c.guest.name};
  sel.confdir = o.confdir;
  sel.no_pkgmgmt = true;
  sel.classic_refservers = false;
  VU_TRY_ASSIGN(selected, select_guests(sel));
  if (selected.guests.empty())
    return described_error(ENOENT, "guest '" + c.guest.name + "' has no usable root");
  DeunifyOptions d;
  d.dry_run = o.dry_run;
  d.lock_holder = "vapt-get";
  stage(o, c.guest.name, "making the files of the update private");
  VU_TRY_ASSIGN(report, run_deunify(selected.guests.front(), paths, d));
  out.files_private = report.files_deunified;
  if (report.failed())
    return described_error(EIO, std::to_string(report.failure_count()) +
                                    " files could not be made private (vunify -R --path on "
                                    "them says why); apt-get was not run");
  return {};
}

// Step 4: vhashify for the guest; returns the names it linked.
Result<uint64_t> share_again(const Options& o, const std::string& name) {
  std::vector<std::string> argv{sibling_program("vhashify"), "--json"};
  if (!o.confdir.empty()) argv.insert(argv.end(), {"--confdir", o.confdir});
  argv.push_back(name);
  VU_TRY_ASSIGN(run, run_host_program(argv));
  uint64_t linked = 0;
  try {
    linked = nlohmann::json::parse(run.out).value("files_linked", uint64_t{0});
  } catch (const std::exception&) {
    return described_error(EIO, "vhashify " + name + " gave no report");
  }
  if (run.exit_code != 0)
    return described_error(EIO, "vhashify " + name + " exited with " +
                                    std::to_string(run.exit_code) + " (run it to see why)");
  return linked;
}

// Steps 1-4 for one guest; the outcome says what failed.
Outcome update_guest(const Options& o, const std::string& name) {
  Outcome out;
  out.name = name;
  auto fail = [&](const Error& e) {
    out.error = e.message();
    return out;
  };
  auto c = load_vserver_config(ConfigBase(o.confdir), name);
  if (!c.ok()) return fail(c.error());
  auto st = guest_status(name);
  out.running = st.ok() && st->running;
  int fd = ::open(c->guest.root.c_str(), O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return fail(make_error(errno, "guest root " + c->guest.root));
  UniqueFd root(fd);
  const bool changes = out.changes = apt_command_changes_packages(o.apt_args);
  if (changes) {
    auto plan = make_plan(o, *c, root.get(), out);
    if (!plan.ok()) return fail(plan.error());
    if (auto r = make_private(o, *c, plan->paths, out); !r.ok()) return fail(r.error());
  }
  if (o.dry_run) return out;
  stage(o, name, "apt-get");
  std::fflush(nullptr);
  auto code = run_in_guest_context(*c, apt_command({}, o.apt_args), o.json ? 2 : 1);
  if (!code.ok()) return fail(code.error());
  out.apt_exit = *code;
  if (changes && !o.no_reunify) {
    stage(o, name, "vhashify");
    auto linked = share_again(o, name);
    if (!linked.ok()) return fail(linked.error());
    out.files_shared = *linked;
  }
  if (out.apt_exit != 0) out.error = "apt-get exited with " + std::to_string(out.apt_exit);
  return out;
}

nlohmann::json outcome_json(const Outcome& r) {
  nlohmann::json j{{"name", r.name},
                   {"running", r.running},
                   {"installs", r.installs},
                   {"removals", r.removals},
                   {"files_planned", r.files_planned},
                   {"files_made_private", r.files_private},
                   {"ok", r.error.empty()}};
  j["apt_exit"] = r.apt_exit >= 0 ? nlohmann::json(r.apt_exit) : nlohmann::json(nullptr);
  j["files_shared_again"] =
      r.files_shared != -1ull ? nlohmann::json(r.files_shared) : nlohmann::json(nullptr);
  if (!r.error.empty()) j["error"] = r.error;
  return j;
}

void print_summary(const Options& o, const std::vector<Outcome>& results) {
  size_t failed = 0;
  for (const auto& r : results) failed += !r.error.empty();
  if (o.json) {
    nlohmann::json j{{"dry_run", o.dry_run}, {"failed", failed}};
    auto& guests = j["guests"] = nlohmann::json::array();
    for (const auto& r : results) guests.push_back(outcome_json(r));
    std::cout << j.dump(2) << "\n";
    return;
  }
  for (const auto& r : results) {
    if (!r.error.empty()) print_error("vapt-get", r.name + ": " + r.error);
    if (o.quiet || (!r.changes && r.apt_exit < 0)) continue;
    std::string line = "vapt-get: " + r.name + ": ";
    if (r.changes)
      line += fmt::format("{} to install, {} to remove; {} of {} files of the update{} made "
                          "private",
                          r.installs, r.removals, r.files_private, r.files_planned,
                          o.dry_run ? " would be" : "");
    if (r.files_shared != -1ull) line += fmt::format("; {} shared again", r.files_shared);
    if (r.apt_exit >= 0)
      line += (r.changes ? "; apt-get exit " : "apt-get exit ") + std::to_string(r.apt_exit);
    std::cerr << line << "\n";
  }
}

int run(int argc, char** argv) {
  CLI::App app{"vapt-get: apt-get in unified guests, which stay unified\n\n"
               "usage: vapt-get [options] NAME... -- APT-GET-ARGUMENTS",
               "vapt-get"};
  app.set_version_flag("--version", std::string("vapt-get ") + k_version);
  Options o;
  app.add_option("names", o.names, "the guests, one after the other")->check(non_empty());
  app.add_flag("--all", o.all, "every guest of the configuration base");
  add_confdir_option(app, o.confdir);
  app.add_flag("-n,--dry-run", o.dry_run,
               "simulate in each guest and count the files the update would make private; "
               "download, change and run nothing else");
  app.add_flag("--no-reunify", o.no_reunify, "do not run vhashify for the guest afterwards");
  app.add_flag("--json", o.json, "a JSON summary on stdout (apt-get's output goes to stderr)");
  app.add_flag("-q,--quiet", o.quiet, "no summary lines; errors only");
  // Everything after "--" is apt-get's.
  int ours = argc;
  for (int i = 1; i < argc; ++i)
    if (std::string_view(argv[i]) == "--") {
      ours = i;
      break;
    }
  for (int i = ours + 1; i < argc; ++i) o.apt_args.emplace_back(argv[i]);
  if (auto done = parse_command_line(app, ours, argv)) return *done;
  if (o.apt_args.empty()) {
    print_error("vapt-get", "no apt-get arguments: vapt-get NAME... -- ARGS (see vapt-get --help)");
    return exit_status(ExitCode::usage);
  }
  if (o.all) {
    auto all = ConfigBase(o.confdir).all();
    if (!all.ok()) throw std::runtime_error(all.error().message());
    for (const auto& g : all->guests) o.names.push_back(g.name);
  }
  if (o.names.empty()) {
    print_error("vapt-get", "no guests given (name them, or --all; see vapt-get --help)");
    return exit_status(ExitCode::usage);
  }
  std::vector<Outcome> results;
  for (const auto& name : o.names) results.push_back(update_guest(o, name));
  print_summary(o, results);
  const bool failed = std::any_of(results.begin(), results.end(),
                                  [](const Outcome& r) { return !r.error.empty(); });
  return exit_status(failed ? ExitCode::partial : ExitCode::ok);
}

} // namespace

int run_vapt_get(int argc, char** argv) {
  return run_program("vapt-get", run, argc, argv);
}

} // namespace vu
