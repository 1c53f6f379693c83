// Wrappers for statx, openat2, linkat, renameat2, getdents64, inode-flag
// ioctls and xattrs. Each call retries on EINTR where that is meaningful and
// otherwise returns errno unchanged so callers can classify failures.
#include "kernel/fs.h"

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <ctime>
#include <dirent.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <linux/magic.h>
#include <linux/openat2.h>
#include <sys/ioctl.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

namespace vu {

namespace {

int64_t to_ns(const struct statx_timestamp& ts) {
  return static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

FileStat from_statx(const struct statx& sx) {
  FileStat st;
  st.dev = makedev(sx.stx_dev_major, sx.stx_dev_minor);
  st.ino = sx.stx_ino;
  st.size = sx.stx_size;
  st.blocks = sx.stx_blocks;
  st.mode = sx.stx_mode;
  st.uid = sx.stx_uid;
  st.gid = sx.stx_gid;
  st.nlink = sx.stx_nlink;
  st.mtime_ns = to_ns(sx.stx_mtime);
  st.ctime_ns = to_ns(sx.stx_ctime);
  st.immutable =
      (sx.stx_attributes_mask & STATX_ATTR_IMMUTABLE) && (sx.stx_attributes & STATX_ATTR_IMMUTABLE);
  st.nodump =
      (sx.stx_attributes_mask & STATX_ATTR_NODUMP) && (sx.stx_attributes & STATX_ATTR_NODUMP);
  return st;
}

constexpr unsigned k_statx_mask = STATX_TYPE | STATX_MODE | STATX_NLINK | STATX_UID | STATX_GID |
                                  STATX_MTIME | STATX_CTIME | STATX_INO | STATX_SIZE | STATX_BLOCKS;

} // namespace

bool FileStat::is_regular() const {
  return S_ISREG(mode);
}
bool FileStat::is_directory() const {
  return S_ISDIR(mode);
}
bool FileStat::is_symlink() const {
  return S_ISLNK(mode);
}

bool FileStat::same_version(const FileStat& o) const {
  return dev == o.dev && ino == o.ino && size == o.size && mtime_ns == o.mtime_ns &&
         ctime_ns == o.ctime_ns;
}

bool FileStat::same_metadata(const FileStat& o) const {
  return mode == o.mode && uid == o.uid && gid == o.gid && size == o.size && mtime_ns == o.mtime_ns;
}

Result<FileStat> stat_at(int dirfd, const std::string& name) {
  struct statx sx {};
  int flags = AT_SYMLINK_NOFOLLOW | AT_STATX_SYNC_AS_STAT;
  if (name.empty()) flags |= AT_EMPTY_PATH;
  if (::statx(dirfd, name.c_str(), flags, k_statx_mask, &sx) != 0)
    return errno_error("statx " + name);
  return from_statx(sx);
}

Result<FileStat> stat_fd(int fd) {
  return stat_at(fd, "");
}

namespace {

long openat2_beneath(int dirfd, const char* path, int flags) {
  struct open_how how {};
  how.flags = static_cast<uint64_t>(flags | O_CLOEXEC | O_NOFOLLOW);
  how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
  for (;;) {
    long fd = ::syscall(SYS_openat2, dirfd, path, &how, sizeof(how));
    if (fd >= 0 || (errno != EINTR && errno != EAGAIN)) return fd; // EAGAIN: rename race
  }
}

// The longest path handed to openat2 in one piece (the kernel's limit is
// PATH_MAX, 4096 bytes with the NUL).
constexpr size_t k_path_piece = 3072;

} // namespace

Result<UniqueFd> open_beneath(int dirfd, const char* path, int flags) {
  std::string_view rest = *path ? path : ".";
  UniqueFd hop; // the directory the previous piece opened
  int base = dirfd;
  while (rest.size() > k_path_piece) {
    // Cut at the last '/' within the piece; a component longer than the
    // piece is not a valid name anyway.
    size_t cut = rest.substr(0, k_path_piece).rfind('/');
    if (cut == std::string_view::npos || cut == 0)
      return make_error(ENAMETOOLONG, std::string("openat2 ") + path);
    std::string piece(rest.substr(0, cut));
    long fd = openat2_beneath(base, piece.c_str(), O_PATH | O_DIRECTORY);
    if (fd < 0) return errno_error(std::string("openat2 ") + path);
    hop.reset(static_cast<int>(fd));
    base = hop.get();
    rest.remove_prefix(cut + 1);
    while (!rest.empty() && rest.front() == '/') rest.remove_prefix(1);
    if (rest.empty()) rest = ".";
  }
  std::string last(rest);
  long fd = openat2_beneath(base, last.c_str(), flags);
  if (fd < 0) return errno_error(std::string("openat2 ") + path);
  return UniqueFd(static_cast<int>(fd));
}

Result<UniqueFd> open_beneath(int dirfd, const std::string& path, int flags) {
  return open_beneath(dirfd, path.c_str(), flags);
}

Result<UniqueFd> open_in_root(int rootfd, const std::string& path) {
  return open_in_root(rootfd, path, O_PATH | O_NOFOLLOW);
}

Result<UniqueFd> open_in_root(int rootfd, const std::string& path, int flags) {
  struct open_how how {};
  how.flags = static_cast<uint64_t>(flags | O_CLOEXEC);
  how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;
  for (;;) {
    long fd = ::syscall(SYS_openat2, rootfd, path.c_str(), &how, sizeof(how));
    if (fd >= 0) return UniqueFd(static_cast<int>(fd));
    if (errno == EINTR || errno == EAGAIN) continue;
    return errno_error("openat2 (in root) " + path);
  }
}

Result<std::string> fd_path(int fd) {
  char buf[8192];
  std::string link = "/proc/self/fd/" + std::to_string(fd);
  ssize_t n = ::readlink(link.c_str(), buf, sizeof buf);
  if (n < 0) return errno_error("readlink " + link);
  if (static_cast<size_t>(n) >= sizeof buf) return make_error(ENAMETOOLONG, "readlink " + link);
  return std::string(buf, static_cast<size_t>(n));
}

Result<UniqueFd> open_file_for_read(int dirfd, const char* path) {
  auto r = open_beneath(dirfd, path, O_RDONLY | O_NOCTTY | O_NONBLOCK | O_NOATIME);
  if (!r.ok() && r.code() == EPERM) r = open_beneath(dirfd, path, O_RDONLY | O_NOCTTY | O_NONBLOCK);
  return r;
}

Result<UniqueFd> open_file_for_read(int dirfd, const std::string& path) {
  return open_file_for_read(dirfd, path.c_str());
}

Result<UniqueFd> open_directory(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return errno_error("open " + path);
  return UniqueFd(fd);
}

Result<std::string> read_host_file(const std::string& path, uint64_t max_bytes) {
  int raw = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
  if (raw < 0) return errno_error("open " + path);
  UniqueFd fd(raw);
  return read_to_end(fd.get(), max_bytes, path);
}

std::vector<MountEntry> mountinfo() {
  std::vector<MountEntry> out;
  auto text = read_host_file("/proc/self/mountinfo", 1 << 22);
  if (!text.ok()) return out;
  size_t at = 0;
  while (at < text->size()) {
    size_t end = text->find('\n', at);
    if (end == std::string::npos) end = text->size();
    std::vector<std::string> f;
    for (size_t i = at; i < end;) {
      size_t sp = text->find(' ', i);
      if (sp == std::string::npos || sp > end) sp = end;
      f.push_back(text->substr(i, sp - i));
      i = sp + 1;
    }
    at = end + 1;
    // Six fields, optional ones, "-", then three more.
    auto dash = f.size() < 6 ? f.end() : std::find(f.begin() + 6, f.end(), "-");
    if (f.end() - dash < 4) continue;
    out.push_back({f[2], f[4], f[5], dash[1], dash[2], dash[3]});
  }
  return out;
}

bool has_mount_option(std::string_view options, std::string_view option) {
  for (size_t at = 0; at <= options.size();) {
    size_t comma = options.find(',', at);
    if (comma == std::string_view::npos) comma = options.size();
    if (options.substr(at, comma - at) == option) return true;
    at = comma + 1;
  }
  return false;
}

bool trims_when_freeing(uint64_t dev) {
  const std::string id = std::to_string(major(dev)) + ":" + std::to_string(minor(dev));
  auto trims = [](const std::string& options) {
    return has_mount_option(options, "discard") || has_mount_option(options, "discard=sync");
  };
  for (const auto& m : mountinfo())
    if (m.device == id && (trims(m.options) || trims(m.super_options))) return true;
  return false;
}

Result<std::string> read_to_end(int fd, uint64_t max_bytes, const std::string& what) {
  VU_TRY_ASSIGN(st, stat_fd(fd));
  if (!st.is_regular()) return described_error(EINVAL, what + " is not a regular file");
  if (st.size > max_bytes)
    return described_error(EFBIG, what + " is larger than " + std::to_string(max_bytes) + " bytes");
  // Read to the end, not to the size stat reported: /proc and cgroup files
  // report 0, and a file may grow while it is read. Bounded either way.
  std::string data;
  uint64_t off = 0;
  for (;;) {
    size_t chunk = static_cast<size_t>(
        std::min<uint64_t>(std::max<uint64_t>(st.size + 1, 65536), max_bytes + 1 - off));
    data.resize(off + chunk);
    auto n = read_at(fd, data.data() + off, chunk, off);
    if (!n.ok()) return make_error(n.code(), "read " + what);
    off += *n;
    if (off > max_bytes)
      return described_error(EFBIG,
                             what + " is larger than " + std::to_string(max_bytes) + " bytes");
    if (*n < chunk) break;
  }
  data.resize(off);
  return data;
}

Status write_all(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno_error("write");
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return {};
}

namespace {

std::string random_suffix() {
  uint64_t r = 0;
  if (::getrandom(&r, sizeof r, 0) != sizeof r)
    r = static_cast<uint64_t>(::getpid()) << 32 ^ ::time(nullptr);
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(r));
  return buf;
}

} // namespace

Result<AtomicFile> AtomicFile::create(int dirfd, const std::string& name, unsigned mode) {
  if (!is_plain_name(name)) return described_error(EINVAL, "not a file name: '" + name + "'");
  AtomicFile f;
  f.m_dir = dirfd;
  f.m_name = name;
  f.m_tmp = "." + name.substr(0, 200) + ".vu-new-" + random_suffix();
  f.m_mode = mode & 07777;
  int raw = ::openat(dirfd, ".", O_TMPFILE | O_WRONLY | O_CLOEXEC, f.m_mode);
  if (raw < 0) {
    // No O_TMPFILE here: a fresh name that cannot be a planted link.
    raw = ::openat(dirfd, f.m_tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                   f.m_mode);
    if (raw < 0) return errno_error("create " + name);
    f.m_linked = true;
  }
  f.m_fd.reset(raw);
  return f;
}

AtomicFile::AtomicFile(AtomicFile&& o) noexcept
    : m_dir(o.m_dir), m_name(std::move(o.m_name)), m_tmp(std::move(o.m_tmp)), m_mode(o.m_mode),
      m_fd(std::move(o.m_fd)), m_linked(std::exchange(o.m_linked, false)) {}

AtomicFile::~AtomicFile() {
  if (m_linked) ::unlinkat(m_dir, m_tmp.c_str(), 0);
}

Status AtomicFile::append(std::string_view data) {
  auto w = write_all(m_fd.get(), data);
  if (w.ok()) return {};
  Error e = w.error();
  e.context = m_name + ": " + e.context;
  return e;
}

Status AtomicFile::commit() {
  auto fail = [&](Error e) -> Status {
    e.context = m_name + ": " + e.context;
    return e;
  };
  if (::fchmod(m_fd.get(), m_mode) != 0) return fail(errno_error("fchmod"));
  if (::fsync(m_fd.get()) != 0) return fail(errno_error("fsync"));
  if (!m_linked) {
    if (::linkat(m_fd.get(), "", m_dir, m_tmp.c_str(), AT_EMPTY_PATH) != 0) {
      // Without CAP_DAC_READ_SEARCH: the same through /proc.
      std::string proc = "/proc/self/fd/" + std::to_string(m_fd.get());
      if (::linkat(AT_FDCWD, proc.c_str(), m_dir, m_tmp.c_str(), AT_SYMLINK_FOLLOW) != 0)
        return fail(errno_error("linkat"));
    }
    m_linked = true;
  }
  // rename(2) replaces whatever entry `name` is - a symlink included -
  // without following it; a directory there makes it fail.
  if (::renameat(m_dir, m_tmp.c_str(), m_dir, m_name.c_str()) != 0)
    return fail(errno_error("rename"));
  m_linked = false;
  return {};
}

Status write_file_atomic_at(int dirfd, const std::string& name, std::string_view data,
                            unsigned mode) {
  VU_TRY_ASSIGN(f, AtomicFile::create(dirfd, name, mode));
  VU_TRY(f.append(data));
  return f.commit();
}

Status write_file_atomic(const std::string& path, std::string_view data, unsigned mode) {
  if (path.empty()) return described_error(EINVAL, "empty file name");
  std::string p = path;
  auto slash = p.rfind('/');
  std::string dir = slash == std::string::npos ? "." : (slash == 0 ? "/" : p.substr(0, slash));
  std::string name = slash == std::string::npos ? p : p.substr(slash + 1);
  if (name.empty()) return described_error(EISDIR, path + " names a directory");
  int raw = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (raw < 0) return errno_error("open directory " + dir);
  UniqueFd d(raw);
  auto r = write_file_atomic_at(d.get(), name, data, mode);
  if (!r.ok()) return make_error(r.code(), dir + "/" + r.error().context);
  return {};
}

uint64_t fd_limit() {
  struct rlimit rl {};
  if (::getrlimit(RLIMIT_NOFILE, &rl) != 0) return 1024;
  return rl.rlim_cur;
}

uint64_t raise_fd_limit() {
  struct rlimit rl {};
  if (::getrlimit(RLIMIT_NOFILE, &rl) != 0) return 1024;
  if (rl.rlim_cur < rl.rlim_max) {
    struct rlimit up = rl;
    up.rlim_cur = rl.rlim_max;
    if (::setrlimit(RLIMIT_NOFILE, &up) == 0) return up.rlim_cur;
  }
  return rl.rlim_cur;
}

void ignore_lease_signal() {
  static const bool done = [] {
    struct sigaction sa {};
    sa.sa_handler = SIG_IGN;
    sigemptyset(&sa.sa_mask);
    return ::sigaction(SIGIO, &sa, nullptr) == 0;
  }();
  (void)done;
}

Status take_read_lease(int fd) {
  ignore_lease_signal();
  if (::fcntl(fd, F_SETLEASE, F_RDLCK) != 0) return errno_error("F_SETLEASE");
  return {};
}

bool lease_unbroken(int fd) {
  // F_GETLEASE reports the type the lease is being broken to: F_UNLCK
  // while a writer waits, F_RDLCK while nobody does.
  return ::fcntl(fd, F_GETLEASE) == F_RDLCK;
}

void release_lease(int fd) {
  (void)::fcntl(fd, F_SETLEASE, F_UNLCK);
}

bool writes_always_change_ctime(int fd) {
  struct statfs s {};
  if (::fstatfs(fd, &s) != 0) return false;
  const auto type = static_cast<uint64_t>(s.f_type);
  return type == EXT4_SUPER_MAGIC || type == XFS_SUPER_MAGIC || type == BTRFS_SUPER_MAGIC;
}

Status link_fd(int fd, int dirfd, const std::string& name) {
  if (::linkat(fd, "", dirfd, name.c_str(), AT_EMPTY_PATH) != 0)
    return errno_error("linkat " + name);
  return {};
}

Status rename_at(int olddir, const std::string& oldname, int newdir, const std::string& newname,
                 unsigned flags) {
  if (::renameat2(olddir, oldname.c_str(), newdir, newname.c_str(), flags) != 0)
    return errno_error("renameat2 " + oldname + " " + newname);
  return {};
}

Status unlink_at(int dirfd, const std::string& name) {
  if (::unlinkat(dirfd, name.c_str(), 0) != 0) return errno_error("unlinkat " + name);
  return {};
}

Result<uint32_t> get_inode_flags(int fd) {
  int flags = 0;
  if (::ioctl(fd, FS_IOC_GETFLAGS, &flags) != 0) return errno_error("FS_IOC_GETFLAGS");
  return static_cast<uint32_t>(flags);
}

Status set_inode_flags(int fd, uint32_t flags) {
  int f = static_cast<int>(flags);
  if (::ioctl(fd, FS_IOC_SETFLAGS, &f) != 0) return errno_error("FS_IOC_SETFLAGS");
  return {};
}

Status set_immutable(int fd, Protection p) {
  VU_TRY_ASSIGN(flags, get_inode_flags(fd));
  uint32_t wanted =
      p == Protection::on ? (flags | FS_IMMUTABLE_FL) : (flags & ~uint32_t(FS_IMMUTABLE_FL));
  if (wanted == flags) return {};
  return set_inode_flags(fd, wanted);
}

Result<bool> is_immutable(int fd) {
  VU_TRY_ASSIGN(flags, get_inode_flags(fd));
  return (flags & FS_IMMUTABLE_FL) != 0;
}

Result<std::vector<std::string>> list_xattrs(int fd) {
  std::vector<char> buf(256);
  for (;;) {
    ssize_t n = ::flistxattr(fd, buf.data(), buf.size());
    if (n >= 0) {
      std::vector<std::string> names;
      for (size_t i = 0; i < static_cast<size_t>(n);) {
        std::string name(buf.data() + i);
        i += name.size() + 1;
        if (!name.empty()) names.push_back(std::move(name));
      }
      std::sort(names.begin(), names.end());
      return names;
    }
    if (errno == ENOTSUP) return std::vector<std::string>{};
    if (errno != ERANGE) return errno_error("flistxattr");
    ssize_t need = ::flistxattr(fd, nullptr, 0);
    if (need < 0) return errno_error("flistxattr");
    buf.resize(static_cast<size_t>(need) + 64);
  }
}

Result<std::string> get_xattr(int fd, const std::string& name) {
  std::string value(128, '\0');
  for (;;) {
    ssize_t n = ::fgetxattr(fd, name.c_str(), value.data(), value.size());
    if (n >= 0) {
      value.resize(static_cast<size_t>(n));
      return value;
    }
    if (errno != ERANGE) return errno_error("fgetxattr " + name);
    ssize_t need = ::fgetxattr(fd, name.c_str(), nullptr, 0);
    if (need < 0) return errno_error("fgetxattr " + name);
    value.resize(static_cast<size_t>(need) + 16);
  }
}

Status set_xattr(int fd, const std::string& name, std::string_view value) {
  if (::fsetxattr(fd, name.c_str(), value.data(), value.size(), 0) != 0)
    return errno_error("fsetxattr " + name);
  return {};
}

Result<size_t> read_at(int fd, void* buf, size_t len, uint64_t offset) {
  size_t done = 0;
  auto* p = static_cast<char*>(buf);
  while (done < len) {
    ssize_t n = ::pread(fd, p + done, len - done, static_cast<off_t>(offset + done));
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno_error("pread");
    }
    if (n == 0) break;
    done += static_cast<size_t>(n);
  }
  return done;
}

