// Package databases kept outside a guest: util-vserver's apps/pkgmgmt
// layout, extended with dpkg's database.
//
// A guest's package database is internal - its own /var/lib/dpkg or
// /var/lib/rpm, the default - unless its configuration has no
// apps/pkgmgmt/internal and the external state directory exists:
//
//   apps/pkgmgmt/dpkgstate   | BASE/dpkg/state    dpkg's database
//   apps/pkgmgmt/rpmstate    | BASE/rpm/state     rpm's database
//   apps/pkgmgmt/aptetc      | BASE/apt/etc       the host apt's Dir::Etc
//   apps/pkgmgmt/aptstate    | BASE/apt/state     its Dir::State (lists)
//   apps/pkgmgmt/aptcache    | BASE/apt/cache     its Dir::Cache
//   apps/pkgmgmt/aptarchives | BASE/apt/archives  its Dir::Cache::archives
//   apps/pkgmgmt/apt.conf                         more of its configuration
//
// BASE is apps/pkgmgmt/base (a directory or a symlink to one), else
// .defaults/apps/pkgmgmt/base/<name>, else <vdirbase>/.pkg/<name> - the
// places vunify looks for the databases (pkgmgmt/config_files.h). All of
// it is the host's: the guest never sees it, except its database, which
// the guest's package manager is shown for the duration of one
// transaction (core/runtime.h, context mounts). What the guest's dpkg or
// rpm wrote there is still the guest's word and is read like anything
// from inside a guest: beneath the directory, without symlinks, with
// bounds.
#pragma once

#include "core/guest.h"
#include "kernel/fd.h"
#include "kernel/result.h"

#include <string>

namespace vu {

enum class PackageDb { dpkg, rpm };

struct PkgmgmtLayout {
  std::string dir; // <guest's confdir>/apps/pkgmgmt; empty for a bare root
  std::string base;
  std::string dpkg_state, rpm_state, apt_etc, apt_state, apt_cache, apt_archives, apt_conf;
  bool internal_marker = false; // apps/pkgmgmt/internal exists

  const std::string& state(PackageDb db) const {
    return db == PackageDb::dpkg ? dpkg_state : rpm_state;
  }
};

PkgmgmtLayout pkgmgmt_layout(const ConfigBase& base, const Guest& guest);

// Whether `db` is kept outside the guest (see above).
bool database_is_external(const PkgmgmtLayout& layout, PackageDb db);

// Where the database lives inside the guest ("var/lib/dpkg", "var/lib/rpm").
const char* database_path_in_guest(PackageDb db);

// A directory of the layout, opened (O_DIRECTORY) when it is safe to use:
// it resolves to a place outside the guest's root (the guest must never
// reach its external database or steer the host's apt), belongs to root
// and is not writable by group or others. `create`: made (0755, with its
// parents) when missing.
Result<UniqueFd> open_layout_dir(const std::string& path, const Guest& guest, bool create = false);

} // namespace vu
