// Store entry names and the hash cache file.
//
// Cache file format (little-endian, as written by x86_64/aarch64; another
// byte order reads as corrupt and only costs a re-hash): 8-byte magic
// "VUHCACH1", u64 count, then `count` records of 12 u64 words: dev, ino,
// size, mtime, ctime, hashed_at, hash.lo, hash.hi, xattrs, used (last
// lookup or hash; 0 in files written before it existed), 2 reserved; then
// an XXH3-64 of everything before it.
#include "unify/store.h"

#include "kernel/fs.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <functional>
#include <memory>
#include <sstream>
#include <vector>

namespace vu {

std::string store_entry_name(const StoreKey& k, uint32_t n) {
  std::string hex = fmt::format("{:016x}{:016x}", k.hash.hi, k.hash.lo);
  return fmt::format("{}/{}-{:04o}-{}-{}-{:016x}-{}", hex.substr(0, 2), hex, k.mode & 07777, k.uid,
                     k.gid, k.xattrs, n);
}

std::optional<std::pair<StoreKey, uint32_t>> parse_store_entry(const std::string& path) {
  auto slash = path.find('/');
  if (slash != 2 || path.size() < 3) return std::nullopt;
  std::string name = path.substr(3);
  std::vector<std::string> parts;
  std::stringstream ss(name);
  for (std::string p; std::getline(ss, p, '-');) parts.push_back(p);
  if (parts.size() != 6 || parts[0].size() != 32 || parts[0].compare(0, 2, path, 0, 2) != 0)
    return std::nullopt;
  try {
    auto all_of = [](const std::string& s, const char* set) {
      return !s.empty() && s.find_first_not_of(set) == std::string::npos;
    };
    if (!all_of(parts[0], "0123456789abcdef") || !all_of(parts[1], "01234567") ||
        !all_of(parts[2], "0123456789") || !all_of(parts[3], "0123456789") ||
        !all_of(parts[4], "0123456789abcdef") || parts[4].size() != 16 ||
        !all_of(parts[5], "0123456789") || parts[1].size() > 5 || parts[2].size() > 10 ||
        parts[3].size() > 10 || parts[5].size() > 9)
      return std::nullopt;
    StoreKey k;
    k.hash.hi = std::stoull(parts[0].substr(0, 16), nullptr, 16);
    k.hash.lo = std::stoull(parts[0].substr(16), nullptr, 16);
    k.mode = static_cast<uint32_t>(std::stoul(parts[1], nullptr, 8));
    k.uid = static_cast<uint32_t>(std::stoul(parts[2]));
    k.gid = static_cast<uint32_t>(std::stoul(parts[3]));
    k.xattrs = std::stoull(parts[4], nullptr, 16);
    uint32_t n = static_cast<uint32_t>(std::stoul(parts[5]));
    if (store_entry_name(k, n) != path) return std::nullopt; // one spelling only
    return std::make_pair(k, n);
  } catch (...) {
    return std::nullopt;
  }
}

uint64_t xattr_name_hash(const std::string& blob) {
  return blob.empty() ? 0 : XXH3_64bits(blob.data(), blob.size());
}

namespace {
constexpr char k_magic[8] = {'V', 'U', 'H', 'C', 'A', 'C', 'H', '1'};
constexpr size_t k_words = 12;
constexpr uint64_t k_record = k_words * 8;
constexpr uint64_t k_batch = 1024; // records read or written at once

uint64_t size_of(const uint64_t* w) {
  return w[2];
}
int64_t used_of(const uint64_t* w) { // 0: written before "used" existed
  return static_cast<int64_t>(w[9] ? w[9] : w[5]);
}

// Streams the records of the cache file open as `fd` to f(words), in file
// order, k_batch at a time: memory holds a batch, never the file. False
// when the file is damaged - not a regular file of the size its header
// announces, or a checksum that does not match; f may have seen records
// by then, and the caller drops what it made of them.
bool stream_records(int fd, const std::function<void(const uint64_t*)>& f) {
  auto st = stat_fd(fd);
  if (!st.ok() || !st->is_regular() || st->size < 24 || st->size > HashCache::k_max_file_bytes)
    return false;
  char head[16];
  auto n = read_at(fd, head, sizeof head, 0);
  if (!n.ok() || *n != sizeof head || std::memcmp(head, k_magic, 8) != 0) return false;
  uint64_t count = 0;
  std::memcpy(&count, head + 8, 8);
  if (count > (st->size - 24) / k_record || st->size != 16 + count * k_record + 8) return false;
  std::unique_ptr<XXH3_state_t, decltype(&XXH3_freeState)> sum(XXH3_createState(), &XXH3_freeState);
  if (!sum) return false;
  XXH3_64bits_reset(sum.get());
  XXH3_64bits_update(sum.get(), head, sizeof head);
  std::vector<char> buf(k_record * k_batch);
  uint64_t off = 16, left = count;
  while (left > 0) {
    uint64_t batch = std::min<uint64_t>(left, k_batch);
    auto got = read_at(fd, buf.data(), batch * k_record, off);
    if (!got.ok() || *got != batch * k_record) return false;
    XXH3_64bits_update(sum.get(), buf.data(), batch * k_record);
    for (uint64_t i = 0; i < batch; ++i) {
      uint64_t w[k_words];
      std::memcpy(w, buf.data() + i * k_record, sizeof w);
      f(w);
    }
    off += batch * k_record;
    left -= batch;
  }
  uint64_t want = 0;
  auto tail = read_at(fd, &want, 8, off);
  return tail.ok() && *tail == 8 && XXH3_64bits_digest(sum.get()) == want;
}

UniqueFd open_cache_file(const std::string& path) {
  // The cache is this tool's own file in a directory only root reaches;
  // still, whatever sits there is opened without following a symlink or
  // blocking on a FIFO (stream_records checks the rest).
  return UniqueFd(::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC));
}
} // namespace

