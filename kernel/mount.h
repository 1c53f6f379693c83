// Mounts by descriptor: every mount point is an open directory (or file)
// found beneath a root without following symlinks, and every file system
// is attached to it with the new mount API (fsopen/fsmount/move_mount,
// open_tree for bind mounts), so no path is resolved again between the
// check and the mount - a guest that swaps a directory for a symlink
// cannot steer a mount onto the host.
#pragma once

#include "kernel/fd.h"
#include "kernel/result.h"

#include <string>
#include <utility>
#include <vector>

namespace vu {

// mount(NULL, "/", NULL, MS_REC | MS_PRIVATE): nothing mounted from here
// on propagates to the namespace this one was copied from.
Status make_mounts_private();

// A new, detached file system: fsopen(`fstype`), each (key, value) of
// `options` set with fsconfig (value empty: a flag), fsmount with
// `attr` (MOUNT_ATTR_*). Attach it with attach_mount.
using MountOptions = std::vector<std::pair<std::string, std::string>>;
Result<UniqueFd> new_mount(const std::string& fstype, const MountOptions& options, unsigned attr);
// A detached copy of the mount tree at `fd` (open_tree OPEN_TREE_CLONE,
// recursive when `recursive`).
enum class Recursive : bool { no = false, yes = true };
Result<UniqueFd> clone_mount(int fd, Recursive recursive);
// Attaches the detached mount `mnt` onto the open mount point `target`.
Status attach_mount(int mnt, int target);
// Changes the attributes of the mount tree at `fd` (mount_setattr, all
// of it): e.g. MOUNT_ATTR_RDONLY.
Status set_mount_attr(int fd, unsigned set, unsigned clear);

// The directory `name` beneath `dirfd` as an O_PATH descriptor, made (mode
// 0755) when missing; ELOOP/ENOTDIR when it is a symlink or not a
// directory. `name` has no '/'.
Result<UniqueFd> mount_point_dir(int dirfd, const std::string& name);
// The same for a file mount point (made empty, mode 0644, when missing).
Result<UniqueFd> mount_point_file(int dirfd, const std::string& name);

// Makes the directory `new_root` the root of this mount namespace and
// detaches the old root entirely (pivot_root(".", ".") + umount2 MNT_DETACH);
// the working directory is the new "/" afterwards.
Status pivot_to(int new_root);

} // namespace vu
