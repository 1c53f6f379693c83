// Package-manager knowledge about configuration files, read from outside
// the guest without running any of its code.
//
// A guest's package databases are hostile input: they are opened beneath
// the guest root without following symlinks, their sizes are bounded, and
// anything malformed is an error for that guest (never a crash, never a
// read outside the guest). External databases (util-vserver's
// apps/pkgmgmt/base) are host paths and trusted as locations, not as
// content.
#pragma once

#include "core/guest.h"
#include "kernel/result.h"

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace vu {

// Where a guest's package databases live.
struct PackageDbLocation {
  // External directories (host paths); empty: inside the guest at the
  // standard place (var/lib/dpkg, var/lib/rpm).
  std::string dpkg_admin_dir; // holds status and info/*.conffiles
  std::string rpm_db_dir;     // holds rpmdb.sqlite, Packages.db or Packages
};

// util-vserver layout: external when apps/pkgmgmt/internal does not exist
// and apps/pkgmgmt/{dpkgstate,rpmstate} or apps/pkgmgmt/base (else
// .defaults/apps/pkgmgmt/base/<name>, else <vdirbase>/.pkg/<name>) has
// base/dpkg/state or base/rpm/state. Only directories that exist are
// returned.
PackageDbLocation locate_package_dbs(const Guest& guest, const ConfigBase& config);

// One database that was read.
struct PackageDbSource {
  std::string kind;     // "dpkg" or "rpm"
  std::string location; // e.g. "/var/lib/dpkg/status" or an external path
  uint64_t packages = 0;
  uint64_t config_files = 0;
  uint64_t cross_check_only = 0; // dpkg: paths only in info/*.conffiles
  // Identity of the database file, for caches: unchanged (dev, ino, size,
  // mtime) means unchanged content.
  uint64_t dev = 0, ino = 0, size = 0;
  int64_t mtime_ns = 0;
};

struct GuestConfigFiles {
  std::vector<std::string> paths; // absolute guest paths, sorted, unique
  std::vector<PackageDbSource> sources;
};

struct ReadLimits {
  uint64_t max_db_bytes = 256ull << 20;  // status file or rpm database
  uint64_t max_list_bytes = 16ull << 20; // one info/<pkg>.conffiles
  uint64_t max_entries = 2'000'000;      // config paths per guest
};

// Reads every package database of the guest (dpkg and RPM; none found is
// fine and yields no sources). root_fd is the guest root. Errors name the
// database and what is wrong. Not thread-safe (librpm keeps process-global
// state): call before starting parallel work.
Result<GuestConfigFiles> read_guest_config_files(int root_fd, const PackageDbLocation& loc,
                                                 const ReadLimits& limits = {});

// Loads librpm by its SONAME (null: the one this build was made against)
// and resolves every function the rpm reader calls, as the first rpm
// database read does. ELIBACC with a one-line message saying what to
// install when it cannot. For tests; the library stays loaded.
Status check_librpm_loads(const char* soname = nullptr);

// dpkg alone: admin_fd is the admin directory; `display` names it in
// messages. ENOENT when there is no status file.
Result<PackageDbSource> read_dpkg_config_files(int admin_fd, const std::string& display,
                                               const ReadLimits& limits,
                                               std::vector<std::string>& paths);
// Parses the text of a dpkg status file: counts packages into src and
// appends every Conffiles path to `paths`. Rejects truncated files (dpkg
// ends every stanza with an empty line), NUL bytes, stanzas without Package
// or Status, malformed Conffiles lines. Used by read_dpkg_config_files and
// by the fuzz target.
Status parse_dpkg_status(std::string_view text, const std::string& where, const ReadLimits& limits,
                         PackageDbSource& src, std::vector<std::string>& paths);

// RPM alone: db_fd is the database directory. ENOENT when it holds no
// database file. The database is copied to a private directory first, so
// librpm never opens a path a guest controls.
Result<PackageDbSource> read_rpm_config_files(int db_fd, const std::string& display,
                                              const ReadLimits& limits,
                                              std::vector<std::string>& paths);

// Parses a list with one absolute path per line (dpkg's
// info/<pkg>.conffiles: flag words before the path, "remove-on-upgrade
// /etc/x" as Debian 12's dpkg writes them, are dropped, and so are the
// trailing words "obsolete" and "remove-on-upgrade"). Lines must be
// absolute paths without NUL bytes, at most 4096 bytes; anything else is an
// error naming the line.
Result<std::vector<std::string>> parse_path_list(std::string_view text, std::string_view origin,
                                                 size_t max_entries = 1'000'000);

// Parses the value of a dpkg "Conffiles:" field: lines " <path> <md5>
// [obsolete|remove-on-upgrade]" (paths may contain blanks). Same rules.
Result<std::vector<std::string>> parse_conffiles_field(std::string_view text,
                                                       std::string_view origin,
                                                       size_t max_entries = 1'000'000);

} // namespace vu