Result<std::string> read_file_beneath(int dirfd, const std::string& path, uint64_t max_bytes,
                                      FileStat* st_out) {
  VU_TRY_ASSIGN(fd, open_file_for_read(dirfd, path));
  VU_TRY_ASSIGN(st, stat_fd(fd.get()));
  if (!st.is_regular()) return described_error(EINVAL, path + " is not a regular file");
  if (st.size > max_bytes)
    return described_error(EFBIG, path + " is larger than " + std::to_string(max_bytes) + " bytes");
  std::string data(st.size, '\0');
  VU_TRY_ASSIGN(n, read_at(fd.get(), data.data(), data.size(), 0));
  data.resize(n);
  if (st_out) *st_out = st;
  return data;
}

namespace {
struct LinuxDirent64 {
  uint64_t d_ino;
  int64_t d_off;
  unsigned short d_reclen;
  unsigned char d_type;
  char d_name[];
};
} // namespace

Result<std::vector<DirEntry>> read_directory(int dirfd) {
  std::vector<DirEntry> out;
  alignas(8) char buf[32768];
  if (::lseek(dirfd, 0, SEEK_SET) < 0) return errno_error("lseek directory");
  for (;;) {
    long n = ::syscall(SYS_getdents64, dirfd, buf, sizeof(buf));
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno_error("getdents64");
    }
    if (n == 0) break;
    for (long pos = 0; pos < n;) {
      auto* d = reinterpret_cast<LinuxDirent64*>(buf + pos);
      pos += d->d_reclen;
      std::string_view name(d->d_name);
      if (name == "." || name == "..") continue;
      out.push_back(DirEntry{std::string(name), d->d_ino, d->d_type});
    }
  }
  return out;
}

bool is_plain_name(std::string_view name) {
  return !name.empty() && name != "." && name != ".." && name.find('/') == std::string_view::npos &&
         name.find('\0') == std::string_view::npos;
}

} // namespace vu
