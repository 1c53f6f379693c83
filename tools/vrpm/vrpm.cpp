// vrpm: rpm in unified guests (tools/common/package_update.h has the
// steps). The plan, with the guest's own rpm in the guest: the package
// files on the command line are queried for their names and paths (rpm
// -qp), the installed packages of those names - or the names an erase
// gives - for theirs (rpm -q); pkgmgmt/rpm_plan.h reads the command line
// and the output. rpm replaces a file by renaming a new one over it, which
// a shared, immutable inode refuses as dpkg's backup link does.
//
// --host-rpm PATH: the host's rpm, for stopped guests (e.g. ones without
// rpm of their own), under libvu-preload.so (tools/common/host_manager.h:
// the library makes the guest's root the process's, so every path rpm
// opens is the guest's; scriptlets run in the guest's context). It reads
// only the host's configuration, mounted read-only at /usr/lib/rpm and
// named by --rcfile and --macros (the guest's /etc/rpm and ~/.rpmmacros
// are not read), the database at /var/lib/rpm (an external one mounted
// there), and the package files - host paths on the command line -
// staged read-only at /var/cache/vrpm. Plan and transaction both run so.
#include "tools/vrpm/vrpm.h"

#include "kernel/fs.h"
#include "pkgmgmt/rpm_plan.h"
#include "tools/common/cli.h"
#include "tools/common/host_manager.h"
#include "tools/common/package_update.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <filesystem>
#include <memory>

namespace vu {

namespace {

bool is_package_arg(const std::string& a) {
  return a.size() > 4 && a.compare(a.size() - 4, 4, ".rpm") == 0 && a.front() != '-';
}

// What the host's rpm needs in a guest for one run (see above).
class HostRpm {
public:
  static Result<std::unique_ptr<HostRpm>> make(const UpdateOptions& o, const VServerConfig& c,
                                               const DbPlace& db) {
    auto h = std::unique_ptr<HostRpm>(new HostRpm);
    int fd = ::open(c.guest.root.c_str(), O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) return make_error(errno, "guest root " + c.guest.root);
    UniqueFd root(fd);
    VU_TRY_ASSIGN(m, database_mounts(db, c, root.get(), true));
    h->m_mounts = std::move(m);
    VU_TRY(h->add(root.get(), "/usr/lib/rpm", "usr/lib/rpm"));
    const char* tmp = ::getenv("TMPDIR");
    VU_TRY_ASSIGN(dir, make_run_dir(tmp && *tmp == '/' ? tmp : "/tmp", "vrpm"));
    h->m_staging = dir;
    for (const auto& a : o.args) {
      if (!is_package_arg(a)) {
        h->m_args.push_back(a);
        continue;
      }
      const std::string name = fmt::format("{:03}-", h->m_packages.size()) +
                               std::filesystem::path(a).filename().string();
      std::error_code ec;
      if (::link(a.c_str(), (dir + "/" + name).c_str()) != 0 &&
          !std::filesystem::copy_file(a, dir + "/" + name, ec))
        return described_error(ENOENT, "cannot read the package file " + a);
      h->m_packages.push_back("/var/cache/vrpm/" + name);
      h->m_args.push_back(h->m_packages.back());
    }
    VU_TRY(h->add(root.get(), dir, "var/cache/vrpm"));
    return h;
  }
  ~HostRpm() {
    std::error_code ignored;
    if (!m_staging.empty()) std::filesystem::remove_all(m_staging, ignored);
  }
  const std::vector<std::string>& packages() const { return m_packages; }
  const std::vector<std::string>& args() const { return m_args; }

