// The parallel guest walk (first pass of a unify run).
#pragma once

#include "kernel/fd.h"
#include "kernel/fs.h"
#include "kernel/mapped_vector.h"
#include "unify/guests.h"
#include "unify/report.h"
#include "unify/state.h"

#include <array>
#include <atomic>
#include <compare>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace vu {

// A path kept in a PathArena: a pointer to its bytes, whose length the
// arena keeps in the four bytes before them. Converts to std::string_view
// and std::string, compares as a string. The per-file records are most of
// a run's memory; this is 8 bytes and the bytes themselves, where a
// std::string was 32 bytes plus a heap block.
//
// The pointer's top 16 bits, which a 64-bit Linux process's addresses do
// not use (user space ends at 2^47 on x86-64, 2^48 on arm64, unless a
// program asks mmap for more), hold a tag its holder may set: FileRec
// keeps its guest's index there (72 bytes a record instead of 80). The
// tag is no part of the path and comparisons ignore it.
class PathRef {
public:
  PathRef() = default;
  std::string_view view() const { return {bytes(), size()}; }
  operator std::string_view() const { return view(); }
  operator std::string() const { return std::string(view()); }
  size_t size() const {
    uint32_t n;
    std::memcpy(&n, bytes() - sizeof n, sizeof n);
    return n;
  }
  uint16_t tag() const { return static_cast<uint16_t>(m_bits >> k_tag_shift); }
  PathRef tagged(uint16_t t) const {
    PathRef r = *this;
    r.m_bits = (m_bits & k_address) | uintptr_t(t) << k_tag_shift;
    return r;
  }
  friend bool operator==(const PathRef& a, const PathRef& b) { return a.view() == b.view(); }
  friend auto operator<=>(const PathRef& a, const PathRef& b) { return a.view() <=> b.view(); }
  friend std::string operator+(std::string a, const PathRef& b) { return a.append(b.view()); }

private:
  friend class PathArena;
  static_assert(sizeof(uintptr_t) == 8, "PathRef keeps a tag in a 64-bit pointer's top bits");
  static constexpr unsigned k_tag_shift = 48;
  static constexpr uintptr_t k_address = (uintptr_t(1) << k_tag_shift) - 1;
  explicit PathRef(const char* p);
  const char* bytes() const { return reinterpret_cast<const char*>(m_bits & k_address); }
  static constexpr char k_empty[sizeof(uint32_t)] = {}; // the length of "" and nothing after it
  uintptr_t m_bits = reinterpret_cast<uintptr_t>(k_empty + sizeof(uint32_t));
};

// Owns the bytes of PathRefs, in 64 KiB blocks that never move.
class PathArena {
public:
  PathArena() = default;
  PathArena(PathArena&&) = default;
  PathArena& operator=(PathArena&&) = default;
  PathArena(const PathArena&) = delete;
  PathArena& operator=(const PathArena&) = delete;

  PathRef add(std::string_view s);
  // A PathRef of this arena (or of one it absorbed) for bytes it returned.
  static PathRef at(const char* bytes) { return PathRef(bytes); }
  // Takes over other's blocks (their PathRefs stay valid).
  void absorb(PathArena&& other);

private:
  std::vector<std::unique_ptr<char[]>> m_blocks;
  size_t m_used = 0, m_capacity = 0;
};

// Keeps one copy of each distinct path: guests of one distribution have
// the same paths, so a walk over many of them keeps about one guest's path
// bytes instead of one per guest. Thread-safe. A path whose probe in the
// table grows long (guests choose their names, and could choose colliding
// ones) is simply kept again: the cost of a crafted name stays bounded.
class PathInterner {
public:
  PathInterner() = default;
  PathInterner(const PathInterner&) = delete;
  PathInterner& operator=(const PathInterner&) = delete;

