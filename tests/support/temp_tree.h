// TempTree: a scratch directory for one test, built from a short spec,
// removed afterwards (immutable flags cleared first) unless the test
// failed, in which case its path is printed and it is kept.
//
// Spec lines (blank lines and '#' comments ignored):
//   d PATH                         directory
//   f PATH CONTENT [opts]          regular file; CONTENT is a word, or
//                                  @N:SEED for N pseudo-random bytes
//       opts: mode=0755 uid=N gid=N x:NAME=VALUE (an xattr)
//   l PATH TARGET                  symlink
//   h PATH EXISTING                hard link to EXISTING
//   p PATH                         FIFO
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <sys/types.h>

namespace vu::test {

class TempTree {
public:
  TempTree();
  ~TempTree();
  TempTree(const TempTree&) = delete;
  TempTree& operator=(const TempTree&) = delete;

  const std::string& root() const { return m_root; }
  std::string path(const std::string& rel) const { return m_root + "/" + rel; }

  void build(const std::string& spec);
  // A regular file with `content`; its atime and mtime are k_file_time.
  void file(const std::string& rel, const std::string& content, mode_t mode = 0644);
  static constexpr time_t k_file_time = 1577836800; // 2020-01-01
  void mkdirs(const std::string& rel);
  std::string read(const std::string& rel) const;
  void write(const std::string& rel, const std::string& content) const;

private:
  std::string m_root;
};

// Deterministic pseudo-random bytes.
std::string random_bytes(size_t n, uint64_t seed);

// path (relative to root) -> "type:details" for every entry below root:
// regular files by content hash, mode, owner and xattrs; symlinks by target;
// others by type. Used to prove that a run changed nothing but inodes.
std::map<std::string, std::string> snapshot(const std::string& root);
// Same, contents only (ignores the inode sharing that unification adds and
// the ctime it changes).
std::map<std::string, std::string> content_snapshot(const std::string& root);

// Removes a tree, clearing immutable flags where needed.
void remove_tree(const std::string& path);

// (dev, ino) of a path, without following symlinks.
std::pair<uint64_t, uint64_t> inode_of(const std::string& path);
// The bytes `path`'s blocks take (st_blocks * 512): what du counts and what
// the tools report as saved.
uint64_t allocated_of(const std::string& path);
// The bytes in use on the file system mounted at (or holding) `dir`, after
// syncing it (statvfs: blocks minus free blocks).
uint64_t used_bytes(const std::string& dir);
bool is_immutable_path(const std::string& path);
// FS_IOC_GETFLAGS of a path (~0 when it cannot be read).
uint32_t inode_flags_of(const std::string& path);

// Runs a shell command; returns its exit status.
int sh(const std::string& command);

// A mount that lasts for one scope and is undone (lazily, MNT_DETACH) when
// the scope ends, also when the test fails half way. ok() is false when
// this machine cannot mount it; the test should then skip.
class ScopedMount {
public:
  // A file system without a device (tmpfs, ramfs) at target.
  ScopedMount(const std::string& type, const std::string& target, const std::string& options = "");
  // A file-system image through a loop device (freed when unmounted),
  // with mount `options` beside "loop".
  static ScopedMount loop_image(const std::string& image, const std::string& target,
                                const std::string& options = "");
  ScopedMount(ScopedMount&& other) noexcept;
  ScopedMount(const ScopedMount&) = delete;
  ScopedMount& operator=(const ScopedMount&) = delete;
  ~ScopedMount();
  bool ok() const { return m_mounted; }
  void unmount();

private:
  ScopedMount() = default;
  std::string m_target;
  bool m_mounted = false;
};

} // namespace vu::test
