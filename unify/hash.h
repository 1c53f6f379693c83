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

// True when both descriptors hold the same `len` bytes from offset 0 and
// neither has more. Reads both in full. Thread-safe.
Result<bool> same_content(int fd_a, int fd_b, uint64_t len);

} // namespace vu
