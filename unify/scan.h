// The parallel guest walk (first pass of a unify run).
#pragma once

#include "kernel/fd.h"
#include "kernel/fs.h"
#include "unify/unify.h"

#include <string>
#include <vector>

namespace vu {

// A regular file found by the walk. path is relative to the guest root,
// without a leading '/'.
struct FileRec {
  uint32_t guest = 0;
  std::string path;
  FileStat st;
};

struct TempRec {
  uint32_t guest = 0;
  std::string path;
  FileStat st; // so its inode does not count as linked from elsewhere
};

struct ScanResult {
  std::vector<FileRec> files;     // sorted by (guest, path)
  std::vector<TempRec> temporaries; // leftovers of an interrupted run
};

// Walks every guest in parallel, relative to `roots` (one open directory
// per guest), never following a symlink, pruning excluded directories,
// keeping regular files of at least options.min_size bytes. Counters go to
// `report`, failures to `log`. Thread-safe with respect to other scans.
// config_paths[g]: sorted absolute paths of guest g that stay private.
ScanResult scan_guests(const std::vector<UnifyGuest>& guests, const std::vector<UniqueFd>& roots,
                       const std::vector<std::vector<std::string>>& config_paths,
                       const UnifyOptions& options, Report& report, FailureLog& log);

// "usr/bin" for "usr/bin/ls", "" for "ls".
std::string parent_of(const std::string& path);
// "ls" for "usr/bin/ls".
std::string name_of(const std::string& path);

} // namespace vu
