#include "kernel/path.h"

namespace vu {

std::pair<std::string_view, std::string_view> split_path(std::string_view path) {
  auto pos = path.rfind('/');
  if (pos == std::string_view::npos) return {std::string_view(), path};
  return {path.substr(0, pos), path.substr(pos + 1)};
}

std::string parent_of(std::string_view path) {
  return std::string(split_path(path).first);
}

std::string name_of(std::string_view path) {
  return std::string(split_path(path).second);
}

bool path_within(const std::string& inner, const std::string& outer) {
  if (outer == "/") return !inner.empty() && inner[0] == '/';
  return inner == outer ||
         (inner.size() > outer.size() && inner.compare(0, outer.size(), outer) == 0 &&
          inner[outer.size()] == '/');
}

} // namespace vu
