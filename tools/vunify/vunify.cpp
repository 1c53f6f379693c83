// vunify: argument handling, guest resolution, progress and report output.
// The work itself is unify/run_unify.
#include "tools/vunify/vunify.h"

#include "unify/unify.h"
#include "version.h"

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <iostream>
#include <mutex>
#include <stdexcept>
#include <thread>

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
  std::string exclude_from;
  bool no_default_excludes = false;
  std::string confdir;
  uint64_t min_size = 16;
  bool one_file_system = false;
};

// A usage or set-up error: printed as "vunify: error: ...", exit status 2.
struct SetupError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

template <typename T> T need(Result<T> r) {
  if (!r.ok()) throw SetupError(r.error().message());
  return std::move(r).value();
}

// Prints a one-line progress indicator to stderr while a run is going on.
class ProgressLine {
public:
  explicit ProgressLine(Progress& p) : m_progress(p), m_thread([this] { loop(); }) {}
  ~ProgressLine() {
    {
      std::lock_guard lock(m_mutex);
      m_stop = true;
    }
    m_cv.notify_all();
    m_thread.join();
    std::fputs("\r\033[K", stderr);
    std::fflush(stderr);
  }

private:
  void loop() {
    std::unique_lock lock(m_mutex);
    do {
      static const char* names[] = {"scanning", "hashing", "linking", "done"};
      int stage = std::clamp(m_progress.stage.load(), 0, 3);
      std::fprintf(stderr, "\r\033[Kvunify: %s: %llu files scanned, %s hashed, %llu linked",
                   names[stage],
                   static_cast<unsigned long long>(m_progress.files_scanned.load()),
                   human_bytes(m_progress.bytes_hashed.load()).c_str(),
                   static_cast<unsigned long long>(m_progress.files_linked.load()));
      std::fflush(stderr);
    } while (!m_cv.wait_for(lock, std::chrono::milliseconds(200), [this] { return m_stop; }));
  }
  Progress& m_progress;
  std::mutex m_mutex;
  std::condition_variable m_cv;
  bool m_stop = false;
  std::thread m_thread;
};

ExcludeList base_excludes(const CliOptions& o) {
  if (!o.exclude_from.empty()) return need(ExcludeList::load(o.exclude_from));
  if (o.no_default_excludes) return {};
  return need(ExcludeList::parse(default_exclude_text(), "built-in default list"));
}

std::vector<UnifyGuest> select_guests(const CliOptions& o) {
  ConfigBase config(o.confdir);
  std::vector<UnifyGuest> out;
  ExcludeList base = base_excludes(o);

  if (o.manually) {
    // util-vserver: <path> <excludelist> [<path> <excludelist>]+; the first
    // path is unified against the others.
    if (o.args.size() % 2 != 0) throw SetupError("--manually needs <path> <excludelist> pairs");
    if (o.args.size() < 4) throw SetupError("--manually needs at least two <path> <excludelist> pairs");
    for (size_t i = 0; i < o.args.size(); i += 2) {
      const std::string& path = o.args[i];
      auto root = need(real_path(path));
      ExcludeList ex;
      if (!o.args[i + 1].empty()) ex = need(ExcludeList::load(o.args[i + 1]));
      Guest g{root.substr(root.rfind('/') + 1), root, {}};
      out.push_back({g, i == 0 ? GuestRole::member : GuestRole::reference, std::move(ex)});
    }
    // References first, so their inodes are preferred as the shared ones.
    std::rotate(out.begin(), out.begin() + 1, out.end());
    return out;
  }

  std::vector<Guest> guests;
  if (o.all) guests = need(config.all());
  for (const auto& a : o.args) guests.push_back(need(config.resolve(a)));
  if (guests.empty()) throw SetupError("no guests given (name guests, paths, or --all)");

  if (!o.all && guests.size() == 1) {
    // Classic form: link the guest to its reference guests.
    auto refs = need(config.refservers(guests[0]));
    if (refs.empty())
      throw SetupError("guest '" + guests[0].name +
                       "' has no reference guests (apps/vunify/refserver.*); "
                       "name two or more guests to unify them with each other");
    for (auto& r : refs)
      out.push_back({r, GuestRole::reference, need(guest_excludes(r, config, base))});
    out.push_back({guests[0], GuestRole::member, need(guest_excludes(guests[0], config, base))});
  } else {
    for (auto& g : guests)
      out.push_back({g, GuestRole::member, need(guest_excludes(g, config, base))});
  }
  // The same root twice would make a guest its own duplicate.
  for (size_t i = 0; i < out.size(); ++i)
    for (size_t j = i + 1; j < out.size(); ++j)
      if (out[i].guest.root == out[j].guest.root)
        throw SetupError("guest root " + out[i].guest.root + " given twice");
  return out;
}

