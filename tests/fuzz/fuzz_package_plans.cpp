// libFuzzer target: what vapt-get and vrpm read from a guest - the tar
// stream of its dpkg-deb (fed in pieces whose size the first byte
// chooses), apt-get --simulate and --print-uris output, a dpkg file list,
// rpm's query output. Every name that comes out is absolute, bounded and
// free of "..".
#include "pkgmgmt/apt_plan.h"
#include "pkgmgmt/rpm_plan.h"
#include "pkgmgmt/tar_names.h"

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace {

void check_path(const std::string& p) {
  if (p.empty() || p[0] != '/' || p.size() > 4096 || p.find('\0') != std::string::npos)
    __builtin_trap();
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const size_t chunk = 1 + data[0] * 7;
  std::string_view text(reinterpret_cast<const char*>(data) + 1, size - 1);
  vu::TarNameReader reader(vu::TarLimits{1 << 20, 1000, 4096});
  bool ok = true;
  for (size_t i = 0; ok && i < text.size(); i += chunk)
    ok = reader.feed(text.substr(i, chunk)).ok();
  if (ok) (void)reader.finish();
  for (const auto& n : reader.names()) {
    check_path(n);
    if (n.find("/../") != std::string::npos || (n.size() >= 3 && n.ends_with("/..")))
      __builtin_trap();
  }
  if (auto steps = vu::parse_apt_simulation(text, 1000); steps.ok())
    for (const auto& s : *steps)
      if (s.package.empty() || s.package.find('/') != std::string::npos) __builtin_trap();
  if (auto uris = vu::parse_apt_print_uris(text, "/var/cache/apt/archives", 1000); uris.ok())
    for (const auto& p : *uris) check_path(p);
  if (auto list = vu::parse_dpkg_file_list(text, "fuzz", 1000); list.ok())
    for (const auto& p : *list) check_path(p);
  if (auto rpm = vu::parse_rpm_query(text, 1000); rpm.ok()) {
    for (const auto& p : rpm->paths) check_path(p);
    for (const auto& n : rpm->names)
      if (n.empty() || n.find('/') != std::string::npos || n.front() == '-') __builtin_trap();
  }
  return 0;
}
