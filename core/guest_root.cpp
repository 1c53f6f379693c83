// The file system a guest sees (see guest_root.h).
#include "core/guest_root.h"

#include "kernel/fs.h"
#include "kernel/mount.h"

#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

namespace vu {

namespace {

constexpr unsigned k_plain = MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC;

Status mount_at(int dir, const std::string& name, int mnt) {
  VU_TRY_ASSIGN(point, mount_point_dir(dir, name));
  auto r = attach_mount(mnt, point.get());
  if (!r.ok()) return make_error(r.code(), "mount on /" + name);
  return {};
}

// A host file (/dev/null) over the file `name` beneath `dir`, when it exists.
Status cover_file(int dir, const std::string& name, int host_null) {
  auto point = open_beneath(dir, name, O_PATH);
  if (!point.ok()) return point.code() == ENOENT ? Status{} : Status(point.error());
  VU_TRY_ASSIGN(st, stat_fd(point->get()));
  if (st.is_directory()) {
    VU_TRY_ASSIGN(
        empty, new_mount("tmpfs", {{"size", "0"}, {"mode", "0555"}}, k_plain | MOUNT_ATTR_RDONLY));
    return attach_mount(empty.get(), point->get());
  }
  VU_TRY_ASSIGN(copy, clone_mount(host_null, Recursive::no));
  return attach_mount(copy.get(), point->get());
}

Status read_only_subtree(int dir, const std::string& name) {
  auto point = open_beneath(dir, name, O_PATH | O_DIRECTORY);
  if (!point.ok()) return point.code() == ENOENT ? Status{} : Status(point.error());
  VU_TRY_ASSIGN(copy, clone_mount(point->get(), Recursive::yes));
  VU_TRY(set_mount_attr(copy.get(), MOUNT_ATTR_RDONLY | k_plain, 0));
  return attach_mount(copy.get(), point->get());
}

Status mount_proc(int root, int host_null) {
  VU_TRY_ASSIGN(proc, new_mount("proc", {}, k_plain));
  VU_TRY(mount_at(root, "proc", proc.get()));
  for (const char* f :
       {"kcore", "kmsg", "sysrq-trigger", "keys", "key-users", "timer_list", "sched_debug",
        "latency_stats", "kpagecount", "kpageflags", "kpagecgroup", "config.gz", "acpi", "scsi"})
    VU_TRY(cover_file(proc.get(), f, host_null));
  for (const char* d : {"sys", "bus", "fs", "irq"}) VU_TRY(read_only_subtree(proc.get(), d));
  return {};
}

Status make_node(int dev, const char* name, unsigned major_nr, unsigned minor_nr) {
  if (::mknodat(dev, name, S_IFCHR | 0666, makedev(major_nr, minor_nr)) != 0)
    return make_error(errno, std::string("mknod /dev/") + name);
  if (::fchmodat(dev, name, 0666, 0) != 0)
    return make_error(errno, std::string("chmod /dev/") + name);
  return {};
}

Status populate_dev(int dev, int host_null) {
  VU_TRY(make_node(dev, "null", 1, 3));
  VU_TRY(make_node(dev, "zero", 1, 5));
  VU_TRY(make_node(dev, "full", 1, 7));
  VU_TRY(make_node(dev, "random", 1, 8));
  VU_TRY(make_node(dev, "urandom", 1, 9));
  VU_TRY(make_node(dev, "tty", 5, 0));
  VU_TRY_ASSIGN(
      pts, new_mount("devpts",
                     {{"newinstance", ""}, {"ptmxmode", "0666"}, {"mode", "0620"}, {"gid", "5"}},
                     MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC));
  VU_TRY(mount_at(dev, "pts", pts.get()));
  VU_TRY_ASSIGN(shm, new_mount("tmpfs", {{"mode", "1777"}}, k_plain));
  VU_TRY(mount_at(dev, "shm", shm.get()));
  VU_TRY_ASSIGN(mq, new_mount("mqueue", {}, k_plain));
  VU_TRY(mount_at(dev, "mqueue", mq.get()));
  for (auto [name, target] :
       {std::pair{"ptmx", "pts/ptmx"}, std::pair{"fd", "/proc/self/fd"},
        std::pair{"stdin", "/proc/self/fd/0"}, std::pair{"stdout", "/proc/self/fd/1"},
        std::pair{"stderr", "/proc/self/fd/2"}})
    if (::symlinkat(target, dev, name) != 0) return make_error(errno, std::string("/dev/") + name);
  VU_TRY_ASSIGN(console, mount_point_file(dev, "console"));
  VU_TRY_ASSIGN(null_copy, clone_mount(host_null, Recursive::no));
  return attach_mount(null_copy.get(), console.get());
}

Status mount_dev(int root, int host_null) {
  VU_TRY_ASSIGN(dev, new_mount("tmpfs", {{"mode", "0755"}, {"size", "1m"}, {"nr_inodes", "4096"}},
                               MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC));
  // Attached first: mounts go only onto trees in this namespace.
  VU_TRY(mount_at(root, "dev", dev.get()));
  return populate_dev(dev.get(), host_null);
}

} // namespace

Status attach_context_mount(int root, const ContextMount& m) {
  auto point = open_beneath(root, m.target, O_PATH | O_DIRECTORY);
  if (!point.ok())
    return described_error(point.code(), "/" + m.target +
                                             " in the guest: " + point.error().message() +
                                             " (it must be a directory, not a symlink)");
  auto r = attach_mount(m.tree, point->get());
  if (!r.ok())
    return described_error(r.code(), "mount on /" + m.target + ": " + r.error().message());
  return {};
}

Status enter_guest_root(int root, const std::vector<ContextMount>& extra) {
  int null_raw = ::open("/dev/null", O_PATH | O_CLOEXEC);
  if (null_raw < 0) return make_error(errno, "open /dev/null");
  UniqueFd host_null(null_raw);
  VU_TRY(make_mounts_private());
  // The guest's tree as a mount of its own, attached over its root.
  VU_TRY_ASSIGN(tree, clone_mount(root, Recursive::yes));
  VU_TRY(attach_mount(tree.get(), root));
  VU_TRY(mount_proc(tree.get(), host_null.get()));
  VU_TRY(mount_dev(tree.get(), host_null.get()));
  VU_TRY_ASSIGN(sys, new_mount("sysfs", {}, k_plain | MOUNT_ATTR_RDONLY));
  VU_TRY(mount_at(tree.get(), "sys", sys.get()));
  for (const auto& m : extra) VU_TRY(attach_context_mount(tree.get(), m));
  return pivot_to(tree.get());
}

} // namespace vu
