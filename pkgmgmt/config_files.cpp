// Locating package databases, bounded path-list parsers, and the reader
// that combines dpkg and RPM for one guest.
#include "pkgmgmt/config_files.h"

#include "kernel/fs.h"

#include <algorithm>
#include <fcntl.h>
#include <set>
#include <sys/stat.h>

namespace vu {

namespace {

bool is_dir(const std::string& p) {
  struct stat st {};
  return ::stat(p.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

// Strips trailing blanks and CR; checks the common rules for one path.
Status check_path(std::string_view line, const std::string& where) {
  if (line.size() > 4096) return described_error(EINVAL, where + ": line too long");
  if (line.find('\0') != std::string_view::npos)
    return described_error(EINVAL, where + ": NUL byte in path");
  if (line.empty() || line.front() != '/')
    return described_error(EINVAL, where + ": not an absolute path");
  return {};
}

bool is_flag_word(std::string_view w) {
  return w == "obsolete" || w == "remove-on-upgrade";
}

// A flag word dpkg writes before the path in info/<pkg>.conffiles
// ("remove-on-upgrade /etc/x", dpkg 1.21): lower-case letters and '-'.
// dpkg refuses flags it does not know; here an unknown one only keeps the
// path private, which is safe.
bool is_leading_flag(std::string_view w) {
  return !w.empty() &&
         std::all_of(w.begin(), w.end(), [](char c) { return (c >= 'a' && c <= 'z') || c == '-'; });
}

template <typename LineFn>
Result<std::vector<std::string>> parse_lines(std::string_view text, std::string_view origin,
                                             size_t max_entries, LineFn fn) {
  std::vector<std::string> out;
  size_t line_no = 0;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t eol = text.find('\n', pos);
    if (eol == std::string_view::npos) eol = text.size();
    std::string_view line = text.substr(pos, eol - pos);
    pos = eol + 1;
    ++line_no;
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ' || line.back() == '\t'))
      line.remove_suffix(1);
    while (!line.empty() && (line.front() == ' ' || line.front() == '\t')) line.remove_prefix(1);
    if (line.empty()) continue;
    std::string where = std::string(origin) + ":" + std::to_string(line_no);
    auto path = fn(line, where);
    if (!path.ok()) return path.error();
    if (out.size() >= max_entries) return described_error(E2BIG, where + ": too many entries");
    out.push_back(std::move(path).value());
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

} // namespace

Result<std::vector<std::string>> parse_path_list(std::string_view text, std::string_view origin,
                                                 size_t max_entries) {
  return parse_lines(text, origin, max_entries,
                     [](std::string_view line, const std::string& where) -> Result<std::string> {
                       // Flags before the path (dpkg 1.21 and later)...
                       while (!line.empty() && line.front() != '/') {
                         auto sp = line.find(' ');
                         if (sp == std::string_view::npos || !is_leading_flag(line.substr(0, sp)))
                           break;
                         line.remove_prefix(sp + 1);
                         while (!line.empty() && line.front() == ' ') line.remove_prefix(1);
                       }
                       // ... and after it (older lists written by hand).
                       auto sp = line.rfind(' ');
                       if (sp != std::string_view::npos && is_flag_word(line.substr(sp + 1)))
                         line = line.substr(0, sp);
                       VU_TRY(check_path(line, where));
                       return std::string(line);
                     });
}

Result<std::vector<std::string>>
parse_conffiles_field(std::string_view text, std::string_view origin, size_t max_entries) {
  return parse_lines(text, origin, max_entries,
                     [](std::string_view line, const std::string& where) -> Result<std::string> {
                       // From the right: optional flag word, then the hash.
                       auto sp = line.rfind(' ');
                       if (sp != std::string_view::npos && is_flag_word(line.substr(sp + 1))) {
                         line = line.substr(0, sp);
                         while (!line.empty() && line.back() == ' ') line.remove_suffix(1);
                         sp = line.rfind(' ');
                       }
                       if (sp == std::string_view::npos)
                         return described_error(EINVAL, where + ": conffile line without a hash");
                       std::string_view hash = line.substr(sp + 1);
                       bool hex = !hash.empty() && hash.size() <= 128 &&
                                  std::all_of(hash.begin(), hash.end(), [](char c) {
                                    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
                                  });
                       if (!hex && hash != "newconffile")
                         return described_error(EINVAL, where + ": bad conffile hash");
                       line = line.substr(0, sp);
                       while (!line.empty() && line.back() == ' ') line.remove_suffix(1);
                       VU_TRY(check_path(line, where));
                       return std::string(line);
                     });
}

PackageDbLocation locate_package_dbs(const Guest& guest, const ConfigBase& config) {
  PackageDbLocation loc;
  if (guest.confdir.empty()) return loc;
  std::string app = guest.confdir + "/apps/pkgmgmt";
  if (path_exists(app + "/internal")) return loc;
  std::string base = app + "/base";
  if (!is_dir(base)) {
    auto def = real_path(config.dir() + "/.defaults/apps/pkgmgmt/base");
    base = def.ok() ? def.value() + "/" + guest.name : config.vdirbase() + "/.pkg/" + guest.name;
  }
  auto pick = [&](const std::string& own, const std::string& sub) -> std::string {
    if (is_dir(app + "/" + own)) return real_path(app + "/" + own).value();
    if (!base.empty() && is_dir(base + "/" + sub)) return real_path(base + "/" + sub).value();
    return {};
  };
  loc.dpkg_admin_dir = pick("dpkgstate", "dpkg/state");
  loc.rpm_db_dir = pick("rpmstate", "rpm/state");
  return loc;
}

Result<GuestConfigFiles> read_guest_config_files(int root_fd, const PackageDbLocation& loc,
                                                 const ReadLimits& limits) {
  GuestConfigFiles out;
  // A database directory: external (a host path), or inside the guest,
  // resolved as the guest would: its symlinks are followed but never out
  // of it (RPM's var/lib/rpm -> ../../usr/lib/sysimage/rpm; an absolute
  // target means the guest's own path). The files in it are then read
  // beneath it without following symlinks.
  auto open_dir = [&](const std::string& external, const char* internal) -> Result<UniqueFd> {
    if (!external.empty()) return open_directory(external);
    return open_in_root(root_fd, internal, O_RDONLY | O_DIRECTORY);
  };
  using Reader = Result<PackageDbSource> (*)(int, const std::string&, const ReadLimits&,
                                             std::vector<std::string>&);
  struct Db {
    const char* kind;
    const std::string& external;
    const char* internal;
    Reader read;
  };
  // RPM 4.17 and later keep the database in usr/lib/sysimage/rpm (with
  // var/lib/rpm a link to it, or gone): looked at when var/lib/rpm has none.
  static const std::string k_no_external;
  const Db dbs[] = {{"dpkg", loc.dpkg_admin_dir, "var/lib/dpkg", read_dpkg_config_files},
                    {"rpm", loc.rpm_db_dir, "var/lib/rpm", read_rpm_config_files},
                    {"rpm", loc.rpm_db_dir.empty() ? k_no_external : loc.rpm_db_dir,
                     "usr/lib/sysimage/rpm", read_rpm_config_files}};
  std::set<std::pair<uint64_t, uint64_t>> read_dirs; // a database reached twice is read once
  for (const Db& db : dbs) {
    // ENOENT anywhere means "no such database": not an error.
    std::string display = db.external.empty() ? std::string("/") + db.internal : db.external;
    auto dir = open_dir(db.external, db.internal);
    if (!dir.ok() && dir.code() != ENOENT)
      return described_error(dir.code(), std::string(db.kind) + " database " + display + ": " +
                                             dir.error().message());
    if (!dir.ok()) continue;
    auto dir_st = stat_fd(dir->get());
    if (dir_st.ok() && !read_dirs.insert({dir_st->dev, dir_st->ino}).second) continue;
    auto src = db.read(dir->get(), display, limits, out.paths);
    if (src.ok())
      out.sources.push_back(*src);
    else if (src.code() != ENOENT)
      return src.error();
  }
  std::sort(out.paths.begin(), out.paths.end());
  out.paths.erase(std::unique(out.paths.begin(), out.paths.end()), out.paths.end());
  if (out.paths.size() > limits.max_entries)
    return described_error(E2BIG, "too many configuration files");
  return out;
}

} // namespace vu
