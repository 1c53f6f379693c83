// Turning command-line guest arguments into the guests of a unify run:
// configuration lookup, reference guests, exclude lists and the package
// manager's configuration files. Shared by vunify and (later) vhashify.
#pragma once

#include "unify/unify.h"

#include <string>
#include <utility>
#include <vector>

namespace vu {

struct GuestSelection {
  std::vector<std::string> args; // names, paths, or --manually pairs
  bool all = false;
  bool manually = false;
  std::string confdir;
  std::string exclude_from;
  bool no_default_excludes = false;
  bool no_pkgmgmt = false;
  // One configured guest alone means util-vserver's "link it to its
  // refservers" (vunify); other programs just take the guest.
  bool classic_refservers = true;
};

struct RejectedGuest {
  std::string name;
  std::string message;
};

struct SelectedGuests {
  std::vector<UnifyGuest> guests;      // references first, then members
  std::vector<RejectedGuest> rejected; // package database unreadable: not unified
};

// Errors are usage or set-up errors (unknown guest, bad exclude list,
// classic form without reference guests, a root given twice).
Result<SelectedGuests> select_guests(const GuestSelection& sel);

// Whether the package manager is consulted for a guest: util-vserver's
// apps/vunify/pkgmgmt-ignore, then pkgmgmt-force, then the same two files
// under .defaults/apps/vunify; default yes.
bool use_pkgmgmt(const Guest& guest, const ConfigBase& config);

} // namespace vu
