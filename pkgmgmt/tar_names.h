// The member names of tar streams, as `dpkg-deb --fsys-tarfile` writes
// them for a package's files, read incrementally and with bounds. The
// stream comes from inside a guest (its dpkg-deb unpacks the archive
// there, so no decompressor runs on the host for it) and is hostile: only
// headers are parsed (ustar, GNU long names, pax "path" records), their
// checksums are checked, data is skipped by its declared size, and zero
// blocks are skipped, so several archives may follow one another.
#pragma once

#include "kernel/result.h"

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace vu {

struct TarLimits {
  uint64_t max_stream_bytes = 16ull << 30;
  size_t max_names = 1'000'000;
  size_t max_meta_bytes = 64 << 10; // one GNU long name or pax header
};

class TarNameReader {
public:
  explicit TarNameReader(TarLimits limits = {}) : limits_(limits) {}

  // Feeds the next bytes of the stream. After an error the reader stays
  // failed and returns it again.
  Status feed(std::string_view bytes);
  // The stream ended: it must end on a block boundary, outside a member.
  Status finish();

  // Absolute guest paths ("./usr/bin/x" -> "/usr/bin/x", no trailing
  // '/'; "./" itself is left out), in stream order. Names with a ".."
  // component, a NUL or more than 4096 bytes are errors.
  const std::vector<std::string>& names() const { return names_; }

private:
  Status header(const unsigned char* block);
  Status take_name(std::string raw);
  Status meta_done();

  TarLimits limits_;
  std::vector<std::string> names_;
  std::string block_;         // a partial header block
  uint64_t skip_ = 0;         // data bytes (with padding) still to skip
  uint64_t total_ = 0;        // bytes fed
  char meta_type_ = 0;        // 'L' or 'x' while its data is collected
  uint64_t meta_left_ = 0;    // its data still to collect
  uint64_t meta_padding_ = 0; // padding after it
  std::string meta_;          // the collected data
  std::string next_name_;     // from 'L' or 'x', for the next member
  Error error_;
  bool failed_ = false;
};

} // namespace vu
