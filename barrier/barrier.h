// The chroot barrier: the directory that holds the guest roots (default
// /vservers) must not be traversable by a guest's root. On mainline Linux
// that is mode 000, owned by root, a real directory (measured: a chroot()ed
// root without the DAC capabilities cannot walk past it with "..", one with
// CAP_DAC_OVERRIDE can - ARCHITECTURE.md, barrier); with a Linux-VServer
// kernel the barrier attribute is set as well.
#pragma once

#include "core/guest.h"
#include "kernel/attr.h"
#include "kernel/result.h"

#include <string>
#include <vector>

namespace vu {

// Every way `base` fails to be a barrier, one sentence each; empty when it
// is one. Errors only when `base` cannot be examined at all.
Result<std::vector<std::string>> barrier_problems(const std::string& base);

// barrier_problems(base), plus: guest roots not directly below base, and
// hash stores (those of `stores` that exist) that are inside a guest, not
// owned by root, or accessible by others than their owner.
Result<std::vector<std::string>> check_guest_base(const std::string& base,
                                                  const std::vector<Guest>& guests,
                                                  const std::vector<std::string>& stores);

// Whether `base` carries `backend`'s barrier attribute (mode 000 on
// mainline; the mark too under bpf).
Result<bool> has_barrier_attr(AttrBackend& backend, const std::string& base);

// Makes `base` a barrier: owner root, mode 000, and the barrier attribute
// where the back end has one; a hash store directory gets mode 0700.
Status set_guest_base_barrier(const std::string& base, const std::string& store,
                              AttrBackend& backend);

} // namespace vu
