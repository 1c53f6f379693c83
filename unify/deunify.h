// De-unification: give a guest private copies of the files it shares.
#pragma once

#include "unify/unify.h"

#include <string>
#include <vector>

namespace vu {

struct DeunifyOptions {
  uint32_t threads = 0;
  bool dry_run = false;
  bool log_actions = false;
  Progress* progress = nullptr;
};

// Every inode of `guest` that is immutable or has links outside the guest
// (other guests, a hash store) is replaced, under all of the guest's names
// of it, by a private copy with the same content (holes kept), owner,
// mode, xattrs (ACLs, capabilities) and times. With `paths` (absolute guest
// paths) only those names' inodes are handled. Names never go missing:
// each is swapped with RENAME_EXCHANGE; after kill -9 the next run of
// vunify or vunify -R removes leftover temporaries. The shared inode keeps
// its immutable flag for the others unless its last other link is gone.
// Per-file failures are counted in the report; set-up failures returned.
Result<Report> run_deunify(const UnifyGuest& guest, const std::vector<std::string>& paths,
                           const DeunifyOptions& options);

} // namespace vu
