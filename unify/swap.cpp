// The swap protocol (see swap.h).
#include "unify/swap.h"

#include "kernel/fs.h"

#include <fcntl.h>

namespace vu {

bool is_race(int code) {
  return code == ENOENT || code == ELOOP || code == ENOTDIR || code == EXDEV || code == ESTALE;
}

Result<std::string> link_to_temp(int fd, int dirfd, const TempNames& temps) {
  if (!temps.valid()) return described_error(EINVAL, "no key for temporary names (dry run?)");
  VU_TRY_ASSIGN(dir, stat_fd(dirfd));
  for (int attempt = 0;; ++attempt) {
    std::string tmp = temps.make(dir.dev, dir.ino);
    auto linked = link_fd(fd, dirfd, tmp);
    if (linked.ok()) return tmp;
    if (linked.code() != EEXIST || attempt == 7) return linked.error();
  }
}

Result<Swapped> swap_name(int to_fd, UniqueFd dir, const std::string& name, uint64_t old_dev,
                          uint64_t old_ino, const TempNames& temps) {
  VU_TRY_ASSIGN(tmp, link_to_temp(to_fd, dir.get(), temps));
  auto ex = rename_at(dir.get(), tmp, dir.get(), name, RENAME_EXCHANGE);
  if (!ex.ok()) {
    (void)unlink_at(dir.get(), tmp);
    return ex.error();
  }
  Swapped s{std::move(dir), name, tmp};
  // The name may have been replaced since it was examined: the exchange
  // tells, as the temporary now holds whatever was there.
  auto old = stat_at(s.dir.get(), s.tmp);
  if (!old.ok() || old->dev != old_dev || old->ino != old_ino) {
    auto undone = undo_swap(s);
    if (!undone.ok()) return undone.error();
    return described_error(ESTALE, name + " changed since it was examined");
  }
  return s;
}

Status undo_swap(Swapped& s) {
  VU_TRY(rename_at(s.dir.get(), s.tmp, s.dir.get(), s.name, RENAME_EXCHANGE));
  return unlink_at(s.dir.get(), s.tmp);
}

Status commit_swap(Swapped& s) {
  return unlink_at(s.dir.get(), s.tmp);
}

} // namespace vu