  // The host's rpm with `args` after the options that pin its files.
  Result<int> run(const UpdateOptions& o, const VServerConfig& c,
                  const std::vector<std::string>& args, int output_fd,
                  std::function<Status(std::string_view)> sink = {}) const {
    HostManagerRun r;
    r.program = o.host_program;
    r.args = {"--dbpath",
              "/var/lib/rpm",
              "--noplugins",
              "--rcfile",
              "/usr/lib/rpm/rpmrc",
              "--macros",
              "/usr/lib/rpm/macros:/usr/lib/rpm/macros.d/macros.*:/usr/lib/rpm/platform/"
              "%{_target}/macros:/usr/lib/rpm/fileattrs/*.attr:/usr/lib/rpm/debian/macros"};
    r.args.insert(r.args.end(), args.begin(), args.end());
    r.mounts = m_mounts.mounts;
    r.output_fd = output_fd;
    r.sink = std::move(sink);
    return run_host_manager(c, r);
  }

private:
  HostRpm() = default;
  // The host's directory `host` read-only at `target` in the guest.
  Status add(int root, const std::string& host, const std::string& target) {
    VU_TRY_ASSIGN(dir, open_directory(host));
    return add_context_dir(m_mounts, std::move(dir), root, target, false);
  }
  OwnedMounts m_mounts;
  std::string m_staging;
  std::vector<std::string> m_packages, m_args;
};

bool changes(const std::vector<std::string>& args) {
  return read_rpm_command(args).changes;
}

std::vector<std::string> rpm(const std::vector<std::string>& args) {
  std::vector<std::string> argv{"rpm"};
  argv.insert(argv.end(), args.begin(), args.end());
  return argv;
}

// rpm -q[p] with the query format pkgmgmt/rpm_plan.h reads, over `what`.
// An external database is shown to it read-only; with `host`, the host's
// rpm runs.
Result<RpmQueryResult> query(const UpdateOptions& o, const VServerConfig& c, UpdateOutcome& out,
                             const char* mode, const std::vector<std::string>& what,
                             bool must_succeed, const OwnedMounts& db, const HostRpm* host) {
  update_stage(o, c.guest.name, std::string(host ? "host " : "") + "rpm " + mode);
  std::vector<std::string> argv{"rpm", mode, "--qf", k_rpm_query_format, "--"};
  argv.insert(argv.end(), what.begin(), what.end());
  ProgramOutput r;
  if (host) {
    argv.erase(argv.begin());
    VU_TRY_ASSIGN(code, host->run(o, c, argv, -1, [&](std::string_view s) -> Status {
      if (r.out.size() + s.size() > (16u << 20))
        return described_error(EFBIG, "rpm wrote more than 16 MiB");
      r.out.append(s);
      return {};
    }));
    r.exit_code = code;
  } else {
    VU_TRY_ASSIGN(in_guest, collect_in_guest(c, argv, db.mounts));
    r = std::move(in_guest);
  }
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
  std::unique_ptr<HostRpm> host;
  if (!o.host_program.empty()) {
    VU_TRY_ASSIGN(made, HostRpm::make(o, c, db));
    host = std::move(made);
  }
  std::vector<std::string> paths, names = cmd.names;
  const auto packages = host ? host->packages() : regular_files_in(root, cmd.packages);
  out.installs = cmd.erase ? 0 : cmd.packages.size();
  out.removals = cmd.erase ? cmd.names.size() : 0;
  if (!packages.empty()) {
    VU_TRY_ASSIGN(fresh, query(o, c, out, "-qp", packages, true, mounts, host.get()));
    paths = std::move(fresh.paths);
    names.insert(names.end(), fresh.names.begin(), fresh.names.end());
  }
  if (!names.empty()) {
    VU_TRY_ASSIGN(installed, query(o, c, out, "-q", names, false, mounts, host.get()));
    paths.insert(paths.end(), installed.paths.begin(), installed.paths.end());
  }
  return paths;
}

// Step 3 with --host-rpm.
Result<int> host_run(const UpdateOptions& o, const VServerConfig& c, const DbPlace& db) {
  VU_TRY_ASSIGN(host, HostRpm::make(o, c, db));
  return host->run(o, c, host->args(), o.json ? 2 : 1);
}

const PackageTool k_vrpm{"vrpm",
                         "rpm",
                         "vrpm: rpm in unified guests, which stay unified",
                         PackageDb::rpm,
                         changes,
                         plan,
                         rpm,
                         nullptr,
                         nullptr,
                         "--host-rpm",
                         host_run};

int run(int argc, char** argv) {
  return run_package_tool(k_vrpm, argc, argv);
}

} // namespace

int run_vrpm(int argc, char** argv) {
  return run_program("vrpm", run, argc, argv);
}

} // namespace vu
