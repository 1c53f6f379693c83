// libFuzzer target: the dpkg status parser (stanzas and Conffiles lines)
// on arbitrary bytes, as a hostile guest could write them. Any input must
// give a result or an error, never a crash, a hang or a sanitizer report.
#include "pkgmgmt/config_files.h"

#include <cstddef>
#include <cstdint>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  vu::ReadLimits limits;
  limits.max_db_bytes = 1 << 20;
  limits.max_entries = 10000;
  vu::PackageDbSource src;
  std::vector<std::string> paths;
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto status = vu::parse_dpkg_status(text, "fuzz", limits, src, paths);
  (void)status;
  auto list = vu::parse_path_list(text, "fuzz", 10000);
  (void)list;
  return 0;
}
