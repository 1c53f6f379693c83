// The suite's own state on the host: a directory only root can reach
// (default /var/lib/vunify, $VUNIFY_STATE_DIR for another), holding
//
//   tempname.key   a secret key (16 random bytes, made once), with which
//                  every temporary name a run creates inside a guest is
//                  signed: a later run removes a ".vunify-tmp.*" name only
//                  when its signature checks, so a name a guest made up is
//                  never taken for a leftover (TempNames);
//   locks/         one lock file per guest root (by device and inode), so
//                  two runs that change the same guest never interleave
//                  (GuestLocks);
//   prelinks/      per guest root, the names that were one inode before
//                  the suite linked them to a shared one (PreLinks), so
//                  that de-unification gives them back one private inode
//                  while names the suite joined become independent again.
//
// Nothing here reads inside a guest.
#pragma once

#include "core/guest.h"
#include "kernel/fd.h"
#include "kernel/result.h"

#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

namespace vu {

// Temporary names: ".vunify-tmp.<16 hex random>.<16 hex signature>", the
// signature a keyed hash (SipHash-2-4) of the directory's (device, inode)
// and the random part. Thread-safe (immutable after construction).
class TempNames {
public:
  using Key = std::array<unsigned char, 16>;
  // No key: makes nothing, recognises nothing (dry runs without a state
  // directory).
  TempNames() = default;
  explicit TempNames(const Key& key);

  bool valid() const { return m_valid; }
  // A fresh name for the directory identified by (dev, ino).
  std::string make(uint64_t dir_dev, uint64_t dir_ino) const;
  // True when `name` was made by make() with this key for that directory.
  bool is_ours(std::string_view name, uint64_t dir_dev, uint64_t dir_ino) const;
  // True when `name` has the prefix at all (the walk checks only those).
  static bool has_prefix(std::string_view name);

private:
  uint64_t sign(uint64_t dir_dev, uint64_t dir_ino, uint64_t random) const;
  Key m_key{};
  bool m_valid = false;
};

// Whether the state directory and its key may be made when missing (a
// dry run makes nothing).
enum class Create : bool { no = false, yes = true };

// The state directory. Errors name the directory and what to do.
class StateDir {
public:
  // $VUNIFY_STATE_DIR, else /var/lib/vunify.
  static std::string default_path();
  // Opens the directory at `path` (created 0700 when missing and `create`
  // is yes). It must be a real directory (not a symlink), owned by this
  // process's user, writable by nobody else. ENOENT when missing and no.
  static Result<StateDir> open(const std::string& path, Create create);

  const std::string& path() const { return m_path; }
  int fd() const { return m_fd.get(); }
  // The temporary-name key, made on first use (never replaced: names made
  // with an earlier key would stop being recognised).
  Result<TempNames> temp_names(Create create) const;

private:
  std::string m_path;
  UniqueFd m_fd;
};

// The temporary names a run may use: from the state directory; an empty
// TempNames when `create` is no and there is none yet.
Result<TempNames> load_temp_names(Create create);

// The hard links a guest had among its own files before the suite made
// them names of a shared inode. Recorded when a run links (or first
// shares) an inode with two or more names in one guest; read by
// de-unification. One file per guest root: records of (u32 length, path,
// u64 group), appended; bounded when read. Thread-safe.
class PreLinks {
public:
  PreLinks() = default; // records nothing (dry runs, no state directory)
  explicit PreLinks(const StateDir& state);
  // Notes that `paths` (relative to the root identified by root_id) were
  // one inode. A failure to record only costs the link later.
  void record(std::pair<uint64_t, uint64_t> root_id, const std::vector<std::string>& paths);
  // path -> group for that guest (empty when nothing was recorded).
  std::map<std::string, uint64_t> load(std::pair<uint64_t, uint64_t> root_id) const;
  // Drops the records of `paths` (after de-unifying them).
  void forget(std::pair<uint64_t, uint64_t> root_id, const std::set<std::string>& paths);

private:
  std::string file_name(std::pair<uint64_t, uint64_t> root_id) const;
  int m_dir = -1; // <state>/prelinks, borrowed from the state's lifetime
  std::shared_ptr<UniqueFd> m_dirfd;
  std::shared_ptr<std::mutex> m_mutex;
};

// Exclusive locks on guest roots, held until destruction. Taken in one
// global order (device, inode), so runs over overlapping guests never
// deadlock. Each lock file says who holds it ("vunify pid 123 since ...").
class GuestLocks {
public:
  GuestLocks() = default;
  GuestLocks(GuestLocks&&) = default;
  GuestLocks& operator=(GuestLocks&&) = default;

  // Locks every guest's root. When one is held by another run: with
  // `wait`, calls on_wait(guest name, holder) once and waits; without,
  // fails with EWOULDBLOCK naming the guest and the holder.
  static Result<GuestLocks>
  acquire(const StateDir& state, const std::vector<Guest>& guests, const std::string& holder,
          bool wait, const std::function<void(const std::string&, const std::string&)>& on_wait);

private:
  std::vector<UniqueFd> m_locks;
};

} // namespace vu
