// libFuzzer target: dpkg's info/<pkg>.conffiles lists (flag words before
// the path, Debian 12) and the status file's Conffiles field, as a hostile
// guest could write them. Every path returned is absolute and bounded.
#include "pkgmgmt/config_files.h"

#include <cstddef>
#include <cstdint>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  for (auto list :
       {vu::parse_path_list(text, "fuzz", 10000), vu::parse_conffiles_field(text, "fuzz", 10000)}) {
    if (!list.ok()) continue;
    for (const auto& p : *list)
      if (p.empty() || p[0] != '/' || p.size() > 4096 || p.find('\0') != std::string::npos)
        __builtin_trap();
  }
  return 0;
}
