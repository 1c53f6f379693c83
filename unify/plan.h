// Internal data of a unify run shared by unify.cpp (grouping, hashing) and
// link.cpp (verify and link). Not part of the library's public interface.
#pragma once

#include "kernel/attr.h"
#include "unify/hash.h"
#include "unify/reaper.h"
#include "unify/scan.h"

#include <atomic>
#include <set>
#include <span>
#include <vector>

namespace vu {

// One inode with every scanned name that refers to it.
struct InodeRec {
  FileStat st;                 // from the walk (first name)
  // Indices into ScanResult::files; the storage is the `names` vector
  // filled by build_inodes (or other storage that outlives the record).
  std::span<const uint32_t> names;
  bool fully_seen = false;     // every link of the inode was scanned
  bool member_only = true;     // every name lies in a member (not reference) guest
  bool immutable = false;
  bool failed = false;         // could not be opened/hashed; left alone
  bool config = false;         // a package-manager configuration file
  Hash128 xattrs;              // fingerprint of all xattrs (incl. ACLs, capabilities)
  // After the prefix pass: the full content hash of a small file, the
  // prefix hash of a large one; after the hash pass: the full content hash
  // (content_hash) of every survivor. One field: a size bucket holds only
  // small or only large files, and a record is most of a run's memory.
  Hash128 hash;
};

// Inodes with equal metadata key and equal full hash.
struct Group {
  std::vector<uint32_t> inodes; // indices into inodes, canonical first
};

struct RunState {
  const std::vector<UnifyGuest>& guests;
  const std::vector<UniqueFd>& roots;
  const UnifyOptions& options;
  const ScanResult& scan;
  std::vector<InodeRec>& inodes;
  uint64_t seed;
  FailureLog& log;
  AttrBackend& attrs; // how shared inodes are protected
  std::atomic<uint64_t> files_linked{0};
  std::atomic<uint64_t> bytes_saved{0};
  std::atomic<uint64_t> files_compared{0};
  std::atomic<uint64_t> inodes_protected{0};
  Reaper reaper{}; // closes the descriptors of replaced inodes (frees them)

  std::string display(uint32_t file) const; // "guest:/path" for messages
};

// The config pass of a run: per guest, the sorted private paths (listed
// and resolved inside the guest) and the inodes of config files (unify.cpp).
void resolve_config_files(const std::vector<UnifyGuest>& guests, const std::vector<UniqueFd>& roots,
                          std::vector<std::vector<std::string>>& config_paths,
                          std::set<std::pair<uint64_t, uint64_t>>& config_inodes);

// Names grouped by inode, with fully_seen, member_only, immutable and
// config set; counts already-shared and config names (unify.cpp). The
// records' name lists point into `names`, which must outlive them.
std::vector<InodeRec> build_inodes(const std::vector<UnifyGuest>& guests, const ScanResult& scan,
                                   const std::set<std::pair<uint64_t, uint64_t>>& config_inodes,
                                   Report& report, std::vector<uint32_t>& names);

// Copies a file's data (keeping holes) into `to`, counting bytes copied,
// and its owner, xattrs, mode and times (deunify.cpp).
Status copy_data(int from, int to, uint64_t size, uint64_t& copied);
Status copy_metadata(int from, int to);

// Sets or clears the protection of a shared inode open as `fd`, named by
// `path` in guest `guest` (link.cpp). Thread-safe.
Status protect_inode(RunState& rs, int fd, uint32_t guest, const std::string& path, bool on);

// Opens the first name of an inode beneath its guest root for reading and
// checks it is still that inode. Failures are logged.
Result<UniqueFd> open_inode(RunState& rs, const InodeRec& inode);

// open_inode for a pass over many inodes: the first name is opened relative
// to its parent directory, whose descriptor is kept while the following
// inodes lie in the same directory. Walk the inodes in path order (sort by
// names.front(): ScanResult::files is sorted by guest and path) and each
// directory is resolved once instead of once per file. One per thread.
class InodeOpener {
public:
  explicit InodeOpener(RunState& rs) : m_rs(rs) {}
  Result<UniqueFd> open(const InodeRec& inode);

private:
  RunState& m_rs;
  uint32_t m_guest = UINT32_MAX; // the cached directory: guest and path
  std::string m_dir;
  UniqueFd m_dirfd;
};

// Sorts inode indices by their first name, the order InodeOpener wants.
// file_count: the size of ScanResult::files.
void sort_by_path(const std::vector<InodeRec>& inodes, size_t file_count, std::vector<uint32_t>& idx);

// Verifies and links one group (link.cpp). Thread-safe across groups.
void link_group(RunState& rs, const Group& group);

// Removes temporaries left by an interrupted run (link.cpp).
uint64_t remove_temporaries(RunState& rs);

// A fresh random temporary name with k_temp_prefix (link.cpp).
std::string temp_name();
// Links the open inode `fd` to a fresh temporary name in `dirfd` and
// returns the name (link.cpp). EMLINK, EPERM etc. as from linkat.
Result<std::string> link_to_temp(int fd, int dirfd);
// True unless a process holds `fd`'s file open for writing (a read lease
// is refused exactly then); true where leases are unsupported (link.cpp).
bool no_writers(int fd);

} // namespace vu
