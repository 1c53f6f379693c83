// XXH3-128 streaming over pread, and a chunked byte comparison.
#include "unify/hash.h"

#include "kernel/fs.h"

#include <sys/xattr.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

// libxxhash's default entry points use the baseline instruction set (SSE2);
// its *_dispatch variants pick AVX2 or AVX-512 at run time and give the
// same hashes, 2.3x faster here (ARCHITECTURE.md, performance).
#if defined(__x86_64__) || defined(__i386__)
#include <xxh_x86dispatch.h>
#endif

namespace vu {

namespace {
// Reads go through a 64 KiB buffer per thread: a run has many workers, and
// 256 KiB buffers were measurable in its peak RSS. The comparison buffer
// holds a whole small file, but only the few link workers ever touch it.
constexpr size_t k_chunk = 64 * 1024;
constexpr size_t k_compare = k_small_file;
static_assert(k_chunk <= k_compare);

// Left uninitialised: a worker's memory grows only by the pages it reads into.
struct Buffer {
  explicit Buffer(size_t n) : bytes(new char[n]) {}
  std::unique_ptr<char[]> bytes;
  char* data() { return bytes.get(); }
};
// Per thread: the buffer every read goes through, and the second one a
// comparison needs.
Buffer& read_buffer() {
  thread_local Buffer buf(k_chunk);
  return buf;
}
Buffer& compare_buffer() {
  thread_local Buffer buf(k_compare);
  return buf;
}
// Two XXH3 states per thread (each 576 bytes, aligned; allocated once):
// the second for hash_fd_twice.
Result<XXH3_state_t*> thread_xxh3_state(int which = 0) {
  using State = std::unique_ptr<XXH3_state_t, decltype(&XXH3_freeState)>;
  thread_local State st[2] = {State(XXH3_createState(), &XXH3_freeState),
                              State(XXH3_createState(), &XXH3_freeState)};
  if (!st[which]) return make_error(ENOMEM, "XXH3_createState");
  return st[which].get();
}

// Feeds `count` bytes of fd from offset `from` into st through the read
// buffer; stops early at end of file. The count read goes to *n.
Status stream_into(XXH3_state_t* st, int fd, uint64_t from, uint64_t count, uint64_t* n) {
  auto& buf = read_buffer();
  uint64_t done = 0;
  while (done < count) {
    size_t want = static_cast<size_t>(std::min<uint64_t>(k_chunk, count - done));
    VU_TRY_ASSIGN(got, read_at(fd, buf.data(), want, from + done));
    if (got == 0) break;
    XXH3_128bits_update(st, buf.data(), got);
    done += got;
    if (got < want) break;
  }
  *n = done;
  return {};
}
} // namespace

Hash128 hash_bytes(const void* data, size_t len, uint64_t seed) {
  XXH128_hash_t h = XXH3_128bits_withSeed(data, len, seed);
  return Hash128{h.low64, h.high64};
}

Result<Hash128> hash_fd(int fd, uint64_t len, uint64_t seed, uint64_t* bytes_read) {
  return hash_range(fd, 0, len, seed, bytes_read);
}

Result<TwoHashes> hash_fd_twice(int fd, uint64_t len, uint64_t seed_a, uint64_t seed_b,
                                uint64_t* bytes_read) {
  VU_TRY_ASSIGN(a, thread_xxh3_state(0));
  VU_TRY_ASSIGN(b, thread_xxh3_state(1));
  XXH3_128bits_reset_withSeed(a, seed_a);
  XXH3_128bits_reset_withSeed(b, seed_b);
  auto& buf = read_buffer();
  uint64_t done = 0;
  while (done < len) {
    size_t want = static_cast<size_t>(std::min<uint64_t>(k_chunk, len - done));
    VU_TRY_ASSIGN(got, read_at(fd, buf.data(), want, done));
    if (got == 0) break;
    XXH3_128bits_update(a, buf.data(), got);
    XXH3_128bits_update(b, buf.data(), got);
    done += got;
    if (got < want) break;
  }
  if (bytes_read) *bytes_read = done;
  XXH128_hash_t ha = XXH3_128bits_digest(a);
  XXH128_hash_t hb = XXH3_128bits_digest(b);
  return TwoHashes{{ha.low64, ha.high64}, {hb.low64, hb.high64}};
}

Hash128 combine_hashes(const Hash128& prefix, const Hash128& rest) {
  uint64_t words[4] = {prefix.lo, prefix.hi, rest.lo, rest.hi};
  return hash_bytes(words, sizeof words, 0);
}

Result<SmallHashes> hash_small_file(int fd, uint64_t size, uint64_t seed, uint64_t* bytes_read) {
  auto& buf = read_buffer();
  size = std::min(size, k_small_file);
  VU_TRY_ASSIGN(n, read_at(fd, buf.data(), std::min<uint64_t>(size, k_chunk), 0));
  SmallHashes h;
  h.prefix = hash_bytes(buf.data(), std::min<uint64_t>(n, k_prefix_len), seed);
  if (n <= k_prefix_len) {
    if (bytes_read) *bytes_read = n;
    h.full = h.prefix;
    return h;
  }
  if (n < k_chunk || size <= k_chunk) {
    if (bytes_read) *bytes_read = n;
    h.full =
        combine_hashes(h.prefix, hash_bytes(buf.data() + k_prefix_len, n - k_prefix_len, seed));
    return h;
  }
  // Larger than one buffer: the rest streams through it (same value as
  // hashing it in one piece).
  uint64_t rest_read = 0;
  VU_TRY_ASSIGN(st, thread_xxh3_state());
  XXH3_128bits_reset_withSeed(st, seed);
  XXH3_128bits_update(st, buf.data() + k_prefix_len, n - k_prefix_len);
  VU_TRY(stream_into(st, fd, n, size - n, &rest_read));
  if (bytes_read) *bytes_read = n + rest_read;
  XXH128_hash_t rest = XXH3_128bits_digest(st);
  h.full = combine_hashes(h.prefix, Hash128{rest.low64, rest.high64});
  return h;
}

Result<Hash128> content_hash(int fd, uint64_t size, uint64_t seed) {
  VU_TRY_ASSIGN(prefix, hash_range(fd, 0, std::min(size, k_prefix_len), seed, nullptr));
  if (size <= k_prefix_len) return prefix;
  VU_TRY_ASSIGN(rest, hash_range(fd, k_prefix_len, size - k_prefix_len, seed, nullptr));
  return combine_hashes(prefix, rest);
}

Result<Hash128> hash_range(int fd, uint64_t from, uint64_t count, uint64_t seed,
                           uint64_t* bytes_read) {
  auto& buf = read_buffer();
  if (count <= k_chunk) {
    VU_TRY_ASSIGN(n, read_at(fd, buf.data(), count, from));
    if (bytes_read) *bytes_read = n;
    return hash_bytes(buf.data(), n, seed);
  }
  VU_TRY_ASSIGN(st, thread_xxh3_state());
  XXH3_128bits_reset_withSeed(st, seed);
  uint64_t n = 0;
  VU_TRY(stream_into(st, fd, from, count, &n));
  if (bytes_read) *bytes_read = n;
  XXH128_hash_t h = XXH3_128bits_digest(st);
  return Hash128{h.low64, h.high64};
}

Result<std::string> xattr_blob(int fd) {
  VU_TRY_ASSIGN(names, list_xattrs(fd));
  std::string blob;
  for (const auto& n : names) {
    VU_TRY_ASSIGN(value, get_xattr(fd, n));
    blob += n;
    blob.push_back('\0');
    blob += std::to_string(value.size());
    blob.push_back('\0');
    blob += value;
  }
  return blob;
}

Status set_xattr_blob(int fd, const std::string& blob) {
  std::vector<std::pair<std::string, std::string_view>> want;
  for (size_t at = 0; at < blob.size();) {
    size_t name_end = blob.find('\0', at);
    size_t len_end = name_end == std::string::npos ? name_end : blob.find('\0', name_end + 1);
    if (len_end == std::string::npos) return described_error(EINVAL, "malformed xattr list");
    const size_t len = std::stoul(blob.substr(name_end + 1, len_end - name_end - 1));
    if (len > blob.size() - len_end - 1) return described_error(EINVAL, "malformed xattr list");
    want.emplace_back(blob.substr(at, name_end - at),
                      std::string_view(blob).substr(len_end + 1, len));
    at = len_end + 1 + len;
  }
  VU_TRY_ASSIGN(have, list_xattrs(fd));
  for (const auto& n : have)
    if (std::none_of(want.begin(), want.end(), [&](const auto& w) { return w.first == n; }) &&
        ::fremovexattr(fd, n.c_str()) != 0 && errno != ENODATA)
      return errno_error("fremovexattr " + n);
  for (const auto& [n, value] : want) VU_TRY(set_xattr(fd, n, value));
  return {};
}

Result<bool> same_as_bytes(int fd, const char* bytes, uint64_t len) {
  if (len > k_small_file) return described_error(EINVAL, "same_as_bytes: too long");
  auto& b = compare_buffer();
  // One byte more than expected: a longer file shows up as a longer read.
  size_t want = static_cast<size_t>(len) + (len < k_compare ? 1 : 0);
  VU_TRY_ASSIGN(n, read_at(fd, b.data(), want, 0));
  if (n != len) return false;
  if (len == k_compare) {
    char probe;
    VU_TRY_ASSIGN(extra, read_at(fd, &probe, 1, len));
    if (extra != 0) return false;
  }
  return std::memcmp(b.data(), bytes, len) == 0;
}

Result<bool> same_content(int fd_a, int fd_b, uint64_t len) {
  auto& a = read_buffer();
  auto& b = compare_buffer();
  uint64_t off = 0;
  for (;;) {
    size_t want = static_cast<size_t>(std::min<uint64_t>(k_chunk, len - off));
    if (want == 0) want = 1; // probe: neither file may be longer than len
    VU_TRY_ASSIGN(na, read_at(fd_a, a.data(), want, off));
    VU_TRY_ASSIGN(nb, read_at(fd_b, b.data(), want, off));
    if (na != nb) return false;
    if (off >= len) return na == 0;
    if (na == 0) return false; // shorter than len
    if (std::memcmp(a.data(), b.data(), na) != 0) return false;
    off += na;
  }
}

} // namespace vu
