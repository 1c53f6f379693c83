#include "kernel/extents.h"

#include <linux/fiemap.h>
#include <linux/fs.h>
#include <linux/magic.h>
#include <sys/ioctl.h>
#include <sys/vfs.h>

#include <cerrno>
#include <cstring>
#include <memory>

namespace vu {

static_assert(k_dedupe_differs == FILE_DEDUPE_RANGE_DIFFERS);

namespace {

// Extents whose place says nothing stable about where the bytes are.
constexpr uint32_t k_unplaced = FIEMAP_EXTENT_UNKNOWN | FIEMAP_EXTENT_DELALLOC |
                                FIEMAP_EXTENT_DATA_INLINE | FIEMAP_EXTENT_DATA_TAIL |
                                FIEMAP_EXTENT_NOT_ALIGNED;

uint64_t mix(uint64_t h, uint64_t v) {
  // splitmix64's finaliser over a running sum: not cryptographic; a layout
  // collision only makes two files look already shared (a missed saving).
  h ^= v + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2);
  h ^= h >> 30;
  h *= 0xbf58476d1ce4e5b9ULL;
  h ^= h >> 27;
  h *= 0x94d049bb133111ebULL;
  return h ^ (h >> 31);
}

} // namespace

Result<ExtentSummary> file_extents(int fd, std::vector<PhysicalExtent>* shared) {
  constexpr uint32_t batch = 64;
  const size_t size = sizeof(struct fiemap) + batch * sizeof(struct fiemap_extent);
  auto buf = std::make_unique<uint64_t[]>(size / sizeof(uint64_t) + 1);
  auto* map = reinterpret_cast<struct fiemap*>(buf.get());
  ExtentSummary out;
  uint64_t h = 0x51ed270b27fcd1a3ULL;
  bool placed = true;
  uint64_t start = 0;
  bool last = false;
  uint64_t count = 0;
  while (!last) {
    std::memset(map, 0, size);
    map->fm_start = start;
    map->fm_length = FIEMAP_MAX_OFFSET - start;
    map->fm_extent_count = batch;
    if (::ioctl(fd, FS_IOC_FIEMAP, map) != 0) return errno_error("FIEMAP");
    if (map->fm_mapped_extents == 0) break;
    for (uint32_t i = 0; i < map->fm_mapped_extents; ++i) {
      const auto& e = map->fm_extents[i];
      ++count;
      out.bytes += e.fe_length;
      if (e.fe_flags & k_unplaced)
        placed = false;
      else if (out.first_physical == 0)
        out.first_physical = e.fe_physical;
      if (e.fe_flags & (FIEMAP_EXTENT_DATA_INLINE | FIEMAP_EXTENT_DATA_TAIL))
        out.inline_data = true;
      if (e.fe_flags & FIEMAP_EXTENT_SHARED) {
        out.shared_bytes += e.fe_length;
        if (shared) shared->push_back({e.fe_physical, e.fe_length});
      }
      h = mix(mix(mix(h, e.fe_logical), e.fe_physical), e.fe_length);
      if (e.fe_flags & FIEMAP_EXTENT_LAST) last = true;
      start = e.fe_logical + e.fe_length;
    }
  }
  out.layout = placed && count > 0 ? (h == 0 ? 1 : h) : 0;
  return out;
}

bool shares_extents(int fd) {
  struct statfs s {};
  if (::fstatfs(fd, &s) != 0) return false;
  return static_cast<uint64_t>(s.f_type) == BTRFS_SUPER_MAGIC ||
         static_cast<uint64_t>(s.f_type) == XFS_SUPER_MAGIC;
}

Status dedupe_range(int src, uint64_t offset, uint64_t length, std::span<DedupeDest> dests) {
  if (dests.empty()) return {};
  if (dests.size() > k_dedupe_dests)
    return described_error(EINVAL, "FIDEDUPERANGE: too many files");
  const size_t size =
      sizeof(struct file_dedupe_range) + dests.size() * sizeof(struct file_dedupe_range_info);
  auto buf = std::make_unique<uint64_t[]>(size / sizeof(uint64_t) + 1);
  std::memset(buf.get(), 0, size);
  auto* r = reinterpret_cast<struct file_dedupe_range*>(buf.get());
  r->src_offset = offset;
  r->src_length = length;
  r->dest_count = static_cast<uint16_t>(dests.size());
  for (size_t i = 0; i < dests.size(); ++i) {
    r->info[i].dest_fd = dests[i].fd;
    r->info[i].dest_offset = offset;
  }
  if (::ioctl(src, FIDEDUPERANGE, r) != 0) return errno_error("FIDEDUPERANGE");
  for (size_t i = 0; i < dests.size(); ++i) {
    dests[i].status = r->info[i].status;
    dests[i].bytes = r->info[i].bytes_deduped;
  }
  return {};
}

} // namespace vu
