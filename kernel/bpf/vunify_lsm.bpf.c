// SPDX-License-Identifier: GPL-2.0
// The Linux-VServer patch's inode attributes on mainline, as a BPF LSM
// program (ARCHITECTURE.md, "The bpf attribute back end").
//
// A mark is three inode flags the file system stores with the inode:
// FS_SYNC_FL | FS_NOATIME_FL | FS_NODUMP_FL. The kernel keeps the first two
// in inode->i_flags (S_SYNC, S_NOATIME), where this program reads them;
// statx reports the third, so the tools see marks while they scan without
// opening a file. On a regular file (or symlink, device, ...) the mark is
// util-vserver's iunlink: the inode can be read, linked, renamed and
// unlinked by anyone, but never opened for writing, truncated, or have its
// mode, owner, times, extended attributes (ACLs, capabilities) or flags
// changed. On a directory it is the barrier: processes of a started guest
// (see in_guest) cannot look up, enter or open anything through it,
// whatever their capabilities.
//
// Only a process outside the guests with CAP_LINUX_IMMUTABLE may change
// the flags of a marked inode (so only the host's root clears a mark; a
// guest never has that capability).
//
// Kernel types are declared here with the few fields used; libbpf moves
// each access to the running kernel's offsets (CO-RE), so no kernel
// headers are needed to build it.
#include <linux/bpf.h>
#include <linux/types.h>

// libbpf's headers use the types above.
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

char LICENSE[] SEC("license") = "GPL";

struct super_block {
  __u32 s_dev;
} __attribute__((preserve_access_index));

struct inode {
  unsigned short i_mode;
  unsigned int i_flags;
  struct super_block* i_sb;
  unsigned long i_ino;
} __attribute__((preserve_access_index));

struct dentry {
  struct inode* d_inode;
} __attribute__((preserve_access_index));

struct path {
  struct dentry* dentry;
} __attribute__((preserve_access_index));

struct fs_struct {
  struct path root;
} __attribute__((preserve_access_index));

struct file {
  struct inode* f_inode;
  unsigned int f_mode;
} __attribute__((preserve_access_index));

// kernel_cap_t is { u32 cap[2] } before Linux 6.3 and { u64 val } since:
// the same eight bytes on a little-endian machine.
struct cred {
  struct {
    __u32 cap[2];
  } cap_effective;
} __attribute__((preserve_access_index));

struct task_struct {
  const struct cred* cred;
  struct fs_struct* fs;
} __attribute__((preserve_access_index));

#define EPERM 1
#define EACCES 13

#define S_SYNC (1u << 0)
#define S_NOATIME (1u << 1)
#define MARK (S_SYNC | S_NOATIME)
#define S_IFMT 0170000
#define S_IFDIR 0040000
#define FMODE_WRITE 0x2u
#define CAP_LINUX_IMMUTABLE 9

// FS_IOC_GETFLAGS/SETFLAGS (_IOR/_IOW('f', 1/2, long)), their 32-bit
// forms, and FS_IOC_FSSETXATTR (_IOW('X', 32, struct fsxattr)).
#define FS_IOC_SETFLAGS 0x40086602u
#define FS_IOC32_SETFLAGS 0x40046602u
#define FS_IOC_FSSETXATTR 0x401c5820u

// Written by the loader: the cgroup2 group all guests' groups are under
// (its id and depth; zero: no guest is known, barriers hold for nobody),
// and the host's root directory (the kernel's device number and inode).
struct config {
  __u64 guests_cgroup;
  __u32 guests_level;
  __u32 host_root_dev;
  __u64 host_root_ino;
};

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, struct config);
} config SEC(".maps");

// Per-hook counts of refusals (index: enum refusal), for `vattr-bpf status`
// and the tests.
enum refusal { R_WRITE_OPEN, R_TRUNCATE, R_SETATTR, R_XATTR, R_FLAGS, R_BARRIER, R_COUNT };

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, R_COUNT);
  __type(key, __u32);
  __type(value, __u64);
} refusals SEC(".maps");

static __always_inline int refuse(enum refusal why, int err) {
  __u32 key = why;
  __u64* n = bpf_map_lookup_elem(&refusals, &key);
  if (n) *n += 1;
  return -err;
}

static __always_inline int marked(const struct inode* inode) {
  if (!inode) return 0;
  return (inode->i_flags & MARK) == MARK;
}

static __always_inline int is_dir(const struct inode* inode) {
  return (inode->i_mode & S_IFMT) == S_IFDIR;
}

// The iunlink rule: a marked inode other than a directory refuses `why`.
static __always_inline int refuse_if_iunlink(const struct inode* inode, enum refusal why) {
  if (marked(inode) && !is_dir(inode)) return refuse(why, EPERM);
  return 0;
}

