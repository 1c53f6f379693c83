// dpkg: configuration files from the status file's Conffiles fields,
// united with info/<pkg>.conffiles as a cross-check.
//
// The status file is read into memory through a descriptor opened beneath
// the admin directory (no symlinks, bounded size) and parsed here, in the
// format dpkg writes (deb822 stanzas: "Field: value" lines, continuation
// lines that start with a blank, an empty line after every stanza). A file
// that does not end in "\n\n" was truncated. (libapt-pkg's pkgTagFile
// read it before; linking libapt-pkg cost every run 5 MB of memory and
// about 1 ms of start-up: ARCHITECTURE.md, "Package libraries".)
#include "pkgmgmt/config_files.h"

#include "kernel/fs.h"
#include "pkgmgmt/text_lines.h"

#include <fcntl.h>

#include <algorithm>

namespace vu {

namespace {

bool iequals(std::string_view a, std::string_view b) {
  auto lower = [](char c) { return c >= 'A' && c <= 'Z' ? char(c - 'A' + 'a') : c; };
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(),
                                            [&](char x, char y) { return lower(x) == lower(y); });
}

bool is_blank(char c) {
  return c == ' ' || c == '\t';
}

std::string_view trim_blanks(std::string_view v) {
  while (!v.empty() && is_blank(v.front())) v.remove_prefix(1);
  while (!v.empty() && (is_blank(v.back()) || v.back() == '\r')) v.remove_suffix(1);
  return v;
}

// dpkg's rule for package names: an alphanumeric first, then alphanumerics
// and "+-._". Anything else did not come from dpkg (and would end up in
// messages).
bool is_package_name(std::string_view n) {
  auto alnum = [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
  };
  return !n.empty() && n.size() <= 256 && alnum(n.front()) &&
         std::all_of(n.begin(), n.end(), [&](char c) {
           return alnum(c) || c == '+' || c == '-' || c == '.' || c == '_';
         });
}

// A field name: printable ASCII without blanks or ':'.
bool is_field_name(std::string_view n) {
  return !n.empty() && n.size() <= 256 &&
         std::all_of(n.begin(), n.end(), [](char c) { return c > ' ' && c < 0x7f && c != ':'; });
}

// The fields of one stanza this reader needs, as views into the text; a
// value runs from after "Field:" to the end of its last continuation line.
struct Stanza {
  std::string_view package, conffiles;
  bool has_package = false, has_status = false, has_conffiles = false;
  std::string_view* continued = nullptr; // the value continuation lines extend
  uint64_t lines = 0;                    // so far; the first one must be a field
};

} // namespace

Status parse_dpkg_status(std::string_view text, const std::string& where, const ReadLimits& limits,
                         PackageDbSource& src, std::vector<std::string>& from_status) {
  if (text.size() > limits.max_db_bytes)
    return described_error(EFBIG, "dpkg status " + where + ": too large");
  if (!text.empty() && (text.size() < 2 || text.substr(text.size() - 2) != "\n\n"))
    return described_error(EINVAL,
                           "dpkg status " + where + ": truncated (no empty line at the end)");
  if (text.find('\0') != std::string_view::npos)
    return described_error(EINVAL, "dpkg status " + where + ": NUL byte, not a status file");
  if (text.empty()) return {};

  uint64_t stanza_no = 0;
  Stanza st;
  auto bad = [&](uint64_t line_no, const std::string& what) {
    return described_error(EINVAL,
                           "dpkg status " + where + ":" + std::to_string(line_no) + ": " + what);
  };
  // The end of a stanza: check it and take its conffiles.
  auto finish = [&](uint64_t line_no) -> Status {
    ++stanza_no;
    if (!st.has_package || !st.has_status)
      return described_error(EINVAL, "dpkg status " + where + ": stanza " +
                                         std::to_string(stanza_no) + " (ending at line " +
                                         std::to_string(line_no) +
                                         ") has no Package or Status field");
    ++src.packages;
    std::string_view conffiles = trim_blanks(st.conffiles);
    if (!conffiles.empty()) {
      auto list = parse_conffiles_field(conffiles, where + " (" + std::string(st.package) + ")",
                                        limits.max_entries);
      if (!list.ok()) return described_error(EINVAL, "dpkg status: " + list.error().message());
      from_status.insert(from_status.end(), list->begin(), list->end());
      if (from_status.size() > limits.max_entries)
        return described_error(E2BIG, "dpkg status " + where + ": too many conffiles");
    }
    st = Stanza{};
    return {};
  };
  auto take_line = [&](std::string_view line, uint64_t line_no) -> Status {
    if (line.empty()) { // between stanzas, or the end of one
      if (st.lines > 0) VU_TRY(finish(line_no));
      return {};
    }
    if (is_blank(line.front())) { // a continuation line
      if (st.lines++ == 0) return bad(line_no, "continuation line outside a field");
      if (st.continued) {
        auto begin = st.continued->data();
        *st.continued = std::string_view(begin, line.data() + line.size() - begin);
      }
      return {};
    }
    ++st.lines;
    auto colon = line.find(':');
    std::string_view name = line.substr(0, colon);
    if (colon == std::string_view::npos || !is_field_name(name))
      return bad(line_no, "not a \"Field: value\" line");
    std::string_view value = line.substr(colon + 1);
    while (!value.empty() && is_blank(value.front())) value.remove_prefix(1);
    st.continued = nullptr;
    auto once = [&](bool& seen) -> Status {
      if (seen) return bad(line_no, "field " + std::string(name) + " twice in one stanza");
      seen = true;
      return {};
    };
    if (iequals(name, "Package")) {
      VU_TRY(once(st.has_package));
      st.package = trim_blanks(value);
      if (!is_package_name(st.package)) return bad(line_no, "not a package name");
    } else if (iequals(name, "Status")) {
      VU_TRY(once(st.has_status));
    } else if (iequals(name, "Conffiles")) {
      VU_TRY(once(st.has_conffiles));
      st.conffiles = value;
      st.continued = &st.conffiles;
    }
    return {};
  };
  VU_TRY(for_each_line(text, take_line));
  if (src.packages == 0)
    return described_error(EINVAL, "dpkg status " + where + ": no package stanza found");
  return {};
}

