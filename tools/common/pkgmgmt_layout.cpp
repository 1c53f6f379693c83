// The apps/pkgmgmt layout (see pkgmgmt_layout.h).
#include "tools/common/pkgmgmt_layout.h"

#include "kernel/fs.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <climits>
#include <cstdlib>

namespace vu {

namespace {

bool exists_no_follow(const std::string& path) {
  struct stat st {};
  return ::lstat(path.c_str(), &st) == 0;
}

// apps/pkgmgmt/<own> when it exists, else BASE/<fallback>.
std::string item(const PkgmgmtLayout& l, const char* own, const char* fallback) {
  const std::string p = l.dir + "/" + own;
  return exists_no_follow(p) ? p : l.base + "/" + fallback;
}

Status make_dirs(const std::string& path) {
  for (size_t i = 1; i <= path.size(); ++i) {
    if (i < path.size() && path[i] != '/') continue;
    const std::string part = path.substr(0, i);
    if (::mkdir(part.c_str(), 0755) != 0 && errno != EEXIST)
      return make_error(errno, "mkdir " + part);
  }
  return {};
}

bool beneath(const std::string& path, const std::string& dir) {
  return path == dir || (path.size() > dir.size() && path.compare(0, dir.size(), dir) == 0 &&
                         (dir == "/" || path[dir.size()] == '/'));
}

} // namespace

PkgmgmtLayout pkgmgmt_layout(const ConfigBase& base, const Guest& guest) {
  PkgmgmtLayout l;
  if (guest.confdir.empty()) return l;
  l.dir = guest.confdir + "/apps/pkgmgmt";
  const std::string defaults = base.dir() + "/.defaults/apps/pkgmgmt/base";
  if (exists_no_follow(l.dir + "/base"))
    l.base = l.dir + "/base";
  else if (exists_no_follow(defaults))
    l.base = defaults + "/" + guest.name;
  else
    l.base = base.vdirbase() + "/.pkg/" + guest.name;
  l.dpkg_state = item(l, "dpkgstate", "dpkg/state");
  l.rpm_state = item(l, "rpmstate", "rpm/state");
  l.apt_etc = item(l, "aptetc", "apt/etc");
  l.apt_state = item(l, "aptstate", "apt/state");
  l.apt_cache = item(l, "aptcache", "apt/cache");
  l.apt_archives = item(l, "aptarchives", "apt/archives");
  l.apt_conf = l.dir + "/apt.conf";
  l.internal_marker = exists_no_follow(l.dir + "/internal");
  return l;
}

bool database_is_external(const PkgmgmtLayout& l, PackageDb db) {
  if (l.dir.empty() || l.internal_marker) return false;
  struct stat st {};
  return ::stat(l.state(db).c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

const char* database_path_in_guest(PackageDb db) {
  return db == PackageDb::dpkg ? "var/lib/dpkg" : "var/lib/rpm";
}

Result<UniqueFd> open_layout_dir(const std::string& path, const Guest& guest, bool create) {
  if (create) VU_TRY(make_dirs(path));
  char real[PATH_MAX];
  if (!::realpath(path.c_str(), real)) return make_error(errno, path);
  char guest_real[PATH_MAX];
  if (!::realpath(guest.root.c_str(), guest_real)) return make_error(errno, guest.root);
  if (beneath(real, guest_real) || beneath(guest_real, real))
    return described_error(EPERM, path + " lies in the guest's root " + guest.root +
                                      " or holds it: the external package database must be the "
                                      "host's (see apps/pkgmgmt in vserver(8))");
  int fd = ::open(real, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return make_error(errno, path);
  UniqueFd dir(fd);
  VU_TRY_ASSIGN(st, stat_fd(fd));
  if (st.uid != 0 || (st.mode & 022))
    return described_error(EPERM, path + " must belong to root and not be writable by group or "
                                         "others");
  return dir;
}

} // namespace vu