// A process of a started guest: in the guests' cgroup subtree, with a root
// directory other than the host's. The core's own process that sets a
// guest up joins its cgroup first and only then pivots into the guest's
// root (reaching it by path through the barrier); a guest's process never
// has the host's root (it would take a descriptor of it and chroot: a
// process with that is out of its guest already).
static __always_inline int in_guest(void) {
  __u32 key = 0;
  struct config* c = bpf_map_lookup_elem(&config, &key);
  if (!c || !c->guests_cgroup) return 0;
  if (bpf_get_current_ancestor_cgroup_id(c->guests_level) != c->guests_cgroup) return 0;
  struct task_struct* task = bpf_get_current_task_btf();
  struct inode* root = task->fs->root.dentry->d_inode;
  return !(root && root->i_ino == c->host_root_ino && root->i_sb->s_dev == c->host_root_dev);
}

static __always_inline int may_change_marks(void) {
  if (in_guest()) return 0;
  struct task_struct* task = bpf_get_current_task_btf();
  const struct cred* cred = task->cred;
  __u32 low = 0;
  // Only the offset of cap_effective is relocated: its layout differs
  // between kernels, its first four bytes do not.
  bpf_probe_read_kernel(&low, sizeof(low), __builtin_preserve_access_index(&cred->cap_effective));
  return (low >> CAP_LINUX_IMMUTABLE) & 1;
}

SEC("lsm/file_open")
int BPF_PROG(vu_file_open, struct file* file) {
  if (!(file->f_mode & FMODE_WRITE)) return 0;
  return refuse_if_iunlink(file->f_inode, R_WRITE_OPEN);
}

SEC("lsm/path_truncate")
int BPF_PROG(vu_path_truncate, const struct path* path) {
  return refuse_if_iunlink(path->dentry->d_inode, R_TRUNCATE);
}

// Hooks whose arguments differ between kernels come in variants; the
// loader (tools/vattr-bpf) reads the running kernel's BTF and loads the
// one that matches (and the hooks only newer kernels have, where they
// exist).
// Any attribute change: mode, owner, size, times (ctime changes that come
// with link and unlink do not pass here). Up to Linux 6.x: (dentry, attr).
SEC("lsm/inode_setattr")
int BPF_PROG(vu_inode_setattr, struct dentry* dentry) {
  return refuse_if_iunlink(dentry->d_inode, R_SETATTR);
}

// Later kernels: (idmap, dentry, attr).
SEC("lsm/inode_setattr")
int BPF_PROG(vu_inode_setattr_idmap, void* idmap, struct dentry* dentry) {
  return refuse_if_iunlink(dentry->d_inode, R_SETATTR);
}

// (mount's user namespace or idmap, dentry, name, ...) since Linux 5.12.
SEC("lsm/inode_setxattr")
int BPF_PROG(vu_inode_setxattr, void* idmap, struct dentry* dentry) {
  return refuse_if_iunlink(dentry->d_inode, R_XATTR);
}

SEC("lsm/inode_removexattr")
int BPF_PROG(vu_inode_removexattr, void* idmap, struct dentry* dentry) {
  return refuse_if_iunlink(dentry->d_inode, R_XATTR);
}

// ACLs have hooks of their own since Linux 6.2 (before, they are xattrs).
SEC("lsm/inode_set_acl")
int BPF_PROG(vu_inode_set_acl, void* idmap, struct dentry* dentry) {
  return refuse_if_iunlink(dentry->d_inode, R_XATTR);
}

SEC("lsm/inode_remove_acl")
int BPF_PROG(vu_inode_remove_acl, void* idmap, struct dentry* dentry) {
  return refuse_if_iunlink(dentry->d_inode, R_XATTR);
}

// ftruncate has a hook of its own since Linux 6.2.
SEC("lsm/file_truncate")
int BPF_PROG(vu_file_truncate, struct file* file) {
  return refuse_if_iunlink(file->f_inode, R_TRUNCATE);
}

static __always_inline int refuse_flags(struct file* file, unsigned int cmd) {
  if (cmd != FS_IOC_SETFLAGS && cmd != FS_IOC32_SETFLAGS && cmd != FS_IOC_FSSETXATTR) return 0;
  if (!marked(file->f_inode) || may_change_marks()) return 0;
  return refuse(R_FLAGS, EPERM);
}

// 32-bit processes' ioctls have a hook of their own since Linux 6.8.
SEC("lsm/file_ioctl_compat")
int BPF_PROG(vu_file_ioctl_compat, struct file* file, unsigned int cmd) {
  return refuse_flags(file, cmd);
}

SEC("lsm/file_ioctl")
int BPF_PROG(vu_file_ioctl, struct file* file, unsigned int cmd) {
  return refuse_flags(file, cmd);
}

// Every lookup in a directory, chdir and fchdir into it, and opening it
// ask for its permission: a guest's process gets none on a barrier.
SEC("lsm/inode_permission")
int BPF_PROG(vu_inode_permission, struct inode* inode, int mask) {
  if (!marked(inode) || !is_dir(inode) || !in_guest()) return 0;
  return refuse(R_BARRIER, EACCES);
}
