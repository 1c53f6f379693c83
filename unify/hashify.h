// vhashify: link every eligible file of the guests to its entry in the
// content-addressed hash store (unify/store.h), creating entries on first
// sight, so a new guest is matched against everything unified before and
// an unchanged nightly run reads no file content.
#pragma once

#include "unify/guests.h"
#include "unify/hash.h"
#include "unify/options.h"
#include "unify/report.h"

#include <functional>
#include <string>
#include <vector>

namespace vu {

struct HashifyOptions : RunOptions {
  std::string store;    // the store directory (created 0700 when missing, not in a dry run)
  bool refresh = false; // ignore the cache (util-vserver --refresh)
  bool gc = false;      // collect garbage at the end
  // A cached hash is used only when it was taken this long after the
  // file's ctime (a write within the clock's granularity keeps the ctime).
  int64_t cache_min_age_ns = 2'000'000'000;
  // The same guard for a new entry made of a guest's own inode: a file
  // whose ctime is this old when its hash is read, that had no writer just
  // before the read, on a file system where every write gives a new ctime,
  // needs no second read as the proof that it is still what was hashed
  // (hashify.cpp, adopt_entry).
  int64_t proof_min_age_ns = 2'000'000'000;
  // Test hook: maps each content hash before it names an entry (e.g. to
  // one constant, forcing collisions).
  std::function<Hash128(const Hash128&)> hash_hook;
  // Test hook: the same for each xattr list's hash.
  std::function<uint64_t(uint64_t)> xattrs_hook;
};

// Refuses a store (existing or to be created) inside any of the guests'
// roots or the other guests' roots, one that contains a guest root, and one
// on another file system than any of `guests`. Nothing is created.
Status check_store_place(const std::string& store, const std::vector<UnifyGuest>& guests,
                         const std::vector<Guest>& other_guests);

// One store run. A new store entry is the first guest's own inode, frozen
// and proven unchanged (else a private copy made by this tool in the store,
// a directory no guest reaches); the other guest names are swapped to it
// with link.cpp's verified protocol. Per-file failures are counted;
// set-up failures (store misplaced, lock busy with wait_for_lock false) are
// returned. Takes the store's lock and the guests' locks (not in a dry run).
Result<Report> run_hashify(const std::vector<UnifyGuest>& guests, const HashifyOptions& options);

// Removes store entries no guest links any more (link count 1) and
// temporaries left by killed runs; takes the store lock.
Result<Report> run_store_gc(const HashifyOptions& options);

} // namespace vu
