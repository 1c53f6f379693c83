// The passes of vunify --reflink (reflink.cpp): identical files share
// extents instead of an inode.
#pragma once

#include "unify/passes.h"

#include <cstdint>
#include <utility>
#include <vector>

namespace vu {

// Extent layouts of the candidates, handed from the extents pass to the
// plan and reflink passes.
struct Layouts {
  std::vector<uint64_t> of; // per inode (index into rc.inodes); 0: none known
  // Per inode: where its data begins on the device (0: unknown), the order
  // of the prefix and hash passes' reads.
  std::vector<uint64_t> place;
  // (representative, follower): the follower has the representative's
  // layout, is not hashed, and joins its group after the hash pass.
  std::vector<std::pair<uint32_t, uint32_t>> followers;
};

// extents: each candidate's layout (FIEMAP); per bucket one member per
// layout stays for the prefix and hash passes; buckets that are one layout
// already are dropped (counted as already shared).
Layouts extents_pass(RunContext& rc, std::vector<std::vector<uint32_t>>& buckets);

// plan: rc.groups from the hashed buckets with the followers back in: the
// canonical file first (immutable, else the most common layout, then guest
// order and path), then every file that does not share its layout yet and
// may change (member guests, not immutable).
void reflink_plan_pass(RunContext& rc, const Layouts& lay,
                       std::vector<std::vector<uint32_t>>& buckets);
// A dry run's result of the plan.
void count_planned_reflink(RunContext& rc, const Layouts& lay);

// reflink: the kernel shares the canonical file's extents with every
// target whose bytes are equal (FIDEDUPERANGE).
void reflink_pass(RunContext& rc, const Layouts& lay);

// Every guest root is on a file system whose files can share extents.
Status check_reflink_roots(const RunContext& rc);

} // namespace vu