Result<PackageDbSource> read_dpkg_config_files(int admin_fd, const std::string& display,
                                               const ReadLimits& limits,
                                               std::vector<std::string>& paths) {
  const std::string where = display + "/status";
  FileStat st;
  auto text = read_file_beneath(admin_fd, "status", limits.max_db_bytes, &st);
  if (!text.ok()) {
    if (text.code() == ENOENT) return text.error();
    return described_error(text.code(), "dpkg status " + where + ": " + text.error().message());
  }
  PackageDbSource src;
  src.kind = "dpkg";
  src.location = where;
  src.dev = st.dev;
  src.ino = st.ino;
  src.size = st.size;
  src.mtime_ns = st.mtime_ns;
  std::vector<std::string> from_status;
  VU_TRY(parse_dpkg_status(*text, where, limits, src, from_status));
  std::sort(from_status.begin(), from_status.end());
  from_status.erase(std::unique(from_status.begin(), from_status.end()), from_status.end());

  // Cross-check: info/<pkg>.conffiles.
  std::vector<std::string> from_info;
  auto info = open_beneath(admin_fd, "info", O_RDONLY | O_DIRECTORY);
  if (!info.ok() && info.code() != ENOENT)
    return described_error(info.code(),
                           "dpkg info directory " + display + "/info: " + info.error().message());
  if (info.ok()) {
    auto entries = read_directory(info->get());
    if (!entries.ok())
      return described_error(entries.code(), display + "/info: " + entries.error().message());
    for (const auto& e : *entries) {
      const std::string suffix = ".conffiles";
      if (e.name.size() <= suffix.size() ||
          e.name.compare(e.name.size() - suffix.size(), suffix.size(), suffix) != 0)
        continue;
      auto data = read_file_beneath(info->get(), e.name, limits.max_list_bytes);
      if (!data.ok())
        return described_error(data.code(), "dpkg " + display + "/info/" + e.name + ": " +
                                                data.error().message());
      auto list = parse_path_list(*data, display + "/info/" + e.name, limits.max_entries);
      if (!list.ok()) return list.error();
      from_info.insert(from_info.end(), list->begin(), list->end());
      if (from_info.size() > limits.max_entries)
        return described_error(E2BIG, "dpkg " + display + "/info: too many conffiles");
    }
  }
  std::sort(from_info.begin(), from_info.end());
  from_info.erase(std::unique(from_info.begin(), from_info.end()), from_info.end());
  std::vector<std::string> only_info;
  std::set_difference(from_info.begin(), from_info.end(), from_status.begin(), from_status.end(),
                      std::back_inserter(only_info));
  src.cross_check_only = only_info.size();

  std::vector<std::string> all;
  std::set_union(from_status.begin(), from_status.end(), from_info.begin(), from_info.end(),
                 std::back_inserter(all));
  src.config_files = all.size();
  paths.insert(paths.end(), all.begin(), all.end());
  return src;
}

} // namespace vu
