// De-unification: give a guest private copies of the files it shares.
#pragma once

#include "unify/guests.h"
#include "unify/options.h"
#include "unify/report.h"

#include <string>
#include <vector>

namespace vu {

struct DeunifyOptions : RunOptions {};

// Every inode of `guest` that is immutable or has links outside the guest
// (other guests, a hash store) is replaced under each of the guest's names
// of it by a private copy with the same content (holes kept), owner, mode,
// xattrs (ACLs, capabilities) and times: one copy per name, except for
// names that were one inode before the suite linked them (they share one
// copy again). With `paths` (absolute guest paths) only those names'
// inodes are handled. Names never go missing (swap.h); after kill -9 the
// next run of vunify or vunify -R removes the leftovers. The shared inode
// stays frozen for the others while it keeps more than one link. Per-file
// failures are counted in the report; set-up failures returned.
Result<Report> run_deunify(const UnifyGuest& guest, const std::vector<std::string>& paths,
                           const DeunifyOptions& options);

} // namespace vu