int run(int argc, char** argv) {
  CLI::App app{"vunify: replace identical files of several guests with protected hard links",
               "vunify"};
  app.set_version_flag("--version", std::string("vunify ") + k_version);
  CliOptions o;
  app.add_option("guests", o.args,
                 "guest names (under --confdir) or paths containing '/'; with --manually: "
                 "<path> <excludelist> pairs");
  app.add_flag("--all", o.all, "unify every guest of the configuration base");
  app.add_flag("--manually", o.manually,
               "util-vserver form: <path> <excludelist> [<path> <excludelist>]+; the first "
               "path is linked to the others");
  app.add_flag("-n,--dry-run", o.dry_run, "find duplicates and report; change nothing");
  app.add_flag("-v,--verbose", o.verbose, "more output (repeat for each linked file)");
  app.add_flag("-q,--quiet", o.quiet, "print only errors");
  app.add_flag("--json", o.json, "print the report as one JSON object on stdout");
  app.add_flag("--stats", o.stats, "print the time of each pass");
  app.add_option("--threads", o.threads, "worker threads (default: cores, at most 8)")
      ->check(CLI::Range(1u, 256u));
  app.add_flag("--no-immutable", o.no_immutable, "do not set the immutable flag on shared inodes");
  app.add_option("--exclude-from", o.exclude_from,
                 "exclude list that replaces the built-in default list")
      ->check(CLI::ExistingFile);
  app.add_flag("--no-default-excludes", o.no_default_excludes,
               "do not use the built-in default exclude list");
  app.add_option("--confdir", o.confdir,
                 "configuration base (default: $VSERVER_CONFDIR or /etc/vservers)");
  app.add_option("--min-size", o.min_size, "leave files smaller than this alone (default 16)")
      ->check(CLI::Range(uint64_t(1), uint64_t(1) << 62));
  app.add_flag("-x,--one-file-system", o.one_file_system,
               "do not descend into directories on other file systems");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? 0 : static_cast<int>(ExitCode::usage);
  }

  auto guests = select_guests(o);
  UnifyOptions uo;
  uo.threads = o.threads;
  uo.dry_run = o.dry_run;
  uo.protect = o.no_immutable ? Protect::none : Protect::immutable;
  uo.min_size = o.min_size;
  uo.one_file_system = o.one_file_system;
  uo.log_actions = o.verbose >= 2 && !o.json;
  Progress progress;
  uo.progress = &progress;

  Result<Report> report = Error{};
  {
    std::optional<ProgressLine> line;
    if (!o.quiet && !o.json && ::isatty(STDERR_FILENO)) line.emplace(progress);
    report = run_unify(guests, uo);
  }
  if (!report.ok()) throw SetupError(report.error().message());
  const Report& r = *report;

  if (o.json) {
    std::cout << report_to_json(r).dump(2) << "\n";
  } else {
    for (const auto& a : r.actions) std::cout << a << "\n";
    if (!o.quiet) std::cout << report_to_text(r, o.verbose);
    else if (r.failed()) std::cerr << report_to_text(r, 0);
    if (o.stats)
      for (const auto& [k, v] : r.stage_seconds) std::cout << fmt::format("{:>8}: {:.3f} s\n", k, v);
  }
  if (r.failed()) {
    std::cerr << fmt::format("vunify: {} file operations failed (see above)\n", r.failure_count());
    return static_cast<int>(ExitCode::partial);
  }
  return static_cast<int>(ExitCode::ok);
}

} // namespace

int run_vunify(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const SetupError& e) {
    std::cerr << "vunify: error: " << e.what() << "\n";
  } catch (const std::exception& e) {
    std::cerr << "vunify: error: " << e.what() << "\n";
  }
  return static_cast<int>(ExitCode::usage);
}

} // namespace vu
