// /proc/locks and /proc/PID/root.
//
// /proc/locks prints one line per lock or lease, and below a lease that is
// being broken one "->" line per process waiting for it, with the same
// ordinal:
//   7: LEASE  BREAKING  UNLCK 20499 fe:00:10953485 0 EOF
//   7: -> LEASE  BREAKER   WRITE 20500 <none>:0 0 EOF
// (pid, then major:minor in hex and the inode number). Lines are read with
// bounds; anything that does not parse is skipped.
#include "kernel/proc.h"

#include "kernel/fs.h"

#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <charconv>
#include <string>

namespace vu {

namespace {

std::vector<std::string_view> words(std::string_view line) {
  std::vector<std::string_view> out;
  size_t i = 0;
  while (i < line.size() && out.size() < 16) {
    while (i < line.size() && line[i] == ' ') ++i;
    size_t j = i;
    while (j < line.size() && line[j] != ' ') ++j;
    if (j > i) out.push_back(line.substr(i, j - i));
    i = j;
  }
  return out;
}

template <typename T> bool number(std::string_view s, T& out, int base = 10) {
  auto r = std::from_chars(s.data(), s.data() + s.size(), out, base);
  return r.ec == std::errc() && r.ptr == s.data() + s.size();
}

} // namespace

std::vector<pid_t> parse_lease_waiters(std::string_view text, pid_t holder, uint64_t dev,
                                       uint64_t ino) {
  std::vector<pid_t> out;
  std::string_view ours; // ordinal of our lease, e.g. "7:"
  while (!text.empty()) {
    size_t eol = text.find('\n');
    std::string_view line = text.substr(0, eol);
    text.remove_prefix(eol == std::string_view::npos ? text.size() : eol + 1);
    auto w = words(line);
    if (w.size() < 6) continue;
    if (w[1] == "->") {
      // "N: -> LEASE BREAKER WRITE pid ..."
      pid_t pid = 0;
      if (!ours.empty() && w[0] == ours && w.size() >= 6 && w[2] == "LEASE" && number(w[5], pid))
        out.push_back(pid);
      continue;
    }
    // "N: LEASE <state> <type> pid maj:min:ino ..."
    if (w[1] != "LEASE") {
      ours = {};
      continue;
    }
    pid_t pid = 0;
    unsigned maj = 0, min = 0;
    uint64_t i = 0;
    std::string_view id = w[5];
    size_t c1 = id.find(':'), c2 = id.rfind(':');
    bool match = number(w[4], pid) && pid == holder && c1 != std::string_view::npos && c2 > c1 &&
                 number(id.substr(0, c1), maj, 16) &&
                 number(id.substr(c1 + 1, c2 - c1 - 1), min, 16) && number(id.substr(c2 + 1), i) &&
                 makedev(maj, min) == dev && i == ino;
    ours = match ? w[0] : std::string_view();
  }
  return out;
}

std::vector<pid_t> lease_waiters(pid_t holder, uint64_t dev, uint64_t ino) {
  auto text = read_host_file("/proc/locks", 64ull << 20);
  // /proc files report size 0: read_host_file reads up to the bound.
  if (!text.ok()) return {};
  return parse_lease_waiters(*text, holder, dev, ino);
}

Result<std::pair<uint64_t, uint64_t>> process_root(pid_t pid) {
  struct stat st {};
  std::string p = "/proc/" + std::to_string(pid) + "/root";
  if (::stat(p.c_str(), &st) != 0) return make_error(errno, "stat " + p);
  return std::make_pair(static_cast<uint64_t>(st.st_dev), static_cast<uint64_t>(st.st_ino));
}

} // namespace vu
