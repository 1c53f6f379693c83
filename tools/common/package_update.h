// What vapt-get and vrpm share: util-vserver's command line (NAME... --
// ARGS, --all), and for each guest in turn the four steps of an update
// of a unified guest:
//   1. plan (when the command changes packages): the package manager's
//      own tools, run in the guest, say which paths the transaction
//      replaces or removes (PackageTool::plan);
//   2. those of them that are shared get private copies
//      (unify/deunify.h with those paths): dpkg links and rpm renames over
//      every file it replaces, which a shared, immutable inode refuses;
//   3. the package manager runs in the guest's context (core/runtime.h:
//      exec when the guest runs, else a context made for the call);
//   4. vhashify links the guest to its hash store again, so files the
//      update made identical to other guests' are shared at once.
// Guests go one after the other, but while one guest's package manager
// runs, the next guest is planned and prepared (steps 1 and 2, their
// output held back until its turn) and the previous guest's vhashify runs.
// Every command runs inside the guest with its capabilities: nothing of
// the guest runs on the host, and what it prints only chooses which of
// its own files are made private.
#pragma once

#include "core/vserver_config.h"
#include "kernel/result.h"
#include "tools/common/pkgmgmt_layout.h"
#include "tools/common/programs.h"

#include <string>
#include <vector>

namespace vu {

struct UpdateOptions {
  std::string prog; // the program's name, in messages
  std::vector<std::string> names;
  bool all = false;
  std::string confdir;
  bool json = false, quiet = false, dry_run = false, no_reunify = false, debug = false;
  std::string host_program;      // PackageTool::host_option's value
  std::vector<std::string> args; // the package manager's
};

// What happened in one guest.
struct UpdateOutcome {
  std::string name;
  bool running = false;
  bool changes = false; // the command changes packages (steps 1, 2, 4)
  size_t installs = 0, removals = 0;
  uint64_t files_planned = 0;    // names the plan touches
  uint64_t files_private = 0;    // shared names made private
  int exit_status = -1;          // the package manager's; -1: it did not run
  uint64_t files_shared = -1ull; // linked again by vhashify; -1: not run
  std::string error;             // empty: everything succeeded
  std::string output;            // of a planning command that failed, shown at the guest's turn
  // Set by a plan for an external database: step 3's commands in the guest
  // (else PackageTool::command), and the host's archives they install,
  // shown to them read-only as /var/cache/apt/archives/NNN-<name>.
  std::vector<std::vector<std::string>> guest_commands;
  std::vector<std::string> archives;
  // Packages installed only as dependencies (for PackageTool::after).
  std::vector<std::string> automatic;
};

// Where the guest's package database is (tools/common/pkgmgmt_layout.h).
struct DbPlace {
  PackageDb kind = PackageDb::dpkg;
  bool external = false;
  PkgmgmtLayout layout;
};
DbPlace database_place(const UpdateOptions& o, const VServerConfig& c, PackageDb kind);

// A new private directory `parent`/`prefix`.<pid>.XXXXXX for this run;
// the ones a killed run of a process that no longer exists (or is a
// zombie) left there are removed first.
Result<std::string> make_run_dir(const std::string& parent, const std::string& prefix);

// Directories to show in the guest's context, with their descriptors.
struct OwnedMounts {
  std::vector<UniqueFd> dirs;
  std::vector<ContextDir> mounts;
};
// The external database's state directory over its place in the guest
// (made there, an empty directory, when missing): read-write for the
// transaction, read-only for planning. Nothing for an internal database.
Result<OwnedMounts> database_mounts(const DbPlace& db, const VServerConfig& c, int root,
                                    bool writable);
// Adds the host's directory `dir` at `target` (relative, made in the guest
// when missing; never through a symlink); read-only and noexec unless
// `writable`.
Status add_context_dir(OwnedMounts& m, UniqueFd dir, int root, const std::string& target,
                       bool writable);

struct PackageTool {
  const char* prog;        // "vapt-get"
  const char* manager;     // "apt-get", in messages
  const char* description; // the first line of --help
  PackageDb db;
  // Whether the command line changes installed packages.
  bool (*changes)(const std::vector<std::string>& args);
  // Step 1: the absolute guest paths the transaction replaces or removes
  // (any order, repeats allowed); counts installs and removals into `out`.
  Result<std::vector<std::string>> (*plan)(const UpdateOptions& o, const VServerConfig& c, int root,
                                           const DbPlace& db, UpdateOutcome& out);
  // Step 3's command in the guest.
  std::vector<std::string> (*command)(const std::vector<std::string>& args);
  // With an external database, a command that changes no package runs on
  // the host instead, when this is set (apt-get update with the host's
  // apt); returns its exit status.
  Result<int> (*on_host)(const UpdateOptions& o, const VServerConfig& c, const DbPlace& db);
  // With an external database, after step 3's commands succeeded (the
  // host's apt marks the dependencies it installed as automatic).
  Status (*after)(const UpdateOptions& o, const VServerConfig& c, const DbPlace& db,
                  const UpdateOutcome& out);
  // When set ("--host-rpm"), an option naming a package manager of the
  // host's that step 3 runs instead (tools/common/host_manager.h), through
  // host_run; the plan sees it in UpdateOptions::host_program.
  const char* host_option;
  Result<int> (*host_run)(const UpdateOptions& o, const VServerConfig& c, const DbPlace& db);
};

// The program: arguments, every guest in turn, the summary; the exit
// status (0, 1 when anything failed in any guest, 2 on a usage error).
int run_package_tool(const PackageTool& tool, int argc, char** argv);

// For the plans: a step announced (on a terminal, or with its time under
// --debug).
void update_stage(const UpdateOptions& o, const std::string& guest, const std::string& what);
// A command in the guest with at most 16 MiB of its output (stdout and
// stderr) collected.
Result<ProgramOutput> collect_in_guest(const VServerConfig& c, const std::vector<std::string>& argv,
                                       const std::vector<ContextDir>& mounts = {});
// The candidates (absolute guest paths) that are regular files beneath the
// guest root, reached without symlinks; sorted, unique.
std::vector<std::string> regular_files_in(int root, std::vector<std::string> candidates);

} // namespace vu