  PathRef add(std::string_view s);
  // Every path's bytes; the tables are freed and the interner is empty.
  PathArena take();

private:
  struct Slot {
    const char* p = nullptr; // a PathRef's bytes
    uint32_t n = 0;
    uint32_t check = 0; // more bits of the hash: most mismatches compare no bytes
  };
  struct Shard {
    std::mutex mutex;
    PathArena arena;
    std::vector<Slot> table; // open addressing, a power of two, at most 3/4 full
    size_t used = 0;
  };
  static constexpr size_t k_shards = 64;
  static constexpr size_t k_max_probe = 32;
  static void grow(Shard& sh);
  std::array<Shard, k_shards> m_shards;
};

// A regular file found by the walk. path is relative to the guest root,
// without a leading '/', and lives in the ScanResult's arena; its tag is
// the guest's index (RunContext::open allows at most k_max_guests).
struct FileRec {
  static constexpr uint32_t k_max_guests = 0xffff; // the store's pseudo-guest included
  FileRec() = default;
  FileRec(uint32_t guest, PathRef p, const FileStat& s);
  uint32_t guest() const { return path.tag(); }
  PathRef path;
  FileStat st;
};
static_assert(sizeof(FileRec) == 72, "FileRec's layout is part of a run's memory budget");

// A temporary name a killed run left (signature checked).
struct TempRec {
  uint32_t guest = 0;
  std::string path;
  FileStat st; // so its inode does not count as linked from elsewhere
};

// How many files the walk saw of each size range: 64 powers of two, each
// split in 16 equal parts (sizes 0-15 one part each). A run over more files
// than its memory allows is made of several runs over size ranges
// (unify.cpp); these counts choose the ranges.
struct SizeHistogram {
  static constexpr size_t k_parts = 16;
  std::atomic<uint64_t> count[64 * k_parts] = {};
  static size_t slot(uint64_t size);
  // The smallest size of a slot (slots are ascending in size).
  static uint64_t lowest(size_t slot);
};

// How many files a walk may keep: past max_files it keeps none and sets
// `overflow` (the run is then made of size ranges, unify.cpp).
struct ScanBudget {
  uint64_t max_files = UINT64_MAX;
  std::atomic<uint64_t> kept{0};
  std::atomic<bool> overflow{false};
};

// What the walk keeps and where it stops.
struct ScanOptions {
  uint64_t min_size = 16; // smaller regular files are counted, not listed
  uint64_t max_size = 0;  // so are larger ones (0: no limit)
  // One size range of a run made of several (files outside it, but within
  // min_size..max_size, are neither listed nor counted).
  uint64_t range_lo = 0, range_hi = UINT64_MAX;
  SizeHistogram* histogram = nullptr; // counts every file within min_size..max_size
  ScanBudget* budget = nullptr;       // null: keep every file
  bool one_file_system = false;       // do not enter directories on other file systems
  // Never list (nor stat) what secret_files() names: runs that read file
  // content set this; runs that only count or copy shared inodes do not.
  bool skip_secrets = false;
  Progress* progress = nullptr;
  // One Report::actions line per name left alone and why (vunify -vv).
  bool log_skips = false;
  // Names signed with this key are the suite's own temporaries: listed in
  // ScanResult::temporaries, not as files. Null or keyless: none is.
  const TempNames* temp_names = nullptr;
};

struct ScanResult {
  PathArena paths;                  // the bytes of files[].path
  MappedVector<FileRec> files;      // sorted by (guest, path)
  std::vector<TempRec> temporaries; // leftovers of an interrupted run
};

// Walks every guest in parallel, relative to `roots` (one open directory
// per guest), never following a symlink, pruning excluded directories,
// keeping regular files of at least options.min_size bytes. Counters go to
// `report`, failures to `log`. Thread-safe with respect to other scans.
// config_paths[g]: sorted absolute paths of guest g that stay private (may
// be empty: none).
ScanResult scan_guests(const std::vector<UnifyGuest>& guests, const std::vector<UniqueFd>& roots,
                       const std::vector<std::vector<std::string>>& config_paths,
                       const ScanOptions& options, Report& report, FailureLog& log);

} // namespace vu
