// The passes of a run, each a function of the run context (run.h). A
// command is a list of them (unify.cpp, hashify.cpp, deunify.cpp):
//
//   config   package-manager configuration files resolved inside each guest
//   scan     every guest walked at once (scan.cpp): metadata only
//   inodes   names merged by inode; "fully seen" when every link was found
//   group    buckets by what a link must preserve (device, size, mode,
//            owner, group, mtime); buckets of one dropped
//   prefix   xattr fingerprint and the first 4 KiB (small files whole)
//   hash     the rest of the larger survivors
//   plan     the surviving inode of each group, and who may be replaced
//   link     leftovers of killed runs removed, then every group verified
//            and swapped (link.cpp)
//   protect  inodes shared across guests that lack the flag get it
//
// Passes are parallel inside (oneTBB), sorted afterwards so results do not
// depend on scheduling, and each is timed (--stats). None throws; failures
// go to the context's log.
#pragma once

#include "unify/run.h"

#include <set>
#include <string>
#include <utility>
#include <vector>

namespace vu {

// config: per guest, the sorted paths that stay private (listed and
// resolved inside the guest) and the inodes of configuration files.
struct ConfigFiles {
  std::vector<std::vector<std::string>> paths; // per guest, absolute guest paths
  std::set<std::pair<uint64_t, uint64_t>> inodes;
};
ConfigFiles resolve_config_files(RunContext& rc);

// scan: walks every guest into rc.scan (scan.cpp does the work).
void scan_pass(RunContext& rc, const ConfigFiles& config, const ScanOptions& options);
// The walk of a run that reads content (vunify, vhashify): the run's size
// limits, size range, counters and file system bound; secrets never listed.
ScanOptions content_scan_options(const RunOptions& o);

// inodes: rc.inodes from rc.scan, one record per (dev, ino), with
// fully_seen, member_only, immutable and config set.
void inodes_pass(RunContext& rc, const ConfigFiles& config);

// group: buckets of at least two inodes with equal (dev, size, mode, uid,
// gid and, unless ignore_mtime, mtime), without config files.
std::vector<std::vector<uint32_t>> group_pass(RunContext& rc);

// prefix and hash: the buckets split by xattr fingerprint and content hash
// (seeded with rc.seed); unreadable or changed inodes are dropped. Files
// are read in path order, or, given `place` (per inode: where its data
// begins on the device, 0 unknown), in that order.
void prefix_pass(RunContext& rc, std::vector<std::vector<uint32_t>>& buckets,
                 const std::vector<uint64_t>* place = nullptr);
void hash_pass(RunContext& rc, std::vector<std::vector<uint32_t>>& buckets,
               const std::vector<uint64_t>* place = nullptr);

// plan: rc.groups from the buckets: the surviving inode first (already
// immutable, then most names, then guest order, then path; it must be
// fully seen or already immutable), then the inodes that may be replaced
// (fully seen, only in member guests).
void plan_pass(RunContext& rc, std::vector<std::vector<uint32_t>>& buckets);
// A dry run's result of the plan: what would be linked and saved.
void count_planned(RunContext& rc);

// link: removes leftovers of killed runs, then verifies and links every
// group of rc.groups, reordered by the path of each group's first target
// (link.cpp).
void link_pass(RunContext& rc);
// Verifies and links one group: canonical first (link.cpp). Thread-safe
// across groups.
void link_group(RunContext& rc, const Group& group);

// Removes the temporaries killed runs left (only names signed with this
// host's key, see state.h), restoring what they interrupted where every
// name of the inode is known (link.cpp). Returns how many were removed.
uint64_t remove_temporaries(RunContext& rc);

// protect: inodes linked from several guests that lack the flag (a run
// killed while one was thawed) get it - only when every name is known.
void protect_pass(RunContext& rc);

// Opens the first name of an inode beneath its guest root for reading and
// checks it is still that inode. Failures are logged.
Result<UniqueFd> open_inode(RunContext& rc, const InodeRec& inode);

// open_inode for a pass over many inodes: the first name is opened relative
// to its parent directory, whose descriptor is kept while the following
// inodes lie in the same directory. Walk the inodes in path order (see
// sort_by_path) and each directory is resolved once instead of once per
// file. One per thread.
class InodeOpener {
public:
  explicit InodeOpener(RunContext& rc) : m_rc(rc) {}
  Result<UniqueFd> open(const InodeRec& inode);

private:
  RunContext& m_rc;
  uint32_t m_guest = UINT32_MAX; // the cached directory: guest and path
  std::string m_dir;
  UniqueFd m_dirfd;
};

// Sorts inode indices by their first name, the order InodeOpener wants.
void sort_by_path(const RunContext& rc, std::vector<uint32_t>& idx);

} // namespace vu
