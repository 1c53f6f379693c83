// Bounded parser for one-path-per-line lists read from guests.
#include "pkgmgmt/config_files.h"

#include <algorithm>

namespace vu {

Result<std::vector<std::string>> parse_path_list(std::string_view text, std::string_view origin,
                                                 size_t max_entries) {
  std::vector<std::string> out;
  size_t line_no = 0;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t eol = text.find('\n', pos);
    if (eol == std::string_view::npos) eol = text.size();
    std::string_view line = text.substr(pos, eol - pos);
    pos = eol + 1;
    ++line_no;
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.remove_suffix(1);
    if (line.empty()) continue;
    auto where = [&] { return std::string(origin) + ":" + std::to_string(line_no); };
    if (line.size() > 4096) return make_error(EINVAL, where() + ": line too long");
    if (line.find('\0') != std::string_view::npos)
      return make_error(EINVAL, where() + ": NUL byte in path");
    if (line.front() != '/') return make_error(EINVAL, where() + ": not an absolute path");
    // "path flag" forms: a flag word is a trailing lower-case word.
    auto sp = line.rfind(' ');
    if (sp != std::string_view::npos) {
      std::string_view word = line.substr(sp + 1);
      if (word == "obsolete" || word == "remove-on-upgrade") line = line.substr(0, sp);
    }
    if (out.size() >= max_entries) return make_error(E2BIG, where() + ": too many entries");
    out.emplace_back(line);
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

} // namespace vu
