// The update of unified guests that vapt-get and vrpm share (see
// package_update.h).
#include "tools/common/package_update.h"
#include "tools/common/json_out.h"

#include "core/runtime.h"
#include "kernel/fs.h"
#include "kernel/mount.h"
#include "kernel/ns.h"
#include "tools/common/cli.h"
#include "tools/common/guest_selection.h"
#include "unify/deunify.h"
#include "version.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <signal.h>
#include <stdlib.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <iostream>
#include <memory>
#include <optional>

namespace vu {

namespace {
// Set when the program starts; the preparing children inherit it.
const auto k_started = std::chrono::steady_clock::now();
} // namespace

void update_stage(const UpdateOptions& o, const std::string& guest, const std::string& what) {
  const auto t0 = k_started;
  if (o.debug) {
    const auto ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0)
            .count();
    std::cerr << o.prog << ": " << guest << ": +" << ms << " ms: " << what << "\n";
  } else if (!o.quiet && !o.json && ::isatty(STDERR_FILENO)) {
    std::cerr << o.prog << ": " << guest << ": " << what << "\n";
  }
}

Result<ProgramOutput> collect_in_guest(const VServerConfig& c, const std::vector<std::string>& argv,
                                       const std::vector<ContextDir>& mounts) {
  ProgramOutput r;
  auto code = run_in_guest_reading(
      c, argv,
      [&](std::string_view s) -> Status {
        if (r.out.size() + s.size() > (16u << 20))
          return described_error(EFBIG, argv.front() + " in the guest wrote more than 16 MiB");
        r.out.append(s);
        return {};
      },
      mounts);
  if (!code.ok()) return code.error();
  r.exit_code = *code;
  return r;
}

Result<std::string> make_run_dir(const std::string& parent, const std::string& prefix) {
  std::error_code ignored;
  for (const auto& e : std::filesystem::directory_iterator(parent, ignored)) {
    const std::string name = e.path().filename().string();
    if (name.rfind(prefix + ".", 0) != 0) continue;
    const long pid = std::strtol(name.c_str() + prefix.size() + 1, nullptr, 10);
    // A zombie counts as gone (kernel/ns.h): a killed run's children may
    // never be reaped.
    if (pid > 0 && !process_start_ticks(static_cast<pid_t>(pid)).ok())
      std::filesystem::remove_all(e.path(), ignored);
  }
  std::string dir = parent + "/" + prefix + "." + std::to_string(::getpid()) + ".XXXXXX";
  if (!::mkdtemp(dir.data())) return make_error(errno, "mkdtemp " + dir);
  return dir;
}

DbPlace database_place(const UpdateOptions& o, const VServerConfig& c, PackageDb kind) {
  DbPlace db;
  db.kind = kind;
  db.layout = pkgmgmt_layout(ConfigBase(o.confdir), c.guest);
  db.external = database_is_external(db.layout, kind);
  return db;
}

namespace {

// The directory `path` (relative) beneath the guest root, made (0755)
// when missing; without following symlinks.
Result<UniqueFd> mount_point_in_guest(int root, const std::string& path) {
  const auto slash = path.rfind('/');
  VU_TRY_ASSIGN(parent, open_beneath(root, path.substr(0, slash), O_PATH | O_DIRECTORY));
  const std::string leaf = path.substr(slash + 1);
  if (::mkdirat(parent.get(), leaf.c_str(), 0755) != 0 && errno != EEXIST)
    return make_error(errno, "mkdir /" + path + " in the guest");
  auto point = open_beneath(parent.get(), leaf, O_PATH | O_DIRECTORY);
  if (!point.ok())
    return described_error(point.code(), "/" + path + " in the guest: " + point.error().message() +
                                             " (it must be a directory, not a symlink)");
  return point;
}

} // namespace

Status add_context_dir(OwnedMounts& m, UniqueFd dir, int root, const std::string& target,
                       bool writable) {
  VU_TRY(mount_point_in_guest(root, target));
  // Not noexec: dpkg runs the maintainer scripts it keeps in its database.
  unsigned attr = MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV;
  if (!writable) attr |= MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOEXEC;
  m.mounts.push_back({dir.get(), target, attr});
  m.dirs.push_back(std::move(dir));
  return {};
}

