// The bpf attribute back end's kernel side as the tools see it: whether
// vattr-bpf has loaded the BPF LSM program (kernel/bpf/vunify_lsm.bpf.c),
// the group its barrier treats as the guests', and its refusal counters -
// through the objects the loader pins under /sys/fs/bpf/vunify, with plain
// bpf(2) calls (only the loader needs libbpf).
//
// The mark the program enforces is three inode flags the file system
// keeps: FS_SYNC_FL | FS_NOATIME_FL | FS_NODUMP_FL (k_bpf_mark). On a
// regular file it is util-vserver's iunlink (never written, truncated or
// re-attributed; linked, renamed and unlinked freely); on a directory the
// barrier. statx reports FS_NODUMP_FL, so a scan sees marks for free.
#pragma once

#include "kernel/result.h"

#include <cstdint>
#include <string>
#include <vector>

namespace vu {

inline constexpr uint32_t k_bpf_mark = 0x00000008u    // FS_SYNC_FL
                                       | 0x00000080u  // FS_NOATIME_FL
                                       | 0x00000040u; // FS_NODUMP_FL

// Where the loader pins its links and maps ($VU_BPF_PIN_DIR overrides it
// for tests).
std::string bpf_lsm_pin_dir();

// The program's hooks, each pinned as a link named after it: those every
// kernel has (from Linux 6.1), those only newer kernels have (pinned where
// they exist), and the barrier's (inode_permission: every lookup of every
// path component pays for it; `vattr-bpf load --no-barrier` leaves it out).
extern const std::vector<std::string> k_bpf_lsm_hooks;
extern const std::vector<std::string> k_bpf_lsm_newer_hooks;
extern const char* const k_bpf_lsm_barrier_hook;

// The refusal counters, in the program's order.
extern const std::vector<std::string> k_bpf_lsm_refusals;

struct BpfLsmState {
  bool loaded = false;        // every hook's link is pinned and attached
  bool barrier = false;       // and the barrier's
  std::string why_not;        // when not loaded: one line
  uint64_t guests_cgroup = 0; // cgroup2 id of the guests' parent group
  uint32_t guests_level = 0;
  std::vector<uint64_t> refusals; // summed over CPUs, k_bpf_lsm_refusals' order
};

// What the pinned objects say; never fails (why_not says what is missing).
BpfLsmState bpf_lsm_state();
bool bpf_lsm_loaded();

// Names the cgroup2 group whose subtree holds the guests (an open
// directory of it), and the host's root directory (this process's): the
// barrier holds for processes in that subtree whose root is another.
Status bpf_lsm_set_guests_cgroup(int cgroup_dirfd);

} // namespace vu
