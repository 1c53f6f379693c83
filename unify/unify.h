// The unify pipeline: find byte-identical files across guests and replace
// them with protected hard links to one inode. See ARCHITECTURE.md for the
// data flow and unify.cpp for the reasoning behind each pass.
#pragma once

#include "core/guest.h"
#include "unify/exclude.h"
#include "unify/report.h"

#include <cstdint>
#include <functional>
#include <vector>

namespace vu {

class AttrBackend;

// member: files may be replaced by links and may serve as the shared inode.
// reference: files may serve as the shared inode but are never replaced
// (classic `vunify <vserver>` links a guest to its refservers).
enum class GuestRole { member, reference };

struct UnifyGuest {
  Guest guest;
  GuestRole role = GuestRole::member;
  ExcludeList excludes; // complete, ordered list for this guest
  // Configuration files known to the package manager (absolute guest
  // paths, sorted): never shared, found by path and by inode.
  std::vector<std::string> config_files;
  std::vector<std::string> config_sources; // for reports, e.g. "dpkg /var/lib/dpkg/status"
  std::string pkgmgmt = "none";            // "used", "ignored" or "none" (for reports)
};

// Whether shared inodes get FS_IMMUTABLE_FL.
enum class Protect { immutable, none };

struct UnifyOptions {
  uint32_t threads = 0;     // 0: min(hardware threads, 8)
  bool dry_run = false;     // scan, group and hash; change nothing
  Protect protect = Protect::immutable;
  uint64_t min_size = 16;   // smaller regular files are left alone
  bool log_actions = false; // record one line per replaced name in Report::actions
  bool one_file_system = false; // do not descend into other file systems than the root's
  Progress* progress = nullptr;

  // Test hooks. before_link runs once after hashing, before the first
  // change; max_links (0: off) makes the canonical refuse links as if the
  // file system returned EMLINK once it has that many.
  std::function<void()> before_link;
  uint32_t max_links = 0;
  // Runs while a canonical inode is thawed to receive links, with the
  // absolute path of its first name (simulates a guest racing the window).
  std::function<void(const std::string&)> in_link_window;
  // The attribute back end that protects shared inodes; null: detected.
  AttrBackend* attrs = nullptr;
};

// Runs the whole pipeline. Per-file failures are counted in the report and
// never abort the run; only set-up errors (a guest root that cannot be
// opened) are returned as Error. Not reentrant with other runs on the same
// guests (the caller holds any lock).
Result<Report> run_unify(const std::vector<UnifyGuest>& guests, const UnifyOptions& options);

// The ordered exclude list for a configured guest: its apps/vunify/exclude,
// then .defaults/apps/vunify/exclude of `config`, then `base` (the built-in
// list or --exclude-from). Missing files are skipped.
Result<ExcludeList> guest_excludes(const Guest& guest, const ConfigBase& config,
                                   const ExcludeList& base);

// The prefix of temporary names vunify creates inside guest directories.
inline constexpr const char* k_temp_prefix = ".vunify-tmp.";

} // namespace vu
