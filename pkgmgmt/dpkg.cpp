// dpkg: configuration files from the status file's Conffiles fields, read
// with libapt-pkg's pkgTagFile (its package cache has no conffile data),
// united with info/<pkg>.conffiles as a cross-check.
//
// The status file is read into memory through a descriptor opened beneath
// the admin directory (no symlinks, bounded size) and handed to pkgTagFile
// through a FileFd on that descriptor's copy in a memfd, so libapt-pkg never
// opens a path itself. dpkg ends every stanza with an empty line; a file
// that does not end in "\n\n" was truncated.
#include "pkgmgmt/config_files.h"

#include "kernel/fs.h"

#include <apt-pkg/error.h>
#include <apt-pkg/fileutl.h>
#include <apt-pkg/tagfile.h>

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>

namespace vu {

namespace {

std::string apt_errors() {
  std::string msg;
  while (!_error->empty()) {
    std::string m;
    _error->PopMessage(m);
    if (!msg.empty()) msg += "; ";
    msg += m;
  }
  return msg;
}

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
  // pkgTagFile reads from a FileFd; give it an in-memory copy.
  int mfd = ::memfd_create("vunify-dpkg-status", MFD_CLOEXEC);
  if (mfd < 0) return errno_error("memfd_create");
  UniqueFd owned(mfd);
  if (::write(mfd, text.data(), text.size()) != static_cast<ssize_t>(text.size()) ||
      ::lseek(mfd, 0, SEEK_SET) != 0)
    return errno_error("memfd write");
  FileFd file;
  _error->Discard();
  if (!file.OpenDescriptor(owned.release(), FileFd::ReadOnly, FileFd::None, true))
    return described_error(EIO, "dpkg status " + where + ": " + apt_errors());
  pkgTagFile tags(&file);
  pkgTagSection section;
  uint64_t stanza = 0;
  while (tags.Step(section)) {
    ++stanza;
    std::string pkg = section.FindS("Package");
    if (pkg.empty() || !section.Exists("Status"))
      return described_error(EINVAL, "dpkg status " + where + ": stanza " + std::to_string(stanza) +
                                         " has no Package or Status field");
    ++src.packages;
    std::string conffiles = section.FindS("Conffiles");
    if (conffiles.empty()) continue;
    auto list = parse_conffiles_field(conffiles, where + " (" + pkg + ")", limits.max_entries);
    if (!list.ok()) return described_error(EINVAL, "dpkg status: " + list.error().message());
    from_status.insert(from_status.end(), list->begin(), list->end());
    if (from_status.size() > limits.max_entries)
      return described_error(E2BIG, "dpkg status " + where + ": too many conffiles");
  }
  if (_error->PendingError())
    return described_error(EINVAL, "dpkg status " + where + ": " + apt_errors());
  _error->Discard();
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
