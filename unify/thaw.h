// Changing the names of a shared inode without letting a writer in.
//
// Mainline Linux refuses link(), rename() and unlink() of an inode with
// FS_IMMUTABLE_FL, so adding or removing names of a shared inode means
// clearing the flag for a moment ("thawing" it). A process that opened it
// for writing in that moment would keep a writable descriptor after the
// flag is back, and change the file for every guest sharing it. So every
// thaw happens under a read lease (LeasedInode): while the lease is held,
// an open for writing waits in the kernel; when the inode is frozen again,
// the waiting writers are known - by pid, from /proc/locks - and because
// they are still waiting, the content is still the one everybody shares.
// relocate_for_writers then gives the inode to the writers' guests and
// moves every other name to a fresh copy of the unchanged content, so only
// a writer's own guest ever sees its writes.
//
// What remains (ARCHITECTURE.md, known limits): a writer preempted inside
// open(2) after its permission check and before it registers as a writer
// slips past the lease, as a process that opens a name in the instant it
// is replaced gets the old inode. A BPF LSM policy closes this
// (ARCHITECTURE.md, known limits).
#pragma once

#include "unify/run.h"

#include <functional>
#include <set>
#include <string>
#include <utility>
#include <vector>

namespace vu {

// A read lease on an inode, released on destruction.
class LeasedInode {
public:
  // Takes the lease on `fd` (a read-only descriptor). EAGAIN or EBUSY: the
  // file is open for writing right now. Where the file system has no
  // leases (EINVAL) the result is unguarded: guarded() is false and writers
  // are not kept out (callers then check the content afterwards).
  static Result<LeasedInode> take(int fd);
  LeasedInode(LeasedInode&& o) noexcept;
  LeasedInode& operator=(LeasedInode&& o) noexcept;
  LeasedInode(const LeasedInode&) = delete;
  LeasedInode& operator=(const LeasedInode&) = delete;
  ~LeasedInode();

  bool guarded() const { return m_fd >= 0; }
  // True when some process tried to open the file for writing since the
  // lease was taken (it waits in open(2) until release()), or has it open
  // for writing now. False when unguarded.
  bool writer_seen() const;
  // The processes waiting to open it for writing, from /proc/locks.
  std::vector<pid_t> waiting_writers(uint64_t dev, uint64_t ino) const;
  void release();

private:
  LeasedInode() = default;
  int m_fd = -1; // borrowed descriptor the lease is on; -1: none
};

// A name of a shared inode, wherever it lives.
struct NameAt {
  int root = -1;                         // the root directory of the guest holding it (borrowed)
  std::string path;                      // relative to that root
  std::string display;                   // "guest:/path"
  std::pair<uint64_t, uint64_t> root_id; // (dev, ino) of that root
};

// Which guests the writers waiting for `lease` belong to, as root
// identities (a process's root directory, /proc/PID/root). `host` is set
// when a writer's root is no guest's root: a host process.
struct WriterGuests {
  std::set<std::pair<uint64_t, uint64_t>> roots;
  std::vector<pid_t> pids;
  bool host = false;
};
WriterGuests writer_guests(const RunContext& rc, const LeasedInode& lease, const FileStat& st);

// For a shared inode `fd` (identity `st`, frozen, its lease still held)
// that writers from `writers.roots` wait to open: makes a fresh copy of it
// (verified byte for byte, same metadata), moves every name of `names`
// outside those guests to the copy - and every name the run did not know,
// searched in the other guests of RunOptions::other_guests - protects the
// copy, and leaves the inode to the writers' guests (unprotected when one
// guest alone keeps it). The inode is thawed meanwhile, under the lease.
// Failures are logged; returns the number of names moved.
uint64_t relocate_for_writers(RunContext& rc, int fd, const FileStat& st, std::vector<NameAt> names,
                              const WriterGuests& writers);

// The NameAt of a scanned file (ScanResult::files index).
NameAt name_at(const RunContext& rc, uint32_t file);

// A lease keeps writers out of a thawed shared inode, not chmod, chown,
// utimes or setxattr by the root of a guest with a name of it; every name
// would show such a change. What differs now between the open inode `fd`
// and the metadata its names were given (`st`, and `xattrs` as
// xattr_blob): "mode", "owner", "size or mtime" or "xattrs"; empty when
// nothing. Meaningful while the inode is frozen.
std::string metadata_change(int fd, const FileStat& st, const std::string& xattrs);

// Gives the inode `fd` that metadata back: `protect(Protection::off)`
// (thaw), owner, xattrs, mode and mtime set - in that order: chown clears
// setuid bits and file capabilities - `protect(Protection::on)`, checked.
// A guest changing it again meanwhile wins a try; three tries. True when
// one held.
bool restore_metadata(int fd, const FileStat& st, const std::string& xattrs,
                      const std::function<bool(Protection)>& protect);

// For an inode frozen again after a thaw, protected by descriptor: when
// metadata_change finds one, restore_metadata (through rc.protect_fd) and
// a verify failure for `where` - "a guest changed the <what> of
// <subject>; ..." with the outcome.
void take_back_metadata(RunContext& rc, int fd, const FileStat& st, const std::string& xattrs,
                        const std::string& where, const std::string& subject);

} // namespace vu
