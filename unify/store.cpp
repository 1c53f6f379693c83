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
} // namespace

void HashCache::load(const std::string& path) {
  std::lock_guard lock(m_mutex);
  m_map.clear();
  m_corrupt = false;
  // The cache is this tool's own file in a directory only root reaches;
  // still, whatever sits there is opened without following a symlink or
  // blocking on a FIFO, must be a regular file of the size its header
  // announces, and is streamed: memory holds the records, never the file.
  int raw = ::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
  if (raw < 0 && errno == ENOENT) return;
  if (raw < 0) {
    m_corrupt = true;
    m_dirty = true;
    return;
  }
  UniqueFd fd(raw);
  load_locked(fd.get());
}

void HashCache::load_fd(int fd) {
  std::lock_guard lock(m_mutex);
  m_map.clear();
  m_corrupt = false;
  load_locked(fd);
}

void HashCache::load_locked(int fd) {
  auto bad = [&] {
    m_corrupt = true;
    m_dirty = true;
    m_map.clear();
  };
  auto st = stat_fd(fd);
  if (!st.ok() || !st->is_regular() || st->size < 24 || st->size > k_max_file_bytes) return bad();
  char head[16];
  auto n = read_at(fd, head, sizeof head, 0);
  if (!n.ok() || *n != sizeof head || std::memcmp(head, k_magic, 8) != 0) return bad();
  uint64_t count = 0;
  std::memcpy(&count, head + 8, 8);
  const uint64_t record = k_words * 8;
  if (count > (st->size - 24) / record || st->size != 16 + count * record + 8) return bad();
  XXH3_state_t* sum = XXH3_createState();
  if (!sum) return bad();
  XXH3_64bits_reset(sum);
  XXH3_64bits_update(sum, head, sizeof head);
  m_map.reserve(count);
  std::vector<char> buf(record * 1024);
  uint64_t off = 16, left = count;
  bool ok = true;
  while (ok && left > 0) {
    uint64_t batch = std::min<uint64_t>(left, 1024);
    auto got = read_at(fd, buf.data(), batch * record, off);
    if (!got.ok() || *got != batch * record) {
      ok = false;
      break;
    }
    XXH3_64bits_update(sum, buf.data(), batch * record);
    for (uint64_t i = 0; i < batch; ++i) {
      uint64_t w[k_words];
      std::memcpy(w, buf.data() + i * record, sizeof w);
      Entry e;
      e.size = w[2];
      e.mtime_ns = static_cast<int64_t>(w[3]);
      e.ctime_ns = static_cast<int64_t>(w[4]);
      e.hashed_at_ns = static_cast<int64_t>(w[5]);
      e.hash = Hash128{w[6], w[7]};
      e.xattrs = w[8];
      e.used_ns = w[9] ? static_cast<int64_t>(w[9]) : e.hashed_at_ns; // 0: written before "used"
      m_map[{w[0], w[1]}] = e;
    }
    off += batch * record;
    left -= batch;
  }
  uint64_t want = 0;
  auto tail = ok ? read_at(fd, &want, 8, off) : Result<size_t>(described_error(EIO, ""));
  bool sum_ok = tail.ok() && *tail == 8 && XXH3_64bits_digest(sum) == want;
  XXH3_freeState(sum);
  if (!ok || !sum_ok) return bad();
}

Status HashCache::save(const std::string& path, int64_t now_ns) const {
  std::lock_guard lock(m_mutex);
  std::string data(k_magic, 8);
  uint64_t count = 0;
  data.append(reinterpret_cast<const char*>(&count), 8);
  for (const auto& [k, e] : m_map) {
    // Entries nobody looked up for a long time belong to files that are
    // gone (or to guests no run has included since): dropped, so the cache
    // does not grow with every file that ever existed.
    if (now_ns - e.used_ns > k_unused_ns) continue;
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
    data.append(reinterpret_cast<const char*>(w), sizeof w);
    ++count;
  }
  std::memcpy(data.data() + 8, &count, 8);
  uint64_t sum = XXH3_64bits(data.data(), data.size());
  data.append(reinterpret_cast<const char*>(&sum), 8);
  return write_file_atomic(path, data, 0600);
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
