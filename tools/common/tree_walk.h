// Walking the paths named on a command line (setattr, showattr): never
// following a symlink below the named path, optionally recursing and
// staying on one file system.
#pragma once

#include "kernel/fs.h"

#include <functional>
#include <string>

namespace vu {

struct WalkEntry {
  int dirfd;           // the directory holding the entry
  std::string name;    // its name there ("" only for "/")
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

// Calls `visit` for every entry; returns the number of entries that could
// not be reached (each reported to stderr as "<prog>: <path>: <error>").
// The named path's parent is opened as given (trusted, it is the
// administrator's argument); everything below it relative to descriptors.
uint64_t walk_path(const std::string& prog, const std::string& path, const WalkOptions& opt,
                   const std::function<bool(const WalkEntry&)>& visit);

} // namespace vu
