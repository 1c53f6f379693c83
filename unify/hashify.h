// vhashify: link every eligible file of the guests to its entry in the
// content-addressed hash store (unify/store.h), creating entries on first
// sight, so a new guest is matched against everything unified before and
// an unchanged nightly run reads no file content.
#pragma once

#include "unify/hash.h"
#include "unify/unify.h"

#include <functional>
#include <string>

namespace vu {

struct HashifyOptions {
  std::string store;      // the store directory (created 0700 when missing)
  uint32_t threads = 0;
  bool dry_run = false;   // hash (and cache) and report; link nothing
  bool refresh = false;   // ignore the cache (util-vserver --refresh)
  bool ignore_mtime = false; // also link files whose mtimes differ (util-vserver --ignore-mtime)
  Protect protect = Protect::immutable;
  uint64_t min_size = 16;
  bool log_actions = false;
  bool wait_for_lock = true;            // else fail with EWOULDBLOCK when locked
  std::function<void()> on_lock_wait;   // called once before waiting
  bool gc = false;                      // collect garbage at the end
  int64_t cache_min_age_ns = 2'000'000'000;
  Progress* progress = nullptr;
  // Roots of guests that are not part of the run but must not hold the
  // store either (every configured guest).
  std::vector<std::string> other_guest_roots;
  // Test hook: maps each content hash before it names an entry (e.g. to
  // one constant, forcing collisions).
  std::function<Hash128(const Hash128&)> hash_hook;
};

// Refuses a store (existing or to be created) inside any of the guests'
// roots or other_roots, one that contains a guest root, and one on another
// file system than any of `guests`. Nothing is created.
Status check_store_place(const std::string& store, const std::vector<UnifyGuest>& guests,
                         const std::vector<std::string>& other_roots);

// One store run. Store entries are made as private copies by this tool in
// the store (a directory no guest reaches), then guest names are swapped to
// them with link.cpp's verified protocol. Per-file failures are counted;
// set-up failures (store on another file system, lock busy) are returned.
Result<Report> run_hashify(const std::vector<UnifyGuest>& guests, const HashifyOptions& options);

// Removes store entries no guest links any more (link count 1) and
// temporaries left by killed runs; takes the store lock.
Result<Report> run_store_gc(const HashifyOptions& options);

} // namespace vu
