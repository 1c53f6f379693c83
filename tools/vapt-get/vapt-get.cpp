// vapt-get: apt-get in unified guests (tools/common/package_update.h has
// the steps). The plan, in the guest: apt-get --simulate gives the
// steps; apt-get --print-uris the archives (apt uses those of a file:
// source in place), downloaded first (apt-get --download-only) when some
// are not in the guest's cache; the guest's dpkg-deb --fsys-tarfile lists
// their members (only tar headers are parsed here, pkgmgmt/tar_names.h);
// the file lists of the installed packages the steps replace or remove
// come from the guest's dpkg database.
//
// A guest whose dpkg database is external (tools/common/pkgmgmt_layout.h)
// is planned by the host's apt instead (HostApt below), which downloads
// to the host's cache; the archives' members are read by the host's
// dpkg-deb; step 3 is the guest's own dpkg (--remove, --purge, --install
// of the staged archives) with the database shown to it for that step.
// Commands that change no package (update, clean, ...) are the host's apt.
#include "tools/vapt-get/vapt-get.h"

#include "kernel/fs.h"
#include "pkgmgmt/apt_plan.h"
#include "pkgmgmt/tar_names.h"
#include "tools/common/cli.h"
#include "tools/common/package_update.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <memory>

namespace vu {

namespace {

constexpr uint64_t k_max_status_bytes = 256ull << 20;

// The host's apt for a guest with an external database: a directory of
// the run in the layout's apt state directory with its configuration (APT_CONFIG: Dir::Etc,
// Dir::State, Dir::Cache and the archives are the layout's, apps/pkgmgmt/apt.conf is included) and
// a copy of the guest's dpkg status file, read beneath the database without symlinks and with a
// size limit. It reads nothing of the host's /etc/apt and nothing of the guest's but that copy.
class HostApt {
public:
  static Result<std::unique_ptr<HostApt>> make(const DbPlace& db, const VServerConfig& c) {
    const auto& l = db.layout;
    for (const auto* p : {&l.apt_etc, &l.apt_state, &l.apt_cache, &l.apt_archives, &l.apt_conf})
      if (p->find_first_of("\"\n") != std::string::npos)
        return described_error(EINVAL, "the path " + *p + " cannot be given to apt");
    VU_TRY_ASSIGN(state, open_layout_dir(l.dpkg_state, c.guest));
    VU_TRY_ASSIGN(status, read_file_beneath(state.get(), "status", k_max_status_bytes));
    for (const auto* p : {&l.apt_etc, &l.apt_state, &l.apt_cache, &l.apt_archives})
      VU_TRY(open_layout_dir(*p, c.guest, true));
    VU_TRY(open_layout_dir(l.apt_state + "/lists", c.guest, true)); // apt makes partial/
    auto apt = std::unique_ptr<HostApt>(new HostApt);
    VU_TRY_ASSIGN(dir, make_run_dir(l.apt_state, "vunify-apt"));
    apt->m_dir = dir;
    VU_TRY(write_file_atomic(dir + "/status", status, 0644));
    std::string conf = "Dir::Etc \"" + l.apt_etc + "/\";\nDir::State \"" + l.apt_state +
                       "/\";\nDir::State::status \"" + dir + "/status\";\nDir::Cache \"" +
                       l.apt_cache + "/\";\nDir::Cache::archives \"" + l.apt_archives +
                       "/\";\nDir::Log \"" + dir + "/\";\n";
    if (::access(l.apt_conf.c_str(), F_OK) == 0) conf += "#include \"" + l.apt_conf + "\";\n";
    VU_TRY(write_file_atomic(dir + "/apt.conf", conf, 0644));
    return apt;
  }
  ~HostApt() {
    std::error_code ignored;
    if (!m_dir.empty()) std::filesystem::remove_all(m_dir, ignored);
  }
  // apt-get (or `program`) `first` ARGS on the host, its stderr with its
  // stdout.
  std::vector<std::string> command(const std::vector<std::string>& first,
                                   const std::vector<std::string>& args,
                                   const char* program = "apt-get") const {
    std::vector<std::string> argv{"/bin/sh",
                                  "-c",
                                  "exec \"$@\" 2>&1",
                                  "sh",
                                  "/usr/bin/env",
                                  "APT_CONFIG=" + m_dir + "/apt.conf",
                                  "DEBIAN_FRONTEND=noninteractive",
                                  program};
    argv.insert(argv.end(), first.begin(), first.end());
    argv.insert(argv.end(), args.begin(), args.end());
    return argv;
  }

private:
  HostApt() = default;
  std::string m_dir;
};

std::vector<std::string> apt_command(const std::vector<std::string>& first,
                                     const std::vector<std::string>& args) {
  std::vector<std::string> argv{"env", "DEBIAN_FRONTEND=noninteractive", "apt-get"};
  argv.insert(argv.end(), first.begin(), first.end());
  argv.insert(argv.end(), args.begin(), args.end());
  return argv;
}

std::vector<std::string> apt_get(const std::vector<std::string>& args) {
  return apt_command({}, args);
}

// apt-get with `first` before the user's arguments - the guest's, or the
// host's with `host` - its output when it succeeded (else kept in the
// outcome, to be shown).
Result<std::string> ask_apt(const UpdateOptions& o, const VServerConfig& c, UpdateOutcome& out,
                            const std::vector<std::string>& first, const HostApt* host) {
  update_stage(o, c.guest.name, std::string(host ? "host " : "") + "apt-get " + first.front());
  VU_TRY_ASSIGN(r, host ? run_host_program(host->command(first, o.args))
                        : collect_in_guest(c, apt_command(first, o.args)));
  if (r.exit_code != 0) {
    out.output += r.out;
    return described_error(EIO, "apt-get " + first.front() + " exited with " +
                                    std::to_string(r.exit_code) + " (its output above)");
  }
  return r.out;
}

// The archives the transaction installs, in the steps' order: those
// apt-get --print-uris names (downloaded first when some are missing and
// this is no dry run), the cached archives of the install steps, the
// local archives on the command line. Paths in the guest, or with `host`
// the host's; only regular files are kept.
Result<std::vector<std::string>> archives_of(const UpdateOptions& o, const VServerConfig& c,
                                             int root, const std::vector<AptStep>& steps,
                                             UpdateOutcome& out, const HostApt* host,
                                             const DbPlace& db) {
  const std::string cache = host ? db.layout.apt_archives : "/var/cache/apt/archives";
  VU_TRY_ASSIGN(uris_text, ask_apt(o, c, out, {"--print-uris", "-qq"}, host));
  VU_TRY_ASSIGN(uris, parse_apt_print_uris(uris_text, cache));
  auto regular = [&](std::vector<std::string> paths) {
    if (!host) return regular_files_in(root, std::move(paths));
    std::vector<std::string> kept;
    for (auto& p : paths)
      if (std::filesystem::is_regular_file(std::filesystem::symlink_status(p)) &&
          std::find(kept.begin(), kept.end(), p) == kept.end())
        kept.push_back(std::move(p));
    return kept;
  };
  if (!o.dry_run && regular(uris).size() < uris.size())
    VU_TRY(ask_apt(o, c, out, {"--download-only", "-y", "-q"}, host));
  for (const auto& s : steps)
    if (s.action == AptAction::install) uris.push_back(cache + "/" + apt_archive_name(s));
  for (const auto& a : o.args) // relative to the command's directory: the guest's /, or here
    if (a.size() > 4 && a.compare(a.size() - 4, 4, ".deb") == 0 && a.find('/') != a.npos)
      uris.push_back(a.front() == '/' || host ? a : "/" + a);
  return regular(std::move(uris));
}

// Member names of the archives, read by the guest's dpkg-deb in the guest,
// or by the host's for the host's archives.
Result<std::vector<std::string>> archive_names(const UpdateOptions& o, const VServerConfig& c,
                                               const std::vector<std::string>& archives,
                                               bool on_host) {
  if (archives.empty()) return std::vector<std::string>{};
  update_stage(o, c.guest.name, std::string(on_host ? "host " : "") + "dpkg-deb --fsys-tarfile");
  std::vector<std::string> argv{
      "/bin/sh", "-c", "for f; do dpkg-deb --fsys-tarfile \"$f\" 2>/dev/null || exit 1; done",
      "sh"};
  argv.insert(argv.end(), archives.begin(), archives.end());
  TarNameReader reader;
  auto feed = [&](std::string_view s) { return reader.feed(s); };
  Result<int> code = Error{};
  if (on_host) {
    VU_TRY_ASSIGN(started, start_host_program(argv));
    code = finish_host_program_into(started, feed);
  } else {
    code = run_in_guest_reading(c, argv, feed);
  }
  if (!code.ok()) return code.error();
  if (*code != 0)
    return described_error(EIO, "dpkg-deb --fsys-tarfile failed (exit " + std::to_string(*code) +
                                    ") for one of: " + archives.front() +
                                    (archives.size() > 1 ? " ..." : ""));
  VU_TRY(reader.finish());
  return reader.names();
}

// The installed files of the packages the steps replace or remove, from
// the guest's database (its own, or the external one).
Result<std::vector<std::string>> installed_names(int root, const std::vector<AptStep>& steps,
                                                 const VServerConfig& c, const DbPlace& db) {
  std::vector<std::string> out;
  auto admin = db.external ? open_layout_dir(db.layout.dpkg_state, c.guest)
                           : open_beneath(root, "var/lib/dpkg", O_RDONLY | O_DIRECTORY);
  if (!admin.ok()) {
    if (admin.code() == ENOENT && !db.external) return out;
    return described_error(admin.code(), "the dpkg database: " + admin.error().message());
  }
  for (const auto& s : steps) {
    if (s.action == AptAction::configure) continue;
    if (s.action == AptAction::install && s.old_version.empty()) continue;
    VU_TRY_ASSIGN(list, read_dpkg_file_lists(admin->get(), s.package));
    out.insert(out.end(), list.begin(), list.end());
  }
  return out;
}

// The packages the steps install that were not installed before and are
// not named on the command line (NAME, NAME=VERSION, NAME/RELEASE,
// NAME:ARCH): dependencies, which apt marks as installed automatically.
std::vector<std::string> automatic_installs(const std::vector<AptStep>& steps,
                                            const std::vector<std::string>& args) {
  auto bare = [](std::string s) {
    s = s.substr(0, s.find_first_of("=/:"));
    return s;
  };
  std::vector<std::string> named, out;
  for (const auto& a : args) named.push_back(bare(a));
  for (const auto& s : steps)
    if (s.action == AptAction::install && s.old_version.empty() &&
        std::find(named.begin(), named.end(), bare(s.package)) == named.end())
      out.push_back(s.package);
  return out;
}

// Step 3 with an external database: the guest's dpkg removes, purges,
// then installs the staged archives (run_package_tool stages them).
void external_commands(const std::vector<AptStep>& steps, const std::vector<std::string>& archives,
                       UpdateOutcome& out) {
  const std::vector<std::string> dpkg{"env", "DEBIAN_FRONTEND=noninteractive", "dpkg",
                                      "--force-confdef", "--force-confold"};
  for (auto [action, option] :
       {std::pair{AptAction::remove, "--remove"}, std::pair{AptAction::purge, "--purge"}}) {
    auto cmd = dpkg;
    cmd.push_back(option);
    for (const auto& s : steps)
      if (s.action == action) cmd.push_back(s.package);
    if (cmd.size() > dpkg.size() + 1) out.guest_commands.push_back(std::move(cmd));
  }
  if (archives.empty()) return;
  auto cmd = dpkg;
  cmd.push_back("--install");
  for (size_t i = 0; i < archives.size(); ++i)
    cmd.push_back(fmt::format("/var/cache/apt/archives/{:03}-", i) +
                  std::filesystem::path(archives[i]).filename().string());
  out.guest_commands.push_back(std::move(cmd));
  out.archives = archives;
}

Result<std::vector<std::string>> plan(const UpdateOptions& o, const VServerConfig& c, int root,
                                      const DbPlace& db, UpdateOutcome& out) {
  std::unique_ptr<HostApt> host;
  if (db.external) {
    VU_TRY_ASSIGN(made, HostApt::make(db, c));
    host = std::move(made);
  }
  VU_TRY_ASSIGN(sim, ask_apt(o, c, out, {"--simulate", "-q"}, host.get()));
  VU_TRY_ASSIGN(steps, parse_apt_simulation(sim));
  for (const auto& s : steps) {
    out.installs += s.action == AptAction::install;
    out.removals += s.action == AptAction::remove || s.action == AptAction::purge;
  }
  std::vector<std::string> paths, archives;
  if (out.installs > 0) {
    VU_TRY_ASSIGN(found, archives_of(o, c, root, steps, out, host.get(), db));
    VU_TRY_ASSIGN(fresh, archive_names(o, c, found, db.external));
    paths = std::move(fresh);
    archives = std::move(found);
  }
  VU_TRY_ASSIGN(old, installed_names(root, steps, c, db));
  paths.insert(paths.end(), old.begin(), old.end());
  if (db.external) {
    external_commands(steps, archives, out);
    out.automatic = automatic_installs(steps, o.args);
  }
  return paths;
}

// After the guest's dpkg installed with an external database: what apt
// installed as dependencies is marked automatic in the host's state
// (apt-mark auto, with a copy of the status file as it is now), as apt
// itself would, so that autoremove finds it later.
Status mark_automatic(const UpdateOptions& o, const VServerConfig& c, const DbPlace& db,
                      const UpdateOutcome& out) {
  if (out.automatic.empty()) return {};
  update_stage(o, c.guest.name, "host apt-mark auto");
  VU_TRY_ASSIGN(host, HostApt::make(db, c));
  VU_TRY_ASSIGN(r, run_host_program(host->command({"auto"}, out.automatic, "apt-mark")));
  if (r.exit_code != 0)
    return described_error(EIO, "apt-mark auto exited with " + std::to_string(r.exit_code) + ": " +
                                    r.out);
  return {};
}

// A command that changes no package, for an external database: the host's
// apt, its output relayed.
Result<int> on_host(const UpdateOptions& o, const VServerConfig& c, const DbPlace& db) {
  VU_TRY_ASSIGN(host, HostApt::make(db, c));
  auto argv = host->command({}, o.args);
  VU_TRY_ASSIGN(started, start_host_program(argv));
  return finish_host_program_into(started,
                                  [&](std::string_view s) { return write_all(o.json ? 2 : 1, s); });
}

const PackageTool k_vapt_get{"vapt-get",
                             "apt-get",
                             "vapt-get: apt-get in unified guests, which stay unified",
                             PackageDb::dpkg,
                             apt_command_changes_packages,
                             plan,
                             apt_get,
                             on_host,
                             mark_automatic,
                             nullptr,
                             nullptr};

int run(int argc, char** argv) {
  return run_package_tool(k_vapt_get, argc, argv);
}

} // namespace

int run_vapt_get(int argc, char** argv) {
  return run_program("vapt-get", run, argc, argv);
}

} // namespace vu
