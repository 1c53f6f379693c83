// The shared context of one run (vunify, vunify -R, vhashify, vdu --deep):
// built once by RunContext::open, then handed to each pass in turn. It owns
// what every pass needs - the guests' root descriptors, the failure log,
// the report, the secret seed, the attribute back end, the key for
// temporary names, the guest locks - and the data the passes hand on: the
// walk's file records, the inode records, the groups.
#pragma once

#include "kernel/attr.h"
#include "unify/guests.h"
#include "unify/hash.h"
#include "unify/options.h"
#include "unify/reaper.h"
#include "unify/scan.h"
#include "unify/state.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <deque>
#include <memory>
#include <span>
#include <vector>

namespace vu {

// One inode with every scanned name that refers to it.
struct InodeRec {
  // From the walk: the record of the first name's (ScanResult::files,
  // whose records never move), kept there once instead of copied here - a
  // run holds a record of each and they are most of its memory.
  FileStat* st = nullptr;
  // The inode's names: indices into ScanResult::files, kept in
  // RunContext::inode_names from names_begin on (RunContext::names_of).
  // Offsets rather than a std::span, the count and the flags in one word:
  // 48 bytes instead of 64 (ARCHITECTURE.md, "Memory").
  uint32_t names_begin = 0;
  uint32_t names_count : 27 = 0; // at most k_max_inode_names
  bool fully_seen : 1 = false;   // every link of the inode was scanned
  bool member_only : 1 = true;   // every name lies in a member (not reference) guest
  // Protected already (a shared inode): the back end's looks_protected -
  // FS_IMMUTABLE_FL on mainline, the mark under bpf.
  bool frozen : 1 = false;
  bool failed : 1 = false; // could not be opened/hashed; left alone
  bool config : 1 = false; // a package-manager configuration file
  Hash128 xattrs;          // fingerprint of all xattrs (incl. ACLs, capabilities)
  // After the prefix pass: the full content hash of a small file, the
  // prefix hash of a large one; after the hash pass: the full content hash
  // (content_hash) of every survivor. One field: a size bucket holds only
  // small or only large files, and a record is most of a run's memory.
  Hash128 hash;
};
inline constexpr uint32_t k_max_inode_names = (uint32_t(1) << 27) - 1;
static_assert(sizeof(InodeRec) == 48, "InodeRec's layout is part of a run's memory budget");

// Inodes that may be linked together (indices into RunContext::inodes);
// after the plan pass, the surviving inode first.
struct Group {
  std::vector<uint32_t> inodes;
};

// How many descriptors a pass may hold at once (a systemd service starts
// with a soft limit of 1024; the run raises it to the hard limit and then
// shares out what it got). Groups of any size are worked in batches.
struct FdBudget {
  size_t names_per_batch = 64; // per link worker: targets and directories held at once
  size_t reaper_queue = 512;   // replaced inodes waiting to be freed
  static FdBudget for_limit(uint64_t limit, uint32_t link_workers);
};

class RunContext {
public:
  // Opens the guests' roots, the state (temporary-name key; guest locks
  // unless a dry run) and the attribute back end. Errors are set-up errors
  // (a root or the state directory cannot be opened, a guest is locked and
  // the options say not to wait).
  static Result<std::unique_ptr<RunContext>> open(std::vector<UnifyGuest> guests,
                                                  const RunOptions& options);

  const RunOptions& options;
  std::vector<UnifyGuest> guests;
  std::vector<UniqueFd> roots;                         // one open directory per guest
  std::vector<std::pair<uint64_t, uint64_t>> root_ids; // (dev, ino) of each root
  FailureLog log;
  Report report;
  uint64_t seed = 0; // secret, per run: hashes a guest cannot aim collisions at
  AttrBackend* attrs = nullptr;
  TempNames temps;
  PreLinks prelinks; // hard links guests had before the suite joined them
  FdBudget budget;

  // Handed from pass to pass.
  ScanResult scan;
  std::vector<InodeRec> inodes;
  // Storage of the inodes' names (InodeRec::names_begin): the walk's in
  // (device, inode) order, then those of inodes the run makes or extends
  // (hash-store entries), appended.
  std::vector<uint32_t> inode_names;
  std::vector<Group> groups;

  // Counters the parallel passes add to; finish() moves them into report.
  std::atomic<uint64_t> bytes_hashed{0};
  std::atomic<uint64_t> files_linked{0};
  std::atomic<uint64_t> bytes_saved{0};
  std::atomic<uint64_t> files_compared{0};
  std::atomic<uint64_t> bytes_compared{0}; // content read to compare before linking
  std::atomic<uint64_t> inodes_protected{0};
  Reaper reaper; // closes the descriptors of replaced inodes (frees them)
  // The devices whose mounts trim on freeing (trims_when_freeing): a
  // replaced inode there is freed by the reaper, elsewhere by the linking
  // thread's own close. Set by the link pass.
  std::vector<uint64_t> trimming_devices;
  bool frees_slowly(uint64_t dev) const {
    return std::find(trimming_devices.begin(), trimming_devices.end(), dev) !=
           trimming_devices.end();
  }

  // "guest:/path" for messages.
  std::string display(uint32_t file) const;
  // Sets or clears the protection of a shared inode open as `fd`, named
  // `path` in guest `guest`. Thread-safe.
  Status protect(int fd, uint32_t guest, const std::string& path, Protection p);
  // The same for an inode known by its descriptor only (its name is gone
  // or elsewhere); ENOTSUP from back ends that address files by path.
  Status protect_fd(int fd, Protection p);
  // Whether names can be added to or taken from the protected inode `st`
  // only after thawing it: always on mainline (FS_IMMUTABLE_FL refuses
  // link and rename); under bpf only for an inode a mainline run froze.
  bool needs_thaw(const FileStat& st) const {
    return !attrs->names_while_protected() || st.immutable;
  }
  // Whether the open inode is protected (the back end's own check).
  Result<bool> is_protected(int fd) const { return attrs->is_protected(fd); }
  // The names of an inode (indices into scan.files). Valid until set_names
  // appends more.
  std::span<const uint32_t> names_of(const InodeRec& r) const {
    return {inode_names.data() + r.names_begin, r.names_count};
  }
  // Appends `names` to inode_names as the names of `r` (names may be a
  // view of inode_names itself).
  void set_names(InodeRec& r, std::span<const uint32_t> names);
  // Records, for every guest, the names of `inode` in it when there are
  // two or more (they were one inode before the suite linked them).
  void record_prelinks(const InodeRec& inode);
  // The stage the progress line shows.
  void stage(ProgressStage s);
  // Moves the log and counters into the report and stamps the run time.
  Report finish();

  RunContext(const RunOptions& o, std::vector<UnifyGuest> g);
  RunContext(const RunContext&) = delete;
  RunContext& operator=(const RunContext&) = delete;

private:
  std::unique_ptr<AttrBackend> m_own_attrs;
  GuestLocks m_locks;
  std::chrono::steady_clock::time_point m_start;
};

// Times one pass into Report::stage_seconds (printed by --stats).
class PassTimer {
public:
  PassTimer(RunContext& rc, const char* name);
  ~PassTimer();
  PassTimer(const PassTimer&) = delete;
  PassTimer& operator=(const PassTimer&) = delete;

private:
  RunContext& m_rc;
  const char* m_name;
  std::chrono::steady_clock::time_point m_start;
};

// A fresh secret seed (getrandom).
uint64_t random_seed();

} // namespace vu
