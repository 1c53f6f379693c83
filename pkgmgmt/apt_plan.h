// What an apt-get transaction will do to a guest's files, learned from
// the guest: the steps `apt-get --simulate` prints, the file lists of the
// installed packages those steps touch (dpkg's info/<pkg>.list) and the
// names in the archives they install (pkgmgmt/tar_names.h). All of it is
// the guest's word - its apt-get's output, its dpkg database - and is
// parsed with bounds; it only chooses which of that guest's own files are
// made private before the transaction, so a lie costs the guest alone.
#pragma once

#include "kernel/result.h"

#include <string>
#include <string_view>
#include <vector>

namespace vu {

enum class AptAction { install, remove, purge, configure };

// One line of `apt-get --simulate`: "Inst NAME [OLD] (NEW RELEASES [ARCH])",
// "Remv NAME [OLD]", "Purg NAME [OLD]", "Conf NAME (NEW RELEASES [ARCH])".
struct AptStep {
  AptAction action = AptAction::install;
  std::string package;     // may carry ":arch"
  std::string old_version; // empty: not installed before
  std::string new_version; // install and configure only
  std::string arch;        // install and configure only
};

// The steps of a simulation's output (other lines are apt's messages and
// are skipped). A step line that does not parse - a name or version with
// characters Debian does not allow, a missing part - is an error naming
// the line; more than `max_steps` steps is an error.
Result<std::vector<AptStep>> parse_apt_simulation(std::string_view text,
                                                  size_t max_steps = 100'000);

// Whether an apt-get command line changes installed packages (its first
// word that is not an option is install, remove, purge, upgrade,
// dist-upgrade, full-upgrade, autoremove, autopurge, reinstall or
// build-dep; -f/--fix-broken install too), unless an option says it only
// simulates or downloads (-s, --simulate, --just-print, --dry-run,
// --recon, --no-act, -d, --download-only, --print-uris; also inside a
// cluster such as -ys). Options that take a value (-o, -c, -t, ...) are
// skipped with it.
bool apt_command_changes_packages(const std::vector<std::string>& args);

// The file name apt gives an archive in /var/cache/apt/archives:
// NAME_VERSION_ARCH.deb with the epoch's ':' written "%3a".
std::string apt_archive_name(const AptStep& step);

// The local archives of `apt-get --print-uris` output: lines "'URI'
// NAME SIZE HASH"; for a file: URI the path it names (percent-decoded),
// else "ARCHIVES_DIR/NAME" (where apt keeps what it fetched: by default
// /var/cache/apt/archives). A line that starts with a quote but does not
// parse, a path that is not absolute or has a NUL, is an error naming the
// line.
Result<std::vector<std::string>>
parse_apt_print_uris(std::string_view text,
                     const std::string& archives_dir = "/var/cache/apt/archives",
                     size_t max_entries = 100'000);

// The paths dpkg lists for an installed package in admin_fd's
// info/<package>.list, and info/<package>:<arch>.list for every arch when
// `package` has no ":arch" (multi-arch packages use that name). Missing
// lists yield nothing. Each line must be an absolute path without NUL of
// at most 4096 bytes; a list above max_bytes is an error.
Result<std::vector<std::string>> read_dpkg_file_lists(int admin_fd, const std::string& package,
                                                      uint64_t max_bytes = 64ull << 20);

// Parses one dpkg file list (the format above).
Result<std::vector<std::string>> parse_dpkg_file_list(std::string_view text,
                                                      std::string_view origin,
                                                      size_t max_entries = 1'000'000);

} // namespace vu
