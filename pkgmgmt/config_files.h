// Package-manager knowledge about configuration files: the seam between
// the package-database readers (dpkg, RPM; see the pkgmgmt issue) and the
// unify pipeline, which keeps every listed path private.
#pragma once

#include "kernel/result.h"

#include <string>
#include <string_view>
#include <vector>

namespace vu {

// The configuration files of one guest and where the list came from.
struct ConfigFileSet {
  std::vector<std::string> paths; // absolute guest paths, sorted, unique
  std::string source;             // e.g. "dpkg: /var/lib/dpkg/info/*.conffiles"
};

// Parses a list with one absolute path per line (the format of dpkg's
// info/<pkg>.conffiles, where a line may carry a trailing " obsolete" or
// "remove-on-upgrade" flag word only in newer formats: flag words after the
// path are accepted and dropped). Lines must be absolute paths without NUL
// bytes and at most 4096 bytes long; anything else is an error naming the
// line. `max_entries` bounds hostile input.
Result<std::vector<std::string>> parse_path_list(std::string_view text, std::string_view origin,
                                                 size_t max_entries = 1'000'000);

} // namespace vu
