// Linux capabilities: names, the bounding set, and dropping them.
//
// A process's capabilities are bits 0..cap_last_cap in five sets. A guest
// keeps a chosen set: every other capability leaves the bounding set
// (PR_CAPBSET_DROP - no exec can regain it, not even of a set-uid or
// file-capability binary), and the effective, permitted and inheritable
// sets are cut to the same bits (capset); the ambient set is cleared.
#pragma once

#include "kernel/result.h"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <sys/types.h>
#include <vector>

namespace vu {

using CapMask = uint64_t;

inline constexpr CapMask cap_bit(int cap) {
  return CapMask(1) << cap;
}

// "CAP_NET_ADMIN", "NET_ADMIN" or "net_admin" -> 12; nullopt when unknown.
std::optional<int> capability_by_name(std::string_view name);
// 12 -> "CAP_NET_ADMIN"; "CAP_<n>" for a number without a name.
std::string capability_name(int cap);
// Every capability this kernel knows (/proc/sys/kernel/cap_last_cap).
CapMask all_capabilities();
// Names of the bits of `mask`, comma-separated ("CAP_CHOWN,CAP_KILL").
std::string capability_list(CapMask mask);

// Drops every capability not in `keep` from the bounding set, clears the
// ambient set and cuts effective, permitted and inheritable to `keep`.
// Needs CAP_SETPCAP (dropped last when not in `keep`).
Status restrict_capabilities(CapMask keep);

// A process's sets from /proc/PID/status ("CapBnd", "CapEff", ...).
Result<CapMask> process_capabilities(pid_t pid, std::string_view set);

} // namespace vu
