// Splitting and comparing the relative and absolute paths the suite
// handles. Pure string functions; nothing touches the file system.
#pragma once

#include <string>
#include <string_view>
#include <utility>

namespace vu {

// {"usr/bin", "ls"} for "usr/bin/ls", {"", "ls"} for "ls"; views into path.
std::pair<std::string_view, std::string_view> split_path(std::string_view path);
// "usr/bin" for "usr/bin/ls", "" for "ls".
std::string parent_of(std::string_view path);
// "ls" for "usr/bin/ls".
std::string name_of(std::string_view path);
// True when `inner` is `outer` or lies below it (both absolute and
// symlink-free: "/vs/a/b" is within "/vs/a", "/vs/ab" is not).
bool path_within(const std::string& inner, const std::string& outer);

} // namespace vu
