// vapt-get: apt-get in unified guests (tools/common/package_update.h has
// the steps). The plan, in the guest: apt-get --simulate gives the
// steps; apt-get --print-uris the archives (apt uses those of a file:
// source in place), downloaded first (apt-get --download-only) when some
// are not in the guest's cache; the guest's dpkg-deb --fsys-tarfile lists
// their members (only tar headers are parsed here, pkgmgmt/tar_names.h);
// the file lists of the installed packages the steps replace or remove
// come from the guest's dpkg database.
#include "tools/vapt-get/vapt-get.h"

#include "kernel/fs.h"
#include "pkgmgmt/apt_plan.h"
#include "pkgmgmt/tar_names.h"
#include "tools/common/cli.h"
#include "tools/common/package_update.h"

#include <fcntl.h>

namespace vu {

namespace {

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

// apt-get with `first` before the user's arguments; its output when it
// succeeded (else kept in the outcome, to be shown).
Result<std::string> ask_apt(const UpdateOptions& o, const VServerConfig& c, UpdateOutcome& out,
                            const std::vector<std::string>& first) {
  update_stage(o, c.guest.name, "apt-get " + first.front());
  VU_TRY_ASSIGN(r, collect_in_guest(c, apt_command(first, o.args)));
  if (r.exit_code != 0) {
    out.output += r.out;
    return described_error(EIO, "apt-get " + first.front() + " exited with " +
                                    std::to_string(r.exit_code) + " (its output above)");
  }
  return r.out;
}

// The archives the transaction installs, as paths in the guest that are
// regular files: those apt-get --print-uris names (downloaded first when
// some are missing and this is no dry run), the cached archives of the
// install steps, the local archives on the command line.
Result<std::vector<std::string>> archives_of(const UpdateOptions& o, const VServerConfig& c,
                                             int root, const std::vector<AptStep>& steps,
                                             UpdateOutcome& out) {
  VU_TRY_ASSIGN(uris_text, ask_apt(o, c, out, {"--print-uris", "-qq"}));
  VU_TRY_ASSIGN(uris, parse_apt_print_uris(uris_text));
  if (!o.dry_run && regular_files_in(root, uris).size() < uris.size())
    VU_TRY(ask_apt(o, c, out, {"--download-only", "-y", "-q"}));
  for (const auto& s : steps)
    if (s.action == AptAction::install)
      uris.push_back("/var/cache/apt/archives/" + apt_archive_name(s));
  for (const auto& a : o.args) // relative to the command's directory, the guest's /
    if (a.size() > 4 && a.compare(a.size() - 4, 4, ".deb") == 0 && a.find('/') != a.npos)
      uris.push_back(a.front() == '/' ? a : "/" + a);
  return regular_files_in(root, std::move(uris));
}

// Member names of the archives, read by the guest's dpkg-deb.
Result<std::vector<std::string>> archive_names(const UpdateOptions& o, const VServerConfig& c,
                                               const std::vector<std::string>& archives) {
  if (archives.empty()) return std::vector<std::string>{};
  update_stage(o, c.guest.name, "dpkg-deb --fsys-tarfile");
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

Result<std::vector<std::string>> plan(const UpdateOptions& o, const VServerConfig& c, int root,
                                      UpdateOutcome& out) {
  VU_TRY_ASSIGN(sim, ask_apt(o, c, out, {"--simulate", "-q"}));
  VU_TRY_ASSIGN(steps, parse_apt_simulation(sim));
  for (const auto& s : steps) {
    out.installs += s.action == AptAction::install;
    out.removals += s.action == AptAction::remove || s.action == AptAction::purge;
  }
  std::vector<std::string> paths;
  if (out.installs > 0) {
    VU_TRY_ASSIGN(archives, archives_of(o, c, root, steps, out));
    VU_TRY_ASSIGN(fresh, archive_names(o, c, archives));
    paths = std::move(fresh);
  }
  VU_TRY_ASSIGN(old, installed_names(root, steps));
  paths.insert(paths.end(), old.begin(), old.end());
  return paths;
}

const PackageTool k_vapt_get{"vapt-get",
                             "apt-get",
                             "vapt-get: apt-get in unified guests, which stay unified",
                             apt_command_changes_packages,
                             plan,
                             apt_get};

int run(int argc, char** argv) {
  return run_package_tool(k_vapt_get, argc, argv);
}

} // namespace

int run_vapt_get(int argc, char** argv) {
  return run_program("vapt-get", run, argc, argv);
}

} // namespace vu
