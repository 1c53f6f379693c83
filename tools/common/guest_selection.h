// Turning command-line guest arguments into the guests of a unify run:
// configuration lookup, reference guests, exclude lists and the package
// manager's configuration files. Shared by vunify, vhashify and vdu.
#pragma once

#include "unify/guests.h"
#include "unify/report.h"

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
  // --exclude, --include: before every list (includes first).
  std::vector<std::string> excludes, includes;
  bool no_pkgmgmt = false;
  // One configured guest alone means util-vserver's "link it to its
  // refservers" (vunify); other programs just take the guest.
  bool classic_refservers = true;
  // --manually: how many <path> <excludelist> pairs are needed (vunify
  // links the first path to the others: 2; vhashify links each to the
  // store: 1). With vunify the first is the member, the rest references;
  // otherwise all are members.
  size_t min_manual_pairs = 2;
};

struct LeftOutGuest {
  std::string name;
  std::string message;
};

struct SelectedGuests {
  std::vector<UnifyGuest> guests;     // references first, then members
  std::vector<LeftOutGuest> rejected; // package database unreadable: not unified
  std::vector<LeftOutGuest> skipped;  // --all: a configured guest without a usable root
  std::vector<LeftOutGuest> stray;    // --all: a directory of the base that is no guest
  std::vector<std::string> warnings;  // exclude lists written for util-vserver's '*'
};

// Errors are usage or set-up errors (unknown guest, bad exclude list,
// classic form without reference guests, a root given twice, "/", or one
// inside another). Guests left out are listed, not errors: the run goes on
// without them and its exit status says something failed.
Result<SelectedGuests> select_guests(const GuestSelection& sel);

// Files the guests left out as failures of the report (pkgmgmt, config),
// so the exit status is 1 and the report names them.
void note_left_out(const SelectedGuests& selected, Report& report);
// One line per guest left out, and a warning per stray directory and per
// exclude list written for util-vserver's '*', on stderr, prefixed with
// `prog`.
void print_left_out(const std::string& prog, const SelectedGuests& selected);

// The ordered exclude list for a configured guest: `first` (--include and
// --exclude), its apps/vunify/exclude, then `base` (--exclude-from, else
// the base's .defaults/apps/vunify/exclude, else the built-in list). A
// missing file is skipped; an unreadable one (not a regular file, too
// large) is an error. Its crossing_warning, if any, is added to `warnings`
// once.
Result<ExcludeList> guest_excludes(const Guest& guest, const ExcludeList& first,
                                   const ExcludeList& base, std::vector<std::string>& warnings);

// Whether the package manager is consulted for a guest: util-vserver's
// apps/vunify/pkgmgmt-ignore, then pkgmgmt-force, then the same two files
// under .defaults/apps/vunify; default yes.
bool use_pkgmgmt(const Guest& guest, const ConfigBase& config);

} // namespace vu
