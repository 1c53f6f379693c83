// Thin, errno-preserving wrappers around the file-system system calls the
// suite needs. Nothing here knows about guests; every function is
// thread-safe (they only touch the descriptors they are given) and reports
// failures as Result errors carrying errno and the operation's name.
#pragma once

#include "kernel/fd.h"
#include "kernel/result.h"

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace vu {

// The subset of statx(2) the suite relies on. Times are nanoseconds since
// the epoch; dev is makedev(major, minor) of the containing file system.
struct FileStat {
  uint64_t dev = 0;
  uint64_t ino = 0;
  uint64_t size = 0;
  uint64_t blocks = 0; // 512-byte units allocated
  int64_t mtime_ns = 0;
  int64_t ctime_ns = 0;
  uint32_t uid = 0;
  uint32_t gid = 0;
  uint32_t nlink = 0;
  // 64 bytes in all: a run keeps one of these for every file it walks.
  uint16_t mode = 0;      // type and permission bits (statx's width)
  bool immutable = false; // STATX_ATTR_IMMUTABLE (FS_IMMUTABLE_FL)
  bool nodump = false;    // STATX_ATTR_NODUMP (FS_NODUMP_FL; part of the bpf back end's mark)

  bool is_regular() const;
  bool is_directory() const;
  bool is_symlink() const;
  // Same inode, unchanged: dev, ino, size, mtime and ctime equal.
  bool same_version(const FileStat& other) const;
  // What its names show: mode, owner, size and mtime equal (a flag change
  // gives a new ctime, and leaves these).
  bool same_metadata(const FileStat& other) const;
};

// The bytes a file's blocks take on disk (what du counts and what freeing
// the inode gives back), as opposed to its size.
inline uint64_t allocated_bytes(const FileStat& st) {
  return st.blocks * 512;
}

// statx(dirfd, name, AT_SYMLINK_NOFOLLOW). An empty name stats dirfd itself.
Result<FileStat> stat_at(int dirfd, const std::string& name);
Result<FileStat> stat_fd(int fd);

// Opens `path` relative to `dirfd` with openat2(2) and RESOLVE_BENEATH |
// RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS: no component may be a
// symlink, ".." may not leave dirfd. O_CLOEXEC and O_NOFOLLOW are added.
// Fails with ELOOP on a symlink, EXDEV on an escape, ENOSYS before 5.6.
// Paths longer than the kernel's PATH_MAX are walked in pieces (each
// piece beneath the directory the previous one opened), so tree depth
// never makes a file unreachable; at most two descriptors are open at once.
Result<UniqueFd> open_beneath(int dirfd, const std::string& path, int flags);
Result<UniqueFd> open_beneath(int dirfd, const char* path, int flags);

// Opens a regular file beneath dirfd for reading without updating its atime
// (O_NOATIME, retried without it where the kernel refuses) and never
// blocking on a FIFO that raced into its place (O_NONBLOCK).
Result<UniqueFd> open_file_for_read(int dirfd, const std::string& path);
Result<UniqueFd> open_file_for_read(int dirfd, const char* path);

// Opens a directory given by a trusted host path (command line, config).
Result<UniqueFd> open_directory(const std::string& path);

// Reads a whole file named by a trusted host path (configuration, exclude
// lists, caches). Symlinks are followed (util-vserver's configuration is
// made of them), but the file is opened with O_NONBLOCK so a FIFO never
// blocks, and it must turn out to be a regular file (EINVAL otherwise: a
// FIFO, /dev/zero, a directory) of at most max_bytes (EFBIG). Errors name
// the path.
Result<std::string> read_host_file(const std::string& path, uint64_t max_bytes);
// The same for an open descriptor (`what` names it in errors).
Result<std::string> read_to_end(int fd, uint64_t max_bytes, const std::string& what);

// One line of /proc/self/mountinfo ("id parent major:minor root
// mount-point options [optional...] - type source super-options").
struct MountEntry {
  std::string device;      // "major:minor"
  std::string mount_point; // as mountinfo writes it (a space is \040)
  std::string options;     // the mount's own, comma-separated
  std::string type;
  std::string source;
  std::string super_options; // the file system's, comma-separated
};
// Every well-formed line; empty when the file cannot be read.
std::vector<MountEntry> mountinfo();
// Whether the comma-separated `options` has `option` as one of them.
bool has_mount_option(std::string_view options, std::string_view option);
// Whether a mount of the file system on device `dev` (makedev(major,
// minor), as FileStat::dev) frees blocks only after the device trimmed
// them: mounted with "discard" (ext4, XFS) or "discard=sync" (btrfs;
// "discard=async" trims later). False when no mount of it is listed.
bool trims_when_freeing(uint64_t dev);

// Writes all of `data` to fd, retrying short writes and EINTR.
Status write_all(int fd, std::string_view data);

// Replaces the file `path` (a trusted host path) atomically with `data`:
// a new file is made in its directory (O_TMPFILE, else a random name with
// O_EXCL|O_NOFOLLOW), written, fsync'ed and renamed over `path`. Whatever
// is at `path` - a symlink planted there included - is replaced, never
// written through. `mode`: permission bits of the new file.
Status write_file_atomic(const std::string& path, std::string_view data, unsigned mode);
// The same for a file `name` in the open directory `dirfd`.
Status write_file_atomic_at(int dirfd, const std::string& name, std::string_view data,
                            unsigned mode);

// The same, written in pieces (memory holds a piece, never the file):
// create() makes the new file, append() writes to it, commit() fsyncs it
// and renames it over `name`. Dropped without commit(), nothing replaces
// `name` and no temporary name stays.
class AtomicFile {
public:
  static Result<AtomicFile> create(int dirfd, const std::string& name, unsigned mode);
  AtomicFile(AtomicFile&& o) noexcept;
  AtomicFile& operator=(AtomicFile&&) = delete;
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;
  ~AtomicFile();
  Status append(std::string_view data);
  Status commit();

private:
  AtomicFile() = default;
  int m_dir = -1; // borrowed
  std::string m_name, m_tmp;
  unsigned m_mode = 0;
  UniqueFd m_fd;
  bool m_linked = false; // m_tmp names the new file
};

// Raises the soft limit of open descriptors to the hard limit (systemd
// starts services with a soft limit of 1024) and returns the new soft
// limit. Never fails: on error the current limit is returned.
uint64_t raise_fd_limit();
// The current soft limit of open descriptors.
uint64_t fd_limit();

// linkat(fd, "", dirfd, name, AT_EMPTY_PATH): gives the open inode a new
// name. Needs CAP_DAC_READ_SEARCH. Fails with EEXIST, EMLINK, EPERM (immutable).
Status link_fd(int fd, int dirfd, const std::string& name);

// renameat2(olddir, oldname, newdir, newname, flags); flags may be
// RENAME_EXCHANGE or RENAME_NOREPLACE.
Status rename_at(int olddir, const std::string& oldname, int newdir, const std::string& newname,
                 unsigned flags = 0);

// unlinkat(dirfd, name, 0).
Status unlink_at(int dirfd, const std::string& name);

// FS_IOC_GETFLAGS / FS_IOC_SETFLAGS (chattr flags, e.g. FS_IMMUTABLE_FL).
// ENOTTY/EOPNOTSUPP where the file system has no such flags.
Result<uint32_t> get_inode_flags(int fd);
Status set_inode_flags(int fd, uint32_t flags);
// Whether an inode is to be protected (frozen) or not.
enum class Protection : bool { off = false, on = true };
// Sets (on) or clears (off) FS_IMMUTABLE_FL, leaving the other flags alone.
Status set_immutable(int fd, Protection p);
Result<bool> is_immutable(int fd);

// Extended attributes of an open file, names sorted; values read in full.
Result<std::vector<std::string>> list_xattrs(int fd);
Result<std::string> get_xattr(int fd, const std::string& name);
Status set_xattr(int fd, const std::string& name, std::string_view value);

// pread(2) until `len` bytes or end of file; returns the bytes read.
Result<size_t> read_at(int fd, void* buf, size_t len, uint64_t offset);

// Resolves `path` as if `rootfd` were "/" (openat2 RESOLVE_IN_ROOT |
// RESOLVE_NO_MAGICLINKS): symlinks inside are followed but cannot leave the
// root - an absolute target or ".." starts again at rootfd. Without
// `flags` the last component is not followed and an O_PATH descriptor is
// returned; with flags (e.g. O_RDONLY | O_DIRECTORY) the last component is
// followed too, within the root.
Result<UniqueFd> open_in_root(int rootfd, const std::string& path);
Result<UniqueFd> open_in_root(int rootfd, const std::string& path, int flags);

// The path the kernel reports for an open descriptor (/proc/self/fd).
Result<std::string> fd_path(int fd);

// Reads a whole regular file beneath dirfd (open_file_for_read rules). Fails
// with EINVAL when it is not a regular file and EFBIG when it is larger than
// max_bytes. Its stat is returned through `st` when given.
Result<std::string> read_file_beneath(int dirfd, const std::string& path, uint64_t max_bytes,
                                      FileStat* st = nullptr);

// File leases (fcntl F_SETLEASE), used to keep writers out while a shared
// inode is thawed. A read lease can be taken only while nobody has the
// file open for writing; while it is held, an open for writing (or a
// truncate) by another process blocks until the lease is released, and
// the holder sees the lease "breaking". The kernel sends the holder SIGIO
// then, which would end the process: take_read_lease() first sets SIGIO to
// SIG_IGN for the process (once; ignore_lease_signal()).
void ignore_lease_signal();
// Takes a read lease on fd (opened read-only). EAGAIN/EBUSY: the file is
// open for writing somewhere (or a writer is waiting); EINVAL: the file
// system or the system settings (fs.leases-enable) offer no leases.
Status take_read_lease(int fd);
// True while the read lease on fd is held and nobody has tried to open the
// file for writing (or truncate it) since it was taken. False once a
// writer waits for it - or got past it: the kernel removes a lease that is
// not released within fs.lease-break-time seconds.
bool lease_unbroken(int fd);
void release_lease(int fd);

// True when the file system under fd gives a file a new ctime for every
// change of its content that starts after a writer opened it: write(2),
// truncate, and the first write through each new writable mapping (their
// page_mkwrite updates the times). ext4, XFS and btrfs; not tmpfs, whose
// mapped writes leave the times alone. Checked by tests/unit on the file
// systems they run on; hashify.cpp relies on it to skip a second read.
bool writes_always_change_ctime(int fd);

// Reads the directory entries of an open directory (getdents64), without
// "." and "..". d_type is DT_UNKNOWN where the file system does not fill it.
struct DirEntry {
  std::string name;
  uint64_t ino = 0;
  unsigned char type = 0; // DT_REG, DT_DIR, DT_LNK, ... or DT_UNKNOWN
};
Result<std::vector<DirEntry>> read_directory(int dirfd);

// True when `name` is a single path component: not empty, no '/', not "." or "..".
bool is_plain_name(std::string_view name);

} // namespace vu