void HashCache::load(const std::string& path, uint64_t size_lo, uint64_t size_hi) {
  std::lock_guard lock(m_mutex);
  m_map.clear();
  m_corrupt = false;
  UniqueFd fd = open_cache_file(path);
  if (!fd.valid() && errno == ENOENT) return;
  if (!fd.valid()) {
    m_corrupt = true;
    m_dirty = true;
    return;
  }
  load_locked(fd.get(), size_lo, size_hi);
}

void HashCache::load_fd(int fd) {
  std::lock_guard lock(m_mutex);
  m_map.clear();
  m_corrupt = false;
  load_locked(fd, 0, UINT64_MAX);
}

void HashCache::load_locked(int fd, uint64_t size_lo, uint64_t size_hi) {
  const bool ok = stream_records(fd, [&](const uint64_t* w) {
    if (size_of(w) < size_lo || size_of(w) > size_hi) return;
    Entry e;
    e.size = w[2];
    e.mtime_ns = static_cast<int64_t>(w[3]);
    e.ctime_ns = static_cast<int64_t>(w[4]);
    e.hashed_at_ns = static_cast<int64_t>(w[5]);
    e.hash = Hash128{w[6], w[7]};
    e.xattrs = w[8];
    e.used_ns = used_of(w);
    m_map[{w[0], w[1]}] = e;
  });
  if (!ok) { // any damage makes the cache empty, never wrong
    m_corrupt = true;
    m_dirty = true;
    m_map.clear();
  }
}

