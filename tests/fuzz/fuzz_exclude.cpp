// libFuzzer target: exclude lists as an administrator (or a hostile guest's
// confdir file, if one leaked) could write them, and the paths a guest
// names. The input is a list, a NUL byte, then paths separated by '\n'.
// Parsing must give a list or an error; matching must end in time linear
// in pattern x path (libFuzzer's -timeout catches a backtracking matcher).
#include "unify/exclude.h"

#include <cstddef>
#include <cstdint>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  size_t nul = in.find('\0');
  std::string_view rules = in.substr(0, nul);
  std::string_view paths = nul == std::string_view::npos ? std::string_view() : in.substr(nul + 1);
  auto list = vu::ExcludeList::parse(rules, "fuzz");
  if (!list.ok()) return 0;
  while (!paths.empty()) {
    size_t eol = paths.find('\n');
    std::string_view path = paths.substr(0, eol);
    paths.remove_prefix(eol == std::string_view::npos ? paths.size() : eol + 1);
    (void)list->match(path);
    (void)vu::secret_files().match(path);
  }
  return 0;
}
