// The pinned BPF LSM objects through bpf(2) (see bpf_lsm.h).
#include "kernel/bpf_lsm.h"

#include "kernel/fd.h"
#include "kernel/fs.h"

#include <fcntl.h>
#include <linux/bpf.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <fstream>

namespace vu {

const std::vector<std::string> k_bpf_lsm_hooks = {"vu_file_open",         "vu_path_truncate",
                                                  "vu_inode_setattr",     "vu_inode_setxattr",
                                                  "vu_inode_removexattr", "vu_file_ioctl"};
const char* const k_bpf_lsm_barrier_hook = "vu_inode_permission";

const std::vector<std::string> k_bpf_lsm_newer_hooks = {"vu_inode_set_acl", "vu_inode_remove_acl",
                                                        "vu_file_truncate", "vu_file_ioctl_compat"};

const std::vector<std::string> k_bpf_lsm_refusals = {"write_open", "truncate", "setattr",
                                                     "xattr",      "flags",    "barrier"};

std::string bpf_lsm_pin_dir() {
  const char* dir = std::getenv("VU_BPF_PIN_DIR");
  return dir && *dir ? dir : "/sys/fs/bpf/vunify";
}

namespace {

long bpf_call(int cmd, bpf_attr& attr) {
  return ::syscall(__NR_bpf, cmd, &attr, sizeof(attr));
}

Result<UniqueFd> obj_get(const std::string& path) {
  bpf_attr attr{};
  attr.pathname = reinterpret_cast<uint64_t>(path.c_str());
  long fd = bpf_call(BPF_OBJ_GET, attr);
  if (fd < 0) return errno_error(path);
  return UniqueFd(static_cast<int>(fd));
}

template <typename Info> Status obj_info(int fd, Info& info) {
  bpf_attr attr{};
  attr.info.bpf_fd = static_cast<uint32_t>(fd);
  attr.info.info_len = sizeof(info);
  attr.info.info = reinterpret_cast<uint64_t>(&info);
  if (bpf_call(BPF_OBJ_GET_INFO_BY_FD, attr) != 0) return errno_error("BPF_OBJ_GET_INFO_BY_FD");
  return {};
}

Status map_lookup(int fd, uint32_t key, void* value) {
  bpf_attr attr{};
  attr.map_fd = static_cast<uint32_t>(fd);
  attr.key = reinterpret_cast<uint64_t>(&key);
  attr.value = reinterpret_cast<uint64_t>(value);
  if (bpf_call(BPF_MAP_LOOKUP_ELEM, attr) != 0) return errno_error("BPF_MAP_LOOKUP_ELEM");
  return {};
}

// The layout of the program's `config` map value (struct config in
// vunify_lsm.bpf.c).
struct Config {
  uint64_t guests_cgroup;
  uint32_t guests_level;
  uint32_t host_root_dev; // the kernel's encoding: major << 20 | minor
  uint64_t host_root_ino;
};
static_assert(sizeof(Config) == 24);

// Number of possible CPUs ("0-N" in sysfs): the size of a per-CPU value.
unsigned possible_cpus() {
  std::ifstream in("/sys/devices/system/cpu/possible");
  std::string text;
  std::getline(in, text);
  auto dash = text.rfind('-');
  unsigned last = static_cast<unsigned>(std::strtoul(
      dash == std::string::npos ? text.c_str() : text.c_str() + dash + 1, nullptr, 10));
  return last + 1;
}

void read_refusals(int fd, BpfLsmState& s) {
  std::vector<uint64_t> per_cpu(possible_cpus());
  for (uint32_t k = 0; k < k_bpf_lsm_refusals.size(); ++k) {
    uint64_t sum = 0;
    if (map_lookup(fd, k, per_cpu.data()).ok())
      for (uint64_t v : per_cpu) sum += v;
    s.refusals.push_back(sum);
  }
}

// Whether `dir`/`hook` is a pinned LSM link attached to a program; why not
// otherwise.
std::string check_link(const std::string& dir, const std::string& hook) {
  auto fd = obj_get(dir + "/" + hook);
  bpf_link_info info{};
  if (!fd.ok() || !obj_info(fd->get(), info).ok())
    return "the BPF LSM program is not loaded (no " + dir + "/" + hook + "; run vattr-bpf load)";
  if (info.type != BPF_LINK_TYPE_TRACING || info.prog_id == 0)
    return dir + "/" + hook + " is not an attached LSM link (run vattr-bpf load)";
  return {};
}

// Why the program is not loaded (every hook's link pinned and attached);
// empty when it is.
std::string why_not_loaded(const std::string& dir) {
  for (const auto& hook : k_bpf_lsm_hooks)
    if (auto why = check_link(dir, hook); !why.empty()) return why;
  return {};
}

} // namespace

BpfLsmState bpf_lsm_state() {
  BpfLsmState s;
  const std::string dir = bpf_lsm_pin_dir();
  if (s.why_not = why_not_loaded(dir); !s.why_not.empty()) return s;
  s.loaded = true;
  s.barrier = check_link(dir, k_bpf_lsm_barrier_hook).empty();
  if (auto cfg = obj_get(dir + "/config"); cfg.ok()) {
    Config c{};
    if (map_lookup(cfg->get(), 0, &c).ok()) {
      s.guests_cgroup = c.guests_cgroup;
      s.guests_level = c.guests_level;
    }
  }
  if (auto counts = obj_get(dir + "/refusals"); counts.ok()) read_refusals(counts->get(), s);
  return s;
}

bool bpf_lsm_loaded() {
  return why_not_loaded(bpf_lsm_pin_dir()).empty(); // no counters read
}

Status bpf_lsm_set_guests_cgroup(int cgroup_dirfd) {
  // The cgroup id is the kernfs node's, which is the directory's inode
  // number; the level is how many directories lie between it and the
  // hierarchy's root (where ".." leaves the cgroup2 file system). The
  // host's root is this process's.
  VU_TRY_ASSIGN(top, stat_fd(cgroup_dirfd));
  VU_TRY_ASSIGN(root, stat_at(AT_FDCWD, "/"));
  Config c{top.ino, 0, (major(root.dev) << 20) | minor(root.dev), root.ino};
  UniqueFd cur(::fcntl(cgroup_dirfd, F_DUPFD_CLOEXEC, 0));
  if (!cur.valid()) return errno_error("dup");
  FileStat cst = top;
  for (;;) {
    int up = ::openat(cur.get(), "..", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (up < 0) return errno_error("open .. of the guests' cgroup");
    UniqueFd parent(up);
    VU_TRY_ASSIGN(pst, stat_fd(parent.get()));
    if (pst.dev != top.dev || (pst.ino == cst.ino && pst.dev == cst.dev)) break;
    ++c.guests_level;
    cur = std::move(parent);
    cst = pst;
  }
  VU_TRY_ASSIGN(map, obj_get(bpf_lsm_pin_dir() + "/config"));
  uint32_t key = 0;
  bpf_attr attr{};
  attr.map_fd = static_cast<uint32_t>(map.get());
  attr.key = reinterpret_cast<uint64_t>(&key);
  attr.value = reinterpret_cast<uint64_t>(&c);
  attr.flags = BPF_ANY;
  if (bpf_call(BPF_MAP_UPDATE_ELEM, attr) != 0) return errno_error("update the BPF LSM config");
  return {};
}

} // namespace vu
