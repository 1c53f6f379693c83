// The one way the suite replaces a name inside a guest.
//
// A name is never missing, not even for an instant or after kill -9: the
// new inode is linked to a fresh, signed temporary name beside it (see
// TempNames), and renameat2(RENAME_EXCHANGE) swaps the two names in one
// step. The temporary then holds the old inode, which is checked to be the
// one expected; until the swap is committed (the temporary unlinked) it
// can be undone by exchanging again. A killed run leaves temporaries only,
// and the next run removes exactly those whose signature checks.
#pragma once

#include "kernel/fd.h"
#include "kernel/result.h"
#include "unify/state.h"

#include <cstdint>
#include <string>

namespace vu {

// A name swapped to another inode, undoable until committed. Holds the
// directory open: callers keep only a bounded number at once.
struct Swapped {
  UniqueFd dir;     // the name's directory
  std::string name; // now names the new inode
  std::string tmp;  // now names the old inode
};

// Links the open inode `fd` to a fresh temporary name in `dirfd` and
// returns the name. EMLINK, EPERM (immutable inode) etc. as from linkat.
Result<std::string> link_to_temp(int fd, int dirfd, const TempNames& temps);

// Swaps `name` in `dir` to the open inode `to_fd`, expecting its old inode
// to be (old_dev, old_ino). On any failure nothing is left changed and the
// error says why: ESTALE when the name held another inode, ENOENT when it
// was gone, EMLINK when `to_fd` has no links left, else the failed call's.
Result<Swapped> swap_name(int to_fd, UniqueFd dir, const std::string& name, uint64_t old_dev,
                          uint64_t old_ino, const TempNames& temps);

// Gives the name its old inode back and removes the temporary.
Status undo_swap(Swapped& s);

// Removes the temporary: the old inode loses that name. Fails with EPERM
// while the old inode is immutable (mainline refuses to unlink it).
Status commit_swap(Swapped& s);

// Errors that mean "the guest changed this meanwhile", not a failure.
bool is_race(int code);

} // namespace vu
