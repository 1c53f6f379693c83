// What an rpm transaction will do to a guest's files, learned from the
// guest's own rpm: the package files and names on the command line, the
// paths in those package files and the paths of the installed packages
// they replace or the command erases (rpm -q[p] --qf output). Like
// apt_plan.h, all of it is the guest's word, parsed with bounds, and only
// chooses which of that guest's own files are made private.
#pragma once

#include "kernel/result.h"

#include <string>
#include <string_view>
#include <vector>

namespace vu {

// An rpm command line, read as rpm reads it.
struct RpmCommand {
  bool changes = false;              // install, upgrade, freshen, reinstall or erase
  bool erase = false;                // -e / --erase
  std::vector<std::string> packages; // package files (.rpm), as guest paths
  std::vector<std::string> names;    // erase: the package names given
};

// Modes that change packages: -i/--install, -U/--upgrade, -F/--freshen,
// --reinstall, -e/--erase (also inside clusters such as -Uvh), unless the
// command queries or verifies (-q, -V) or only tests (--test). Options
// that take a value (--root, --dbpath, --define, ...) are skipped with it;
// package files are the other arguments ending in ".rpm" (made absolute
// from the guest's /), names the other arguments of an erase.
RpmCommand read_rpm_command(const std::vector<std::string>& args);

// The output of `rpm -q[p] --qf '@@name %{NAME}\n[%{FILENAMES}\n]'`
// (stdout and stderr together): "@@name NAME" lines give package names
// (letters, digits and ._+- only, at most 256 bytes), lines starting with
// '/' give paths (at most 4096 bytes, no NUL). rpm's messages ("package x
// is not installed", warnings) are skipped; a name or path that breaks
// the rules is an error naming the line.
struct RpmQueryResult {
  std::vector<std::string> names;
  std::vector<std::string> paths;
};
Result<RpmQueryResult> parse_rpm_query(std::string_view text, size_t max_entries = 2'000'000);

// The query format that output expects.
extern const char* const k_rpm_query_format;

} // namespace vu
