// vrpm: rpm in unified guests (tools/common/package_update.h has the
// steps). The plan, with the guest's own rpm in the guest: the package
// files on the command line are queried for their names and paths (rpm
// -qp), the installed packages of those names - or the names an erase
// gives - for theirs (rpm -q); pkgmgmt/rpm_plan.h reads the command line
// and the output. rpm replaces a file by renaming a new one over it, which
// a shared, immutable inode refuses as dpkg's backup link does.
#include "tools/vrpm/vrpm.h"

#include "pkgmgmt/rpm_plan.h"
#include "tools/common/cli.h"
#include "tools/common/package_update.h"

namespace vu {

namespace {

bool changes(const std::vector<std::string>& args) {
  return read_rpm_command(args).changes;
}

std::vector<std::string> rpm(const std::vector<std::string>& args) {
  std::vector<std::string> argv{"rpm"};
  argv.insert(argv.end(), args.begin(), args.end());
  return argv;
}

// rpm -q[p] with the query format pkgmgmt/rpm_plan.h reads, over `what`.
// An external database is shown to it read-only.
Result<RpmQueryResult> query(const UpdateOptions& o, const VServerConfig& c, UpdateOutcome& out,
                             const char* mode, const std::vector<std::string>& what,
                             bool must_succeed, const OwnedMounts& db) {
  update_stage(o, c.guest.name, std::string("rpm ") + mode);
  std::vector<std::string> argv{"rpm", mode, "--qf", k_rpm_query_format, "--"};
  argv.insert(argv.end(), what.begin(), what.end());
  VU_TRY_ASSIGN(r, collect_in_guest(c, argv, db.mounts));
  // rpm -q exits 1 for names that are not installed: nothing to replace.
  if (must_succeed && r.exit_code != 0) {
    out.output += r.out;
    return described_error(EIO, std::string("rpm ") + mode + " exited with " +
                                    std::to_string(r.exit_code) + " (its output above)");
  }
  return parse_rpm_query(r.out);
}

Result<std::vector<std::string>> plan(const UpdateOptions& o, const VServerConfig& c, int root,
                                      const DbPlace& db, UpdateOutcome& out) {
  const RpmCommand cmd = read_rpm_command(o.args);
  VU_TRY_ASSIGN(mounts, database_mounts(db, c, root, false));
  std::vector<std::string> paths, names = cmd.names;
  const auto packages = regular_files_in(root, cmd.packages);
  out.installs = cmd.erase ? 0 : cmd.packages.size();
  out.removals = cmd.erase ? cmd.names.size() : 0;
  if (!packages.empty()) {
    VU_TRY_ASSIGN(fresh, query(o, c, out, "-qp", packages, true, mounts));
    paths = std::move(fresh.paths);
    names.insert(names.end(), fresh.names.begin(), fresh.names.end());
  }
  if (!names.empty()) {
    VU_TRY_ASSIGN(installed, query(o, c, out, "-q", names, false, mounts));
    paths.insert(paths.end(), installed.paths.begin(), installed.paths.end());
  }
  return paths;
}

const PackageTool k_vrpm{"vrpm",
                         "rpm",
                         "vrpm: rpm in unified guests, which stay unified",
                         PackageDb::rpm,
                         changes,
                         plan,
                         rpm,
                         nullptr};

int run(int argc, char** argv) {
  return run_package_tool(k_vrpm, argc, argv);
}

} // namespace

int run_vrpm(int argc, char** argv) {
  return run_program("vrpm", run, argc, argv);
}

} // namespace vu
