// Barrier checks and set-up on the guest base directory.
#include "barrier/barrier.h"

#include "kernel/fs.h"

#include <cerrno>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace vu {

namespace {
std::string mode_string(mode_t m) {
  return std::to_string((m >> 6) & 7) + std::to_string((m >> 3) & 7) + std::to_string(m & 7);
}
} // namespace

Result<std::vector<std::string>> barrier_problems(const std::string& base) {
  std::vector<std::string> problems;
  struct stat st {};
  if (::lstat(base.c_str(), &st) != 0) {
    if (errno != ENOENT) return errno_error("guest base " + base);
    return described_error(ENOENT, "guest base " + base +
                                       " does not exist (name it, or set .defaults/vdirbase)");
  }
  if (S_ISLNK(st.st_mode)) {
    problems.push_back(base + " is a symlink; the barrier must be the real directory");
    if (::stat(base.c_str(), &st) != 0) return errno_error("stat " + base);
  }
  if (!S_ISDIR(st.st_mode)) {
    problems.push_back(base + " is not a directory");
    return problems;
  }
  if (st.st_uid != 0) problems.push_back(base + " is not owned by root (vbarrier set fixes it)");
  if ((st.st_mode & 07777) != 0)
    problems.push_back(base + " has mode " + mode_string(st.st_mode & 0777) +
                       ", not 000 (vbarrier set fixes it)");
  return problems;
}

Result<std::vector<std::string>> check_guest_base(const std::string& base,
                                                  const std::vector<Guest>& guests,
                                                  const std::vector<std::string>& stores) {
  VU_TRY_ASSIGN(problems, barrier_problems(base));
  auto real_base = real_path(base);
  std::string b = real_base.ok() ? *real_base : base;
  for (const auto& g : guests) {
    std::string parent = g.root.substr(0, g.root.rfind('/'));
    if (parent != b)
      problems.push_back("guest '" + g.name + "': root " + g.root + " is not directly below " + b +
                         " and not protected by its barrier");
  }
  for (const auto& store : stores) {
    struct stat st {};
    if (store.empty() || ::stat(store.c_str(), &st) != 0) continue;
    auto real_store = real_path(store);
    std::string s = real_store.ok() ? *real_store : store;
    for (const auto& g : guests)
      if (path_within(s, g.root))
        problems.push_back("hash store " + s + " is inside guest '" + g.name + "'");
    if (st.st_uid != 0)
      problems.push_back("hash store " + s + " is not owned by root (vbarrier set fixes it)");
    if (st.st_mode & 0077)
      problems.push_back("hash store " + s + " has mode " + mode_string(st.st_mode & 0777) +
                         ": accessible by others than root (vbarrier set fixes it)");
  }
  return problems;
}

namespace {

// The base's parent, opened, and the base's name in it.
struct BaseEntry {
  UniqueFd dir;
  std::string name;
  FileStat st;
};

Result<BaseEntry> open_base_entry(const std::string& base) {
  std::string parent = base.substr(0, base.rfind('/'));
  if (parent.empty()) parent = "/";
  VU_TRY_ASSIGN(dir, open_directory(parent));
  std::string name = base.substr(base.rfind('/') + 1);
  VU_TRY_ASSIGN(st, stat_at(dir.get(), name));
  return BaseEntry{std::move(dir), std::move(name), st};
}

} // namespace

Result<bool> has_barrier_attr(AttrBackend& backend, const std::string& base) {
  VU_TRY_ASSIGN(e, open_base_entry(base));
  VU_TRY_ASSIGN(attrs, backend.get(e.dir.get(), e.name, e.st));
  return (attrs.flags & k_attr_barrier) != 0;
}

Status set_guest_base_barrier(const std::string& base, const std::string& store,
                              AttrBackend& backend) {
  struct stat st {};
  if (::lstat(base.c_str(), &st) != 0) return errno_error("lstat " + base);
  if (!S_ISDIR(st.st_mode)) return described_error(ENOTDIR, base + " is not a real directory");
  if (::lchown(base.c_str(), 0, 0) != 0) return errno_error("chown " + base);
  VU_TRY_ASSIGN(e, open_base_entry(base));
  VU_TRY(backend.set(e.dir.get(), e.name, e.st, k_attr_barrier, 0));
  if (::chmod(base.c_str(), 0) != 0) return errno_error("chmod " + base);
  if (!store.empty() && ::stat(store.c_str(), &st) == 0) {
    if (::chown(store.c_str(), 0, 0) != 0) return errno_error("chown " + store);
    if (::chmod(store.c_str(), 0700) != 0) return errno_error("chmod " + store);
  }
  return {};
}

} // namespace vu
