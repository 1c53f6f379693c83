// The rules of the seccomp filter every process of a guest runs under,
// built with libseccomp. Only the build uses them: vu-seccomp-gen
// (core/seccomp_gen.cpp) compiles them once into a BPF program, which
// confine.cpp loads with seccomp(2) - no filter compiled per exec, and no
// libseccomp in the programs.
#pragma once

#include "kernel/result.h"

#include <seccomp.h>

namespace vu {

// Adds the guest's rules, for x86-64, i386 and x32 (otherwise `int 0x80`
// would reach every call the native filter refuses), to `ctx` made with
// seccomp_init(SCMP_ACT_ALLOW); clears no_new_privs (libseccomp's default
// sets it): a guest's users must still gain root through su, sudo or
// passwd, and ping its file capability - within the guest's bounding set.
Status add_guest_rules(scmp_filter_ctx ctx);

} // namespace vu
