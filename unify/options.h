// What every run that changes guests (vunify, vunify -R, vhashify) is told.
#pragma once

#include "core/guest.h"
#include "unify/report.h"

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace vu {

class AttrBackend;
struct SizeHistogram;
struct ScanBudget;

// Whether shared inodes get the strongest protection the kernel offers
// (FS_IMMUTABLE_FL on mainline).
enum class Protect { immutable, none };

// Hooks for tests; none is set in the programs.
struct RunHooks {
  // Runs once after hashing, before the first change.
  std::function<void()> before_link;
  // Makes the shared inode refuse links beyond this many, as if the file
  // system returned EMLINK (0: off).
  uint32_t max_links = 0;
  // Runs while a shared inode is thawed to receive links, with the
  // absolute path of its first name (a guest racing the window).
  std::function<void(const std::string&)> in_link_window;
  // Runs once the copy of a written shared inode has its first moved
  // name, with a path to that name (relocate_for_writers).
  std::function<void(const std::string&)> in_relocation;
};

struct RunOptions {
  uint32_t threads = 0; // 0: 8 per core, 8 to 32 (workers.h)
  bool dry_run = false; // read and report; change (and create) nothing
  Protect protect = Protect::immutable;
  uint64_t min_size = 16; // smaller regular files are left alone
  uint64_t max_size = 0;  // larger regular files are left alone (0: no limit)
  // Link content-equal files whose mtimes differ (util-vserver's
  // --ignore-mtime; the names then show the shared inode's mtime).
  bool ignore_mtime = false;
  // Share extents (FIDEDUPERANGE, btrfs and XFS) instead of linking: every
  // name keeps its own inode, nothing is frozen (reflink.cpp).
  bool reflink = false;
  bool one_file_system = false; // do not enter other file systems than the root's
  bool log_actions = false;     // one line per changed name in Report::actions
  bool log_skips = false;       // and one per name left alone, with the reason
  Progress* progress = nullptr;
  AttrBackend* attrs = nullptr; // how shared inodes are protected; null: detected
  // Guest locks (state directory): wait for another run, or fail at once.
  bool wait_for_lock = true;
  std::function<void(const std::string& guest, const std::string& holder)> on_lock_wait;
  std::string lock_holder = "vunify"; // how this run names itself in lock files
  // Guests outside the run that may share inodes with it (every guest of
  // the configuration base): searched when a guest process is caught
  // writing to a shared inode, so that their names move to an unchanged
  // copy too.
  std::vector<Guest> other_guests;
  // Memory the run's records may take (0: no limit). A run over more files
  // than fit is made of runs over size ranges (files of one size are
  // always in the same range), one after the other (unify.cpp, hashify.cpp).
  uint64_t memory_limit = 0;
  // Set by the partitioned run for each of its parts.
  uint64_t range_lo = 0, range_hi = UINT64_MAX;
  SizeHistogram* histogram = nullptr;
  ScanBudget* budget = nullptr;
  RunHooks hooks;
};

} // namespace vu