Result<OwnedMounts> database_mounts(const DbPlace& db, const VServerConfig& c, int root,
                                    bool writable) {
  OwnedMounts m;
  if (!db.external) return m;
  VU_TRY_ASSIGN(state, open_layout_dir(db.layout.state(db.kind), c.guest));
  VU_TRY(add_context_dir(m, std::move(state), root, database_path_in_guest(db.kind), writable));
  return m;
}

namespace {

// The planned paths (absolute guest paths) that are regular files beneath
// the root, sorted and unique, and of those the ones linked from elsewhere
// or immutable (what step 2 has to copy); each is looked at once.
struct PlannedFiles {
  std::vector<std::string> regular, shared;
};

PlannedFiles planned_files(int root, std::vector<std::string> candidates) {
  std::sort(candidates.begin(), candidates.end());
  candidates.erase(std::unique(candidates.begin(), candidates.end()), candidates.end());
  PlannedFiles out;
  for (const auto& path : candidates) {
    if (path.size() < 2 || path.front() != '/') continue;
    auto fd = open_beneath(root, path.substr(1), O_PATH);
    auto st = fd.ok() ? stat_fd(fd->get()) : Result<FileStat>(fd.error());
    if (!st.ok() || !st->is_regular()) continue;
    out.regular.push_back(path);
    if (st->nlink > 1 || st->immutable) out.shared.push_back(path);
  }
  return out;
}

} // namespace

std::vector<std::string> regular_files_in(int root, std::vector<std::string> candidates) {
  return planned_files(root, std::move(candidates)).regular;
}

