// Disk-usage accounting for guests (vdu): what each guest uses, shares
// and could still save. Reads metadata only, except with `deep`.
#pragma once

#include "unify/unify.h"

#include <cstdint>
#include <string>
#include <vector>

namespace vu {

struct GuestUsage {
  std::string name;
  std::string root;
  uint64_t files = 0;         // names of regular files
  uint64_t inodes = 0;        // distinct inodes among them
  uint64_t apparent = 0;      // bytes (st_size), each inode once in this guest
  uint64_t allocated = 0;     // bytes allocated (st_blocks * 512), each inode once
  uint64_t private_bytes = 0; // allocated bytes of inodes linked only from this guest
  // Allocated bytes of inodes also linked from another guest or from outside
  // the guests (a hash store): `shared_full` counts each whole, `shared`
  // this guest's share: the bytes split evenly between the guests of this
  // report that link the inode (the remainder to the first of them), so the
  // guests' private + shared add up to the disk really used.
  uint64_t shared_full = 0;
  uint64_t shared = 0;
  uint64_t alone = 0;    // what the guest would need if none of its names shared an inode
  uint64_t saved = 0;    // alone - private - shared
  uint64_t possible = 0; // deep only: bytes unify could still free in this guest
  // On btrfs and XFS: bytes of this guest's files (each inode once) that
  // lie in extents the file system marks shared (vunify --reflink, cp
  // --reflink, snapshots).
  uint64_t extents_shared = 0;
};

struct DirUsage {
  std::string guest;
  std::string path; // absolute guest path of a directory
  uint64_t private_bytes = 0;
};

struct UsageReport {
  std::vector<GuestUsage> guests;
  uint64_t files = 0;
  uint64_t allocated = 0; // disk used by all guests' files, each inode once
  uint64_t alone = 0;     // sum of the guests' "alone" figures
  uint64_t saved = 0;     // alone - allocated
  bool deep = false;
  uint64_t possible = 0;
  // Some guest lies on a file system whose files can share extents: the
  // extent figures below were taken (FIEMAP of every file).
  bool extents = false;
  uint64_t extents_shared = 0; // bytes of all guests' files in shared extents, each inode once
  // What that sharing saves among these guests: extents_shared minus the
  // bytes of the distinct shared physical ranges. Sharing with files
  // outside the guests (snapshots, other trees) saves nothing here.
  uint64_t extents_saved = 0;
  bool store_present = false;
  std::string store;
  uint64_t store_entries = 0;
  uint64_t store_bytes = 0;  // allocated bytes of the store's inodes
  std::vector<DirUsage> top; // directories by private bytes, largest first
  Report problems;           // failures only: files that could not be examined
  double seconds = 0;
};

struct UsageOptions {
  uint32_t threads = 0;
  bool deep = false; // also find identical files that are not linked (reads content)
  uint32_t top = 0;  // how many directories to list
  std::string store; // hash store directory; ignored when it does not exist
};

// Walks every guest once (all regular files, no excludes). With `deep`,
// runs unify's dry run over the same guests (their own excludes and
// config files apply) for the still-possible saving. Per-file failures are
// counted in `problems`. Thread-safe with respect to other calls.
Result<UsageReport> compute_usage(const std::vector<UnifyGuest>& guests,
                                  const UsageOptions& options);

} // namespace vu
