// Where a file's data lies on disk (FIEMAP) and sharing it between files
// (FIDEDUPERANGE): what vunify --reflink and vdu need on file systems with
// shared extents (btrfs, XFS). Thread-safe; only the given descriptors are
// touched.
#pragma once

#include "kernel/result.h"

#include <cstdint>
#include <span>
#include <vector>

namespace vu {

// A physical range of the device (FIEMAP's fe_physical, fe_length).
struct PhysicalExtent {
  uint64_t physical = 0;
  uint64_t length = 0;
  bool operator<(const PhysicalExtent& o) const {
    return physical != o.physical ? physical < o.physical : length < o.length;
  }
};

struct ExtentSummary {
  // Hash of every extent's (logical, physical, length): two files with the
  // same nonzero layout read their bytes from the same blocks. 0 when the
  // layout says nothing stable (no extents, data not yet allocated, inline
  // or of unknown place).
  uint64_t layout = 0;
  // Where the file's data begins on the device (the first extent with a
  // known place), or 0: the order in which cold reads run forward.
  uint64_t first_physical = 0;
  uint64_t bytes = 0;        // bytes in extents
  uint64_t shared_bytes = 0; // of them in extents the file system marks shared
  // Some data lives inside the file system's metadata (btrfs stores small
  // files so): such a file shares no extent with any other.
  bool inline_data = false;
};

// The extents of the open file. `shared`, when given, receives the physical
// ranges of its shared extents. ENOTSUP/EOPNOTSUPP where the file system
// has no FIEMAP.
Result<ExtentSummary> file_extents(int fd, std::vector<PhysicalExtent>* shared = nullptr);

// Whether the file system of `fd` shares extents between files (btrfs, XFS).
bool shares_extents(int fd);

// One destination of dedupe_range. status after the call: 0 the range now
// shares the source's blocks (bytes: how many), 1 the bytes differ, a
// negative errno the kernel's refusal for this file.
constexpr int k_dedupe_differs = 1; // FILE_DEDUPE_RANGE_DIFFERS
struct DedupeDest {
  int fd = -1;
  int status = 0;
  uint64_t bytes = 0;
};

// The kernel compares [offset, offset + length) of `src` with the same
// range of every destination under its locks and, where equal, makes the
// destination use the source's blocks (FIDEDUPERANGE). Neither file's
// content, times or owner change. At most k_dedupe_dests destinations; a
// length over 16 MiB may be shortened (see bytes). The call's own failure
// (EOPNOTSUPP: no shared extents on this file system) is the Result's.
constexpr size_t k_dedupe_dests = 120; // the argument must fit one page
Status dedupe_range(int src, uint64_t offset, uint64_t length, std::span<DedupeDest> dests);

} // namespace vu
