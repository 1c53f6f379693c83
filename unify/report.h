// What a unify run did: counters, failures by kind, and the action log.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "unify/guest_role.h"

namespace vu {

// Failure kinds, each counted separately and reported once with an example.
enum class Failure {
  walk,    // a directory could not be opened or read
  open,    // a file could not be opened
  stat,    // statx failed
  read,    // reading content failed
  xattr,   // listing or reading extended attributes failed
  attr,    // getting or setting the immutable flag failed
  link,    // linkat failed
  rename,  // renameat2 failed
  unlink,  // removing a replaced name or a temporary failed
  verify,  // the canonical inode changed while links were added (rolled back)
  config,  // guest configuration (exclude list, reference guests)
  pkgmgmt, // a guest's package database could not be read: guest not unified
  cache,   // the hash cache could not be saved (the next run hashes again)
  store,   // a hash-store directory could not be made, or a file is on another file system
  dedupe,  // the kernel refused to share a file's extents (--reflink)
};
const char* failure_name(Failure f);

// Reasons a file was left alone that are not failures.
enum class Skip {
  changed,   // changed between scan/hash and link (or bytes differed)
  partial,   // inode has links outside the scanned, non-excluded paths
  busy,      // open for writing by some process: its writes must not be lost
  written,   // a guest process opened a shared file for writing during the run;
             // its guest keeps that inode, the others were moved to a copy
  immutable, // --reflink: an immutable file's extents cannot change
};
const char* skip_name(Skip s);

struct FailureInfo {
  uint64_t count = 0;
  std::string first_path;
  std::string first_message;
};

// What a run is doing, for the progress line.
enum class ProgressStage { scan, hash, link, done };
const char* progress_stage_name(ProgressStage s);

// Live counters for a progress line; updated with relaxed atomics.
struct Progress {
  std::atomic<uint64_t> files_scanned{0};
  std::atomic<uint64_t> bytes_hashed{0};
  std::atomic<uint64_t> files_linked{0};
  std::atomic<ProgressStage> stage{ProgressStage::scan};
};

struct GuestSummary {
  std::string name;
  std::string root;
  GuestRole role = GuestRole::member;
  PkgmgmtUse pkgmgmt = PkgmgmtUse::none;
  uint64_t config_files = 0;               // listed by the package manager
  std::vector<std::string> config_sources; // where they came from
};

struct Report {
  std::vector<GuestSummary> guests;
  bool dry_run = false;
  bool reflink = false; // files share extents, not inodes (--reflink)
  uint32_t parts = 1;   // size ranges the run was made of (--memory-limit)
  uint64_t dirs_scanned = 0;
  uint64_t files_scanned = 0; // regular files seen, not excluded
  uint64_t bytes_scanned = 0;
  uint64_t files_excluded = 0; // entries pruned by the exclude lists
  uint64_t files_config = 0;   // names kept private as package-manager config files
  uint64_t files_small = 0;    // regular files under the size threshold
  uint64_t files_large = 0;    // regular files over --max-size
  uint64_t files_other = 0;    // symlinks, devices, FIFOs, sockets
  uint64_t files_hashed = 0;
  uint64_t bytes_hashed = 0;   // content bytes read while hashing
  uint64_t files_compared = 0; // byte comparisons before linking
  uint64_t duplicate_groups = 0;
  uint64_t files_linked = 0;         // names replaced by a link (dry run: would be)
  uint64_t bytes_saved = 0;          // bytes of inodes freed (dry run: would be)
  uint64_t files_already_shared = 0; // names that already shared an inode with a duplicate
  uint64_t inodes_protected = 0;     // immutable flag newly set
  uint64_t temporaries_removed = 0;
  // Hash store runs (vhashify).
  uint64_t bytes_compared = 0; // content bytes read to compare (store match, before each link)
  uint64_t files_in_store = 0; // names already linked to their store entry
  uint64_t cache_hits = 0;     // hashes taken from the cache
  uint64_t store_entries_created = 0;
  uint64_t store_entries_removed = 0;         // garbage collected
  std::vector<uint64_t> bytes_saved_by_guest; // per guest (dry run): its inodes that would go
  uint64_t files_deunified = 0;               // names given a private copy (vunify -R)
  uint64_t bytes_copied = 0;                  // bytes of those private copies
  std::map<Skip, uint64_t> skipped;
  std::map<Skip, FailureInfo> skip_examples; // the first of each kind that had one
  std::map<Failure, FailureInfo> failures;
  std::vector<std::string> actions;                          // one line per link (verbose), sorted
  std::vector<std::pair<std::string, double>> stage_seconds; // in pass order
  double seconds = 0;

  uint64_t failure_count() const;
  bool failed() const { return failure_count() != 0; }
};

// Adds `from`'s failures and skips to `into`'s; the first example of each
// kind is kept (into's, else from's).
void merge_failures(Report& into, const Report& from);

// Thread-safe collector of failures and actions during a run.
class FailureLog {
public:
  void add(Failure kind, const std::string& path, const std::string& message);
  void skip(Skip kind);
  // A skip worth an example in the report (Skip::written, Skip::busy).
  void skip(Skip kind, const std::string& path, const std::string& message);
  void action(std::string line);
  // Moves everything into the report (actions sorted).
  void drain_into(Report& report);

private:
  std::mutex m_mutex;
  std::map<Failure, FailureInfo> m_failures;
  std::map<Skip, uint64_t> m_skipped;
  std::map<Skip, FailureInfo> m_skip_examples;
  std::vector<std::string> m_actions;
};

// JSON object with the documented keys (see man/vunify.8).
nlohmann::json report_to_json(const Report& report);
// "errors" in every tool's JSON: {kind: {count, example, message}}.
nlohmann::json failures_to_json(const std::map<Failure, FailureInfo>& failures);
// Human summary (several lines, ends with a newline).
std::string report_to_text(const Report& report, int verbosity);
// "1.5 GiB" style sizes.
std::string human_bytes(uint64_t bytes);
// Printable form of a guest path: bytes that are not printable ASCII or
// UTF-8, and newlines, are escaped as \xNN.
std::string printable_path(const std::string& path);

} // namespace vu
