// Mounts by descriptor (see mount.h).
#include "kernel/mount.h"

#include "kernel/fs.h"

#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace vu {

namespace {

int sys_fsopen(const char* fstype, unsigned flags) {
  return static_cast<int>(::syscall(SYS_fsopen, fstype, flags));
}
int sys_fsconfig(int fd, unsigned cmd, const char* key, const void* value, int aux) {
  return static_cast<int>(::syscall(SYS_fsconfig, fd, cmd, key, value, aux));
}
int sys_fsmount(int fd, unsigned flags, unsigned attr) {
  return static_cast<int>(::syscall(SYS_fsmount, fd, flags, attr));
}
int sys_move_mount(int from, const char* from_path, int to, const char* to_path, unsigned f) {
  return static_cast<int>(::syscall(SYS_move_mount, from, from_path, to, to_path, f));
}
int sys_open_tree(int dirfd, const char* path, unsigned flags) {
  return static_cast<int>(::syscall(SYS_open_tree, dirfd, path, flags));
}

} // namespace

Status make_mounts_private() {
  if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0)
    return make_error(errno, "make / private");
  return {};
}

Result<UniqueFd> new_mount(const std::string& fstype, const MountOptions& options, unsigned attr) {
  int raw = sys_fsopen(fstype.c_str(), FSOPEN_CLOEXEC);
  if (raw < 0) return make_error(errno, "fsopen " + fstype);
  UniqueFd fs(raw);
  for (const auto& [key, value] : options) {
    int r = value.empty()
                ? sys_fsconfig(fs.get(), FSCONFIG_SET_FLAG, key.c_str(), nullptr, 0)
                : sys_fsconfig(fs.get(), FSCONFIG_SET_STRING, key.c_str(), value.c_str(), 0);
    if (r != 0) return make_error(errno, fstype + " option " + key);
  }
  if (sys_fsconfig(fs.get(), FSCONFIG_CMD_CREATE, nullptr, nullptr, 0) != 0)
    return make_error(errno, "create " + fstype);
  int mnt = sys_fsmount(fs.get(), FSMOUNT_CLOEXEC, attr);
  if (mnt < 0) return make_error(errno, "fsmount " + fstype);
  return UniqueFd(mnt);
}

Result<UniqueFd> clone_mount(int fd, Recursive recursive) {
  unsigned flags = OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH;
  if (recursive == Recursive::yes) flags |= AT_RECURSIVE;
  int mnt = sys_open_tree(fd, "", flags);
  if (mnt < 0) return make_error(errno, "open_tree");
  return UniqueFd(mnt);
}

Status attach_mount(int mnt, int target) {
  if (sys_move_mount(mnt, "", target, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) != 0)
    return make_error(errno, "move_mount");
  return {};
}

Status set_mount_attr(int fd, unsigned set, unsigned clear) {
  mount_attr attr{};
  attr.attr_set = set;
  attr.attr_clr = clear;
  if (::syscall(SYS_mount_setattr, fd, "", AT_EMPTY_PATH | AT_RECURSIVE, &attr, sizeof attr) != 0)
    return make_error(errno, "mount_setattr");
  return {};
}

Result<UniqueFd> mount_point_dir(int dirfd, const std::string& name) {
  if (!is_plain_name(name)) return described_error(EINVAL, "bad mount point name " + name);
  if (::mkdirat(dirfd, name.c_str(), 0755) != 0 && errno != EEXIST)
    return make_error(errno, "mkdir " + name);
  return open_beneath(dirfd, name, O_PATH | O_DIRECTORY);
}

Result<UniqueFd> mount_point_file(int dirfd, const std::string& name) {
  if (!is_plain_name(name)) return described_error(EINVAL, "bad mount point name " + name);
  int fd =
      ::openat(dirfd, name.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
  if (fd >= 0)
    ::close(fd);
  else if (errno != EEXIST)
    return make_error(errno, "create " + name);
  VU_TRY_ASSIGN(point, open_beneath(dirfd, name, O_PATH));
  VU_TRY_ASSIGN(st, stat_fd(point.get()));
  if (st.is_directory() || (st.mode & S_IFMT) == S_IFLNK)
    return described_error(EISDIR, name + " is not a file");
  return point;
}

Status pivot_to(int new_root) {
  if (::fchdir(new_root) != 0) return make_error(errno, "chdir to the new root");
  if (::syscall(SYS_pivot_root, ".", ".") != 0) return make_error(errno, "pivot_root");
  // The old root is stacked on "." now: detach it, with everything under it.
  if (::umount2(".", MNT_DETACH) != 0) return make_error(errno, "detach the old root");
  if (::chdir("/") != 0) return make_error(errno, "chdir /");
  return {};
}

} // namespace vu
