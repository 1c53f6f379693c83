// Walking the paths named on a command line (setattr, showattr, vdu's
// classic form): never following a symlink below the named path,
// optionally recursing and staying on one file system.
#pragma once

#include "kernel/fs.h"

#include <cstdint>
#include <functional>
#include <string>

namespace vu {

struct WalkEntry {
  int dirfd;           // the directory holding the entry
  std::string name;    // its name there ("." for a named directory itself)
  std::string display; // path for messages and output
  FileStat st;         // lstat
};

struct WalkOptions {
  bool recurse = false;         // -R
  bool one_file_system = false; // -x
  bool list_directories = true; // a named directory shows its entries (showattr without -d)
  bool include_self = false;    // the named directory itself is also visited
  bool dot_files = true;        // entries starting with '.' (showattr needs -a)
};

struct WalkResult {
  uint64_t failures = 0; // entries that could not be reached or visited
  bool reached = false;  // the named path itself could be examined
};

// Calls `visit` for every entry (returning false counts a failure); each
// entry that cannot be reached is reported to stderr as "<prog>: <path>:
// <error>". The named path is the administrator's argument and is trusted:
// its directories are followed as given, and a trailing '/' follows a
// symlink at its end (POSIX: "dlink/" is the directory dlink points to).
// Below it nothing is followed: directories are opened beneath the named
// one (openat2, no symlinks), one at a time, so the walk needs the same few
// descriptors at any depth.
WalkResult walk_path(const std::string& prog, const std::string& path, const WalkOptions& opt,
                     const std::function<bool(const WalkEntry&)>& visit);

} // namespace vu
