// The guests of a run, as the passes see them: root, role, exclude list
// and the package manager's configuration files.
#pragma once

#include "core/guest.h"
#include "unify/exclude.h"
#include "unify/guest_role.h"

#include <string>
#include <vector>

namespace vu {

struct UnifyGuest {
  Guest guest;
  GuestRole role = GuestRole::member;
  ExcludeList excludes; // complete, ordered list for this guest
  // Configuration files known to the package manager (absolute guest
  // paths, sorted): never shared, found by path and by inode.
  std::vector<std::string> config_files;
  std::vector<std::string> config_sources; // for reports, e.g. "dpkg /var/lib/dpkg/status"
  PkgmgmtUse pkgmgmt = PkgmgmtUse::none;
};

} // namespace vu
