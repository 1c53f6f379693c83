// vserver NAME build: a new guest - its configuration directory and its
// root, filled by debootstrap or left as a skeleton.
#pragma once

#include <string>
#include <vector>

namespace vu {

int run_build(const std::string& confdir, const std::string& name,
              const std::vector<std::string>& args);

} // namespace vu
