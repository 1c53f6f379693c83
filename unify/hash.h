// Content hashing and comparison of open files.
//
// Hashes are XXH3-128 with a per-run random seed: a guest cannot craft
// contents that collide under a seed it never sees, which matters for the
// post-link check in link.cpp. Hashes are never the final word before a
// link: the byte comparison is.
#pragma once

#include "kernel/result.h"

#include <cstdint>
#include <xxhash.h>

namespace vu {

struct Hash128 {
  uint64_t lo = 0, hi = 0;
  bool operator==(const Hash128&) const = default;
  auto operator<=>(const Hash128&) const = default;
};

Hash128 hash_bytes(const void* data, size_t len, uint64_t seed);

// Hashes `len` bytes of fd from offset 0 (fewer if the file is shorter; the
// count read is returned through bytes_read). Thread-safe.
Result<Hash128> hash_fd(int fd, uint64_t len, uint64_t seed, uint64_t* bytes_read);

// Two hashes of the same bytes in one read: XXH3-128 under seed_a and
// under seed_b (the hash store's stable key and the run's secret hash).
struct TwoHashes {
  Hash128 a, b;
};
Result<TwoHashes> hash_fd_twice(int fd, uint64_t len, uint64_t seed_a, uint64_t seed_b,
                                uint64_t* bytes_read);

// The content hash used to group files: XXH3-128 of the first `prefix_len`
// bytes, and for longer files that hash combined with the XXH3-128 of the
// remaining bytes, so the full-hash pass never re-reads the prefix.
inline constexpr uint64_t k_prefix_len = 4096;
Hash128 combine_hashes(const Hash128& prefix, const Hash128& rest);
// Files up to this size are read whole in the first pass (one read).
inline constexpr uint64_t k_small_file = 256 * 1024;
// Reads a file of `size` <= k_small_file bytes in one go and returns its
// prefix hash and its full content hash (as content_hash computes it);
// bytes_read tells how much was there.
struct SmallHashes {
  Hash128 prefix, full;
};
Result<SmallHashes> hash_small_file(int fd, uint64_t size, uint64_t seed, uint64_t* bytes_read);

// Hashes `count` bytes of fd from offset `from` (fewer at end of file);
// returns the count read via bytes_read.
Result<Hash128> hash_range(int fd, uint64_t from, uint64_t count, uint64_t seed,
                           uint64_t* bytes_read);
// The full content hash of a file of `size` bytes, as the passes compute it.
Result<Hash128> content_hash(int fd, uint64_t size, uint64_t seed);

// The canonical list of an open file's extended attributes (ACLs and
// file capabilities included): sorted names, each "name\0<len>\0value".
// Equal lists mean equal xattrs.
Result<std::string> xattr_blob(int fd);
// Makes an open file's extended attributes exactly those of `blob` (an
// xattr_blob): names it lacks are removed, the others set.
Status set_xattr_blob(int fd, const std::string& blob);

// True when both descriptors hold the same `len` bytes from offset 0 and
// neither has more. Reads both in full. Thread-safe.
Result<bool> same_content(int fd_a, int fd_b, uint64_t len);
// True when fd holds exactly the `len` <= k_small_file bytes at `bytes`
// from offset 0 and no more (one read). Thread-safe.
Result<bool> same_as_bytes(int fd, const char* bytes, uint64_t len);

} // namespace vu