namespace {

// Step 2: the planned names that are shared (PlannedFiles::shared) get
// private copies.
Status make_private(const PackageTool& tool, const UpdateOptions& o, const VServerConfig& c,
                    const std::vector<std::string>& paths, UpdateOutcome& out) {
  if (paths.empty()) return {}; // (no paths would mean the whole guest)
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
  d.lock_holder = tool.prog;
  update_stage(o, c.guest.name, "making " + std::to_string(paths.size()) + " files private");
  VU_TRY_ASSIGN(report, run_deunify(selected.guests.front(), paths, d));
  out.files_private = report.files_deunified;
  if (report.failed())
    return described_error(EIO, std::to_string(report.failure_count()) +
                                    " files could not be made private (vunify -R --path on them "
                                    "says why); " +
                                    tool.manager + " was not run");
  return {};
}

// Step 4, started: vhashify for the guest, its report read when it ends.
struct PendingShare {
  StartedProgram program;
  size_t index = 0; // of the outcome
};

Result<PendingShare> start_share(const UpdateOptions& o, const std::string& name, size_t index) {
  std::vector<std::string> argv{sibling_program("vhashify"), "--json"};
  if (!o.confdir.empty()) argv.insert(argv.end(), {"--confdir", o.confdir});
  argv.push_back(name);
  VU_TRY_ASSIGN(started, start_host_program(argv));
  return PendingShare{std::move(started), index};
}

void finish_share(const UpdateOptions& o, PendingShare& p, UpdateOutcome& out) {
  auto run = finish_host_program(p.program);
  update_stage(o, out.name, "vhashify done");
  std::string problem;
  if (!run.ok()) {
    problem = run.error().message();
  } else {
    try {
      out.files_shared = nlohmann::json::parse(run->out).value("files_linked", uint64_t{0});
    } catch (const std::exception&) {
      problem = "vhashify " + out.name + " gave no report";
    }
    if (run->exit_code != 0)
      problem = "vhashify " + out.name + " exited with " + std::to_string(run->exit_code) +
                " (run it to see why)";
  }
  if (!problem.empty() && out.error.empty()) out.error = problem;
}

// A guest after steps 1 and 2: `config` is set when step 3 may run.
struct Prepared {
  UpdateOutcome out;
  std::optional<VServerConfig> config;
};

// Steps 1 and 2 for one guest; the outcome says what failed.
Prepared prepare_guest(const PackageTool& tool, const UpdateOptions& o, const std::string& name) {
  Prepared p;
  UpdateOutcome& out = p.out;
  out.name = name;
  auto fail = [&](const Error& e) {
    out.error = e.message();
    return std::move(p);
  };
  auto c = load_vserver_config(ConfigBase(o.confdir), name);
  if (!c.ok()) return fail(c.error());
  auto st = guest_status(name);
  out.running = st.ok() && st->running;
  int fd = ::open(c->guest.root.c_str(), O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return fail(make_error(errno, "guest root " + c->guest.root));
  UniqueFd root(fd);
  out.changes = tool.changes(o.args);
  if (out.changes) {
    auto planned = tool.plan(o, *c, root.get(), database_place(o, *c, tool.db), out);
    if (!planned.ok()) return fail(planned.error());
    const auto files = planned_files(root.get(), std::move(*planned));
    out.files_planned = files.regular.size();
    if (auto r = make_private(tool, o, *c, files.shared, out); !r.ok()) return fail(r.error());
  }
  p.config = std::move(*c);
  return p;
}

// The archives an external database's transaction installs, linked (else
// copied) into a directory made for it in the host's apt cache, which the
// guest sees read-only as /var/cache/apt/archives; removed afterwards, and
// what a killed run left at the next one. The cache directory stays locked
// (flock) meanwhile: one transaction of a guest at a time.
struct StagedArchives {
  std::string path;
  UniqueFd cache, dir;
  ~StagedArchives() {
    std::error_code ignored;
    if (!path.empty()) std::filesystem::remove_all(path, ignored);
  }
};

Result<std::unique_ptr<StagedArchives>> stage_archives(const DbPlace& db, const VServerConfig& c,
                                                       const std::vector<std::string>& archives) {
  VU_TRY_ASSIGN(cache, open_layout_dir(db.layout.apt_cache, c.guest, true));
  while (::flock(cache.get(), LOCK_EX) != 0)
    if (errno != EINTR) return make_error(errno, "flock " + db.layout.apt_cache);
  std::error_code ignored;
  for (const auto& e : std::filesystem::directory_iterator(db.layout.apt_cache, ignored))
    if (e.path().filename().string().rfind("vunify-install.", 0) == 0)
      std::filesystem::remove_all(e.path(), ignored);
  auto staged = std::make_unique<StagedArchives>();
  staged->cache = std::move(cache);
  std::string templ = db.layout.apt_cache + "/vunify-install.XXXXXX";
  if (!::mkdtemp(templ.data())) return make_error(errno, "mkdtemp " + templ);
  staged->path = templ;
  for (size_t i = 0; i < archives.size(); ++i) {
    const std::string to = templ + "/" + fmt::format("{:03}-", i) +
                           std::filesystem::path(archives[i]).filename().string();
    if (::link(archives[i].c_str(), to.c_str()) != 0 &&
        !std::filesystem::copy_file(archives[i], to, ignored))
      return described_error(EIO, "cannot stage " + archives[i] + " in " + templ);
  }
  int fd = ::open(templ.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return make_error(errno, templ);
  staged->dir = UniqueFd(fd);
  return staged;
}

// Step 3's commands in order, each until one fails; its exit status.
Result<int> run_commands(const PackageTool& tool, const UpdateOptions& o, const VServerConfig& c,
                         const UpdateOutcome& out) {
  const DbPlace db = database_place(o, c, tool.db);
  std::fflush(nullptr);
  if (db.external && !out.changes && tool.on_host) return tool.on_host(o, c, db);
  if (!o.host_program.empty() && tool.host_run) return tool.host_run(o, c, db);
  int fd = ::open(c.guest.root.c_str(), O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return make_error(errno, "guest root " + c.guest.root);
  UniqueFd root(fd);
  VU_TRY_ASSIGN(mounts, database_mounts(db, c, root.get(), true));
  std::unique_ptr<StagedArchives> staged;
  if (db.external && !out.archives.empty()) {
    VU_TRY_ASSIGN(s, stage_archives(db, c, out.archives));
    staged = std::move(s);
    int dup = ::fcntl(staged->dir.get(), F_DUPFD_CLOEXEC, 3);
    if (dup < 0) return make_error(errno, "dup");
    VU_TRY(add_context_dir(mounts, UniqueFd(dup), root.get(), "var/cache/apt/archives", false));
  }
  auto commands = out.guest_commands;
  if (commands.empty()) commands.push_back(tool.command(o.args));
  int code = 0;
  for (const auto& argv : commands) {
    VU_TRY_ASSIGN(
        c_code, run_in_guest_context(c, argv, RuntimeIo{o.json ? 2 : 1, true, {}}, mounts.mounts));
    if ((code = c_code) != 0) break;
  }
  if (code == 0 && db.external && tool.after) VU_TRY(tool.after(o, c, db, out));
  return code;
}

// Step 3, with its output relayed.
void run_guest(const PackageTool& tool, const UpdateOptions& o, Prepared& p) {
  UpdateOutcome& out = p.out;
  if (!out.output.empty()) {
    std::cerr << out.output;
    std::cerr.flush();
  }
  if (!p.config || o.dry_run) return;
  update_stage(o, out.name, tool.manager);
  auto code = run_commands(tool, o, *p.config, out);
  if (!code.ok()) {
    out.error = code.error().message();
    return;
  }
  out.exit_status = *code;
  if (out.exit_status != 0)
    out.error = std::string(tool.manager) + " exited with " + std::to_string(out.exit_status);
}

nlohmann::json outcome_json(const UpdateOutcome& r) {
  nlohmann::json j{{"name", r.name},
                   {"running", r.running},
                   {"installs", r.installs},
                   {"removals", r.removals},
                   {"files_planned", r.files_planned},
                   {"files_made_private", r.files_private},
                   {"ok", r.error.empty()}};
  j["exit_status"] = r.exit_status >= 0 ? nlohmann::json(r.exit_status) : nlohmann::json(nullptr);
  j["files_shared_again"] =
      r.files_shared != -1ull ? nlohmann::json(r.files_shared) : nlohmann::json(nullptr);
  if (!r.error.empty()) j["error"] = r.error;
  return j;
}

void print_summary(const PackageTool& tool, const UpdateOptions& o,
                   const std::vector<UpdateOutcome>& results) {
  size_t failed = 0;
  for (const auto& r : results) failed += !r.error.empty();
  if (o.json) {
    nlohmann::json j{{"dry_run", o.dry_run}, {"failed", failed}};
    auto& guests = j["guests"] = nlohmann::json::array();
    for (const auto& r : results) guests.push_back(outcome_json(r));
    // The shape every tool's "errors" has: by kind, a count, the first
    // example and its message (here one kind: a guest's update failed).
    j["errors"] = nlohmann::json::object();
    for (const auto& r : results)
      if (!r.error.empty() && !j["errors"].contains("guest"))
        j["errors"]["guest"] = {{"count", failed}, {"example", r.name}, {"message", r.error}};
    j["error_count"] = failed;
    std::cout << with_run_info(j, tool.prog).dump(2) << "\n";
    return;
  }
  for (const auto& r : results) {
    if (!r.error.empty()) print_error(tool.prog, r.name + ": " + r.error);
    if (o.quiet || (!r.changes && r.exit_status < 0)) continue;
    std::string line = std::string(tool.prog) + ": " + r.name + ": ";
    if (r.changes)
      line += fmt::format("{} to install, {} to remove; {} of {} files of the update{} made "
                          "private",
                          r.installs, r.removals, r.files_private, r.files_planned,
                          o.dry_run ? " would be" : "");
    if (r.files_shared != -1ull) line += fmt::format("; {} shared again", r.files_shared);
    if (r.exit_status >= 0)
      line += fmt::format("{}{} exit {}", r.changes ? "; " : "", tool.manager, r.exit_status);
    std::cerr << line << "\n";
  }
}

// The whole outcome, to pass it from the preparing child to the program.
nlohmann::json outcome_state(const UpdateOutcome& r) {
  return {{"name", r.name},
          {"running", r.running},
          {"changes", r.changes},
          {"installs", r.installs},
          {"removals", r.removals},
          {"files_planned", r.files_planned},
          {"files_private", r.files_private},
          {"error", r.error},
          {"output", r.output},
          {"guest_commands", r.guest_commands},
          {"archives", r.archives},
          {"automatic", r.automatic}};
}

UpdateOutcome outcome_of_state(const nlohmann::json& j) {
  UpdateOutcome r;
  r.name = j.at("name").get<std::string>();
  r.running = j.at("running").get<bool>();
  r.changes = j.at("changes").get<bool>();
  r.installs = j.at("installs").get<size_t>();
  r.removals = j.at("removals").get<size_t>();
  r.files_planned = j.at("files_planned").get<uint64_t>();
  r.files_private = j.at("files_private").get<uint64_t>();
  r.error = j.at("error").get<std::string>();
  r.output = j.at("output").get<std::string>();
  r.guest_commands = j.at("guest_commands").get<std::vector<std::vector<std::string>>>();
  r.archives = j.at("archives").get<std::vector<std::string>>();
  r.automatic = j.at("automatic").get<std::vector<std::string>>();
  return r;
}

// Steps 1 and 2 run in a child process: the program stays single-threaded
// while it clones a guest's processes (see core/runtime.h, RuntimeIo::sink),
// and the child dies with it. Its result is its outcome, as JSON.
Result<StartedProgram> start_prepare(const PackageTool& tool, const UpdateOptions& o,
                                     const std::string& name) {
  int p[2];
  if (::pipe2(p, O_CLOEXEC) != 0) return make_error(errno, "pipe");
  UniqueFd r(p[0]), w(p[1]);
  VU_TRY_ASSIGN(pid, fork_dying_with_parent());
  if (pid == 0) {
    r.reset();
    Prepared prepared = prepare_guest(tool, o, name);
    auto state = outcome_state(prepared.out);
    state["ready"] = prepared.config.has_value();
    (void)write_all(w.get(), state.dump());
    ::_exit(0);
  }
  return StartedProgram{"the preparation of " + name, pid, std::move(r)};
}

Prepared finish_prepare(const UpdateOptions& o, const std::string& name, StartedProgram& child) {
  Prepared p;
  p.out.name = name;
  auto done = finish_host_program(child, 64u << 20);
  try {
    if (!done.ok()) throw std::runtime_error(done.error().message());
    auto state = nlohmann::json::parse(done->out);
    p.out = outcome_of_state(state);
    if (state.at("ready").get<bool>()) {
      auto c = load_vserver_config(ConfigBase(o.confdir), name);
      if (c.ok())
        p.config = std::move(*c);
      else
        p.out.error = c.error().message();
    }
  } catch (const std::exception& e) {
    p.out.error = std::string("preparing the update failed: ") + e.what() +
                  (done.ok() ? " (exit " + std::to_string(done->exit_code) + ")" : "");
  }
  return p;
}

// Every guest in turn. While one guest's package manager runs (step 3),
// the next guest is planned and prepared (steps 1 and 2, whose output is
// held back until its turn) and the previous one's vhashify runs (one at
// a time: they would wait for the store's lock anyway).
std::vector<UpdateOutcome> update_all(const PackageTool& tool, const UpdateOptions& o) {
  std::vector<UpdateOutcome> results;
  std::unique_ptr<PendingShare> pending;
  auto finish_pending = [&] {
    if (pending) finish_share(o, *pending, results[pending->index]);
    pending.reset();
  };
  auto ahead = start_prepare(tool, o, o.names[0]);
  for (size_t i = 0; i < o.names.size(); ++i) {
    Prepared p;
    if (ahead.ok()) {
      p = finish_prepare(o, o.names[i], *ahead);
    } else {
      p.out.name = o.names[i];
      p.out.error = ahead.error().message();
    }
    if (i + 1 < o.names.size()) ahead = start_prepare(tool, o, o.names[i + 1]);
    run_guest(tool, o, p);
    results.push_back(std::move(p.out));
    finish_pending();
    const auto& r = results.back();
    const bool touched = r.installs + r.removals > 0 || r.files_private > 0;
    if (!r.changes || !touched || o.dry_run || o.no_reunify || r.exit_status < 0) continue;
    update_stage(o, r.name, "vhashify");
    auto started = start_share(o, r.name, results.size() - 1);
    if (started.ok())
      pending = std::make_unique<PendingShare>(std::move(*started));
    else if (results.back().error.empty())
      results.back().error = started.error().message();
  }
  finish_pending();
  return results;
}

} // namespace

int run_package_tool(const PackageTool& tool, int argc, char** argv) {
  const std::string prog = tool.prog;
  CLI::App app{std::string(tool.description) + "\n\nusage: " + prog + " [options] NAME... -- " +
                   tool.manager + "-ARGUMENTS",
               prog};
  app.set_version_flag("--version", prog + " " + k_version);
  UpdateOptions o;
  o.prog = prog;
  app.add_option("names", o.names, "the guests, one after the other")->check(non_empty());
  app.add_flag("--all", o.all, "every guest of the configuration base");
  add_confdir_option(app, o.confdir);
  app.add_flag("-n,--dry-run", o.dry_run,
               "plan in each guest and count the files the update would make private; "
               "download, change and run nothing else");
  app.add_flag("--no-reunify", o.no_reunify, "do not run vhashify for the guests afterwards");
  app.add_flag("--json", o.json,
               std::string("a JSON summary on stdout (") + tool.manager + "'s output on stderr)");
  app.add_flag("-q,--quiet", o.quiet, "no summary lines; errors only");
  app.add_flag("--debug", o.debug, "each step on stderr, with its time");
  if (tool.host_option)
    app.add_option(tool.host_option, o.host_program,
                   std::string("run this program of the host's (absolute path) on stopped guests "
                               "instead of their own ") +
                       tool.manager + ", under libvu-preload.so")
        ->check(CLI::Validator(
            [](std::string& v) {
              return !v.empty() && v.front() == '/' ? std::string()
                                                    : std::string("an absolute path is needed");
            },
            ""))
        ->type_name("PATH");
  int ours = argc; // everything after "--" is the package manager's
  for (int i = 1; i < argc; ++i)
    if (std::string_view(argv[i]) == "--") {
      ours = i;
      break;
    }
  for (int i = ours + 1; i < argc; ++i) o.args.emplace_back(argv[i]);
  const bool apt = std::string_view(tool.manager) == "apt-get";
  add_help_footer(app,
                  std::string("0 ") + tool.manager +
                      " succeeded in every guest; 1 something failed in a guest (one line each; "
                      "the others were still done); 2 usage error",
                  apt ? std::vector<std::string>{"vapt-get web1 web2 -- install hello",
                                                 "vapt-get -n --all -- upgrade   # plan only"}
                      : std::vector<std::string>{prog + " web1 -- -Uvh /srv/rpms/hello.rpm",
                                                 prog + " web1 -- -q hello"});
  if (auto done = parse_command_line(app, ours, argv)) return *done;
  require_config_base(o.confdir);
  if (o.args.empty()) {
    print_error(prog, std::string("no ") + tool.manager + " arguments: " + prog +
                          " NAME... -- ARGS (see " + prog + " --help)");
    return exit_status(ExitCode::usage);
  }
  if (o.all) {
    auto all = ConfigBase(o.confdir).all();
    if (!all.ok()) throw std::runtime_error(all.error().message());
    for (const auto& g : all->guests) o.names.push_back(g.name);
  }
  // Each guest once: the next guest is prepared while one runs.
  std::vector<std::string> unique;
  for (const auto& n : o.names)
    if (std::find(unique.begin(), unique.end(), n) == unique.end()) unique.push_back(n);
  o.names = std::move(unique);
  if (o.names.empty()) {
    print_error(prog, "no guests given (name them, or --all; see " + prog + " --help)");
    return exit_status(ExitCode::usage);
  }
  const auto results = update_all(tool, o);
  print_summary(tool, o, results);
  const bool failed = std::any_of(results.begin(), results.end(),
                                  [](const UpdateOutcome& r) { return !r.error.empty(); });
  return exit_status(failed ? ExitCode::partial : ExitCode::ok);
}

} // namespace vu
