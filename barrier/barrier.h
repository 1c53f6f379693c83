// The chroot barrier: the directory that holds the guest roots (default
// /vservers) must not be traversable by a guest's root (mode 000, owned by
// root, a real directory). This module checks that; setting it, and the
// Linux-VServer barrier attribute, come with setattr.
#pragma once

#include "kernel/result.h"

#include <string>
#include <vector>

namespace vu {

// Every way `base` fails to be a barrier, one sentence each; empty when it
// is one. Errors only when `base` cannot be examined at all.
Result<std::vector<std::string>> barrier_problems(const std::string& base);

} // namespace vu
