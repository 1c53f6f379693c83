// The hash store: a content-addressed directory (default /vservers/.hash)
// on the guests' file system holding one link of every shared inode, and
// the persistent hash cache that makes nightly runs cheap.
//
// Entry names are stable across runs and architectures:
//   <hh>/<hash>-<mode>-<uid>-<gid>-<xattrs>-<n>
// hash: XXH3-128 (seed 0) of the content as 32 lower-case hex digits, high
// half first; hh: its first two digits; mode: permission bits, 4 octal
// digits; uid, gid: decimal; xattrs: XXH3-64 (seed 0) of the canonical
// xattr list (sorted names, each "name\0<len>\0value"), 16 hex digits, all
// zeros without xattrs; n: collision index, 0 unless different contents
// share a hash (decided by comparing bytes). Everything a link must
// preserve is in the name; xattrs are compared in full before a link.
#pragma once

#include "kernel/fd.h"
#include "kernel/fs.h"
#include "unify/hash.h"

#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>

namespace vu {

struct StoreKey {
  Hash128 hash;
  uint32_t mode = 0; // permission bits
  uint32_t uid = 0, gid = 0;
  uint64_t xattrs = 0;
  bool operator==(const StoreKey&) const = default;
  auto operator<=>(const StoreKey&) const = default;
};

// "<hh>/<hash>-<mode>-<uid>-<gid>-<xattrs>-<n>".
std::string store_entry_name(const StoreKey& key, uint32_t n);
// Parses an entry path ("hh/name"); nullopt when it is not one.
std::optional<std::pair<StoreKey, uint32_t>> parse_store_entry(const std::string& path);

// XXH3-64 of a canonical xattr list (hash.h's xattr_blob), for names.
uint64_t xattr_name_hash(const std::string& blob);

// Persistent cache: (dev, ino) -> content hash, validated by size, mtime
// and ctime (nanoseconds). A file whose ctime was less than `min_age_ns`
// before it was hashed is not trusted later (it may have changed within the
// same clock tick). Loading a missing, corrupt or oversized file (more than
// k_max_file_bytes, anything but a regular file) yields an empty cache and
// never blocks; saving replaces the file atomically, never writing through
// a symlink, and drops entries unused for k_unused_ns. Thread-safe.
class HashCache {
public:
  struct Entry {
    uint64_t size = 0;
    int64_t mtime_ns = 0, ctime_ns = 0, hashed_at_ns = 0;
    Hash128 hash;
    uint64_t xattrs = 0;
    int64_t used_ns = 0; // last lookup that hit, or the hash itself
  };
  static constexpr int64_t k_min_age_ns = 2'000'000'000;
  static constexpr int64_t k_unused_ns = 30ll * 24 * 3600 * 1'000'000'000; // 30 days
  // 96 bytes a record: about 11 million files.
  static constexpr uint64_t k_max_file_bytes = 1ull << 30;

  // Loads the entries of files whose size is within size_lo..size_hi (a
  // run over one size range needs no more).
  void load(const std::string& path, uint64_t size_lo = 0, uint64_t size_hi = UINT64_MAX);
  // The same from an open descriptor (the file, or a memfd in tests and
  // fuzzing): the same checks, the same result.
  void load_fd(int fd);
  // Replaces the file atomically with the entries used within 30 days;
  // given a size range, the entries held are those of that range, and the
  // file's records of other sizes are kept. Memory holds a batch of
  // records, never the file.
  Status save(const std::string& path, int64_t now_ns, uint64_t size_lo = 0,
              uint64_t size_hi = UINT64_MAX) const;
  // The cached hash when the entry matches `st` and passed the age guard;
  // marks the entry used at now_ns.
  std::optional<Entry> lookup(const FileStat& st, int64_t min_age_ns = k_min_age_ns,
                              int64_t now_ns = 0);
  void put(const FileStat& st, const Hash128& hash, uint64_t xattrs, int64_t now_ns);
  size_t size() const { return m_map.size(); }
  // True after put() or a load that found damage: save() has work to do.
  bool dirty() const { return m_dirty; }
  bool loaded_corrupt() const { return m_corrupt; }

private:
  struct KeyHash {
    size_t operator()(const std::pair<uint64_t, uint64_t>& k) const {
      return std::hash<uint64_t>()(k.first * 0x9E3779B97F4A7C15ull ^ k.second);
    }
  };
  void load_locked(int fd, uint64_t size_lo, uint64_t size_hi); // m_mutex held
  mutable std::mutex m_mutex;
  std::unordered_map<std::pair<uint64_t, uint64_t>, Entry, KeyHash> m_map;
  bool m_corrupt = false;
  bool m_dirty = false;
};

} // namespace vu