Status HashCache::save(const std::string& path, int64_t now_ns, uint64_t size_lo,
                       uint64_t size_hi) const {
  std::lock_guard lock(m_mutex);
  // Entries nobody looked up for a long time belong to files that are gone
  // (or to guests no run has included since): dropped, so the cache does
  // not grow with every file that ever existed.
  auto in_use = [&](int64_t used_ns) { return now_ns - used_ns <= k_unused_ns; };
  // A run over one size range (--memory-limit) holds only the entries of
  // its sizes: the file's records of other sizes are copied as they are.
  UniqueFd old;
  uint64_t kept = 0;
  // (A file whose size moved into the range has its entry held: its old
  // record goes.)
  auto other_size = [&](const uint64_t* w) {
    return (size_of(w) < size_lo || size_of(w) > size_hi) && in_use(used_of(w)) &&
           !m_map.count({w[0], w[1]});
  };
  if (size_lo != 0 || size_hi != UINT64_MAX) {
    old = open_cache_file(path);
    if (old.valid() &&
        !stream_records(old.get(), [&](const uint64_t* w) { kept += other_size(w); })) {
      kept = 0; // damaged: those records are hashed again when their range runs
      old.reset();
    }
  }
  uint64_t count = kept;
  for (const auto& [k, e] : m_map) count += in_use(e.used_ns);

  const auto slash = path.rfind('/');
  const std::string dir = slash == std::string::npos ? "." : path.substr(0, slash + 1);
  UniqueFd dfd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!dfd.valid()) return errno_error("open directory " + dir);
  VU_TRY_ASSIGN(file, AtomicFile::create(dfd.get(), path.substr(slash + 1), 0600));
  std::unique_ptr<XXH3_state_t, decltype(&XXH3_freeState)> sum(XXH3_createState(), &XXH3_freeState);
  if (!sum) return make_error(ENOMEM, "XXH3_createState");
  XXH3_64bits_reset(sum.get());
  std::string buf;
  Status written;
  auto put = [&](const void* data, size_t n) {
    XXH3_64bits_update(sum.get(), data, n);
    buf.append(static_cast<const char*>(data), n);
    if (buf.size() >= k_record * k_batch && written.ok()) {
      written = file.append(buf);
      buf.clear();
    }
  };
  put(k_magic, 8);
  put(&count, 8);
  for (const auto& [k, e] : m_map) {
    if (!in_use(e.used_ns)) continue;
    uint64_t w[k_words] = {k.first,
                           k.second,
                           e.size,
                           static_cast<uint64_t>(e.mtime_ns),
                           static_cast<uint64_t>(e.ctime_ns),
                           static_cast<uint64_t>(e.hashed_at_ns),
                           e.hash.lo,
                           e.hash.hi,
                           e.xattrs,
                           static_cast<uint64_t>(e.used_ns),
                           0,
                           0};
    put(w, sizeof w);
  }
  if (old.valid()) {
    uint64_t again = 0;
    const bool same = stream_records(old.get(), [&](const uint64_t* w) {
      if (other_size(w) && ++again <= kept) put(w, k_record);
    });
    if (!same || again != kept)
      return described_error(EIO, path + " changed while it was being rewritten");
  }
  VU_TRY(written);
  uint64_t digest = XXH3_64bits_digest(sum.get());
  buf.append(reinterpret_cast<const char*>(&digest), 8);
  VU_TRY(file.append(buf));
  return file.commit();
}

std::optional<HashCache::Entry> HashCache::lookup(const FileStat& st, int64_t min_age_ns,
                                                  int64_t now_ns) {
  std::lock_guard lock(m_mutex);
  auto it = m_map.find({st.dev, st.ino});
  if (it == m_map.end()) return std::nullopt;
  Entry& e = it->second;
  if (e.size != st.size || e.mtime_ns != st.mtime_ns || e.ctime_ns != st.ctime_ns)
    return std::nullopt;
  if (e.hashed_at_ns - e.ctime_ns < min_age_ns) return std::nullopt;
  e.used_ns = std::max(e.used_ns, now_ns); // kept by save(); not a reason to rewrite the file
  return e;
}

void HashCache::put(const FileStat& st, const Hash128& hash, uint64_t xattrs, int64_t now_ns) {
  std::lock_guard lock(m_mutex);
  m_map[{st.dev, st.ino}] = Entry{st.size, st.mtime_ns, st.ctime_ns, now_ns, hash, xattrs, now_ns};
  m_dirty = true;
}

} // namespace vu
