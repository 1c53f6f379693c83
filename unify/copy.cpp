// Copying files (see copy.h).
#include "unify/copy.h"

#include "unify/hash.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace vu {

Status copy_data(int from, int to, uint64_t size, uint64_t& copied) {
  off_t pos = 0;
  while (static_cast<uint64_t>(pos) < size) {
    off_t data = ::lseek(from, pos, SEEK_DATA);
    if (data < 0) {
      if (errno == ENXIO) break; // only a hole is left
      return errno_error("lseek SEEK_DATA");
    }
    off_t hole = ::lseek(from, data, SEEK_HOLE);
    if (hole < 0) return errno_error("lseek SEEK_HOLE");
    off_t in = data, out = data;
    while (in < hole) {
      ssize_t n = ::copy_file_range(from, &in, to, &out, static_cast<size_t>(hole - in), 0);
      if (n < 0) {
        if (errno == EINTR) continue;
        return errno_error("copy_file_range");
      }
      if (n == 0) break;
      copied += static_cast<uint64_t>(n);
    }
    pos = hole;
  }
  if (::ftruncate(to, static_cast<off_t>(size)) != 0) return errno_error("ftruncate");
  return {};
}

Status copy_metadata(int from, int to) {
  struct stat st {};
  if (::fstat(from, &st) != 0) return errno_error("fstat");
  if (::fchown(to, st.st_uid, st.st_gid) != 0) return errno_error("fchown");
  VU_TRY_ASSIGN(names, list_xattrs(from));
  for (const auto& n : names) {
    VU_TRY_ASSIGN(value, get_xattr(from, n));
    VU_TRY(set_xattr(to, n, value));
  }
  if (::fchmod(to, st.st_mode & 07777) != 0) return errno_error("fchmod");
  struct timespec times[2] = {st.st_atim, st.st_mtim};
  if (::futimens(to, times) != 0) return errno_error("futimens");
  return {};
}

Result<UniqueFd> make_private_copy(int from, int dirfd, uint64_t size, uint64_t& copied) {
  int raw = ::openat(dirfd, ".", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
  if (raw < 0) return make_error(errno, "O_TMPFILE");
  UniqueFd copy(raw);
  VU_TRY(copy_data(from, copy.get(), size, copied));
  VU_TRY(copy_metadata(from, copy.get()));
  VU_TRY_ASSIGN(same, same_content(from, copy.get(), size));
  if (!same) return described_error(ESTALE, "changed while it was copied");
  // Handed on read-only: no writable descriptor of a file that is about to
  // be shared stays open (a read lease on it needs none to exist).
  std::string self = "/proc/self/fd/" + std::to_string(copy.get());
  int ro = ::open(self.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY);
  if (ro < 0) return make_error(errno, "reopen the copy read-only");
  return UniqueFd(ro);
}

} // namespace vu
