// Barrier checks on the guest base directory.
#include "barrier/barrier.h"

#include <sys/stat.h>

namespace vu {

Result<std::vector<std::string>> barrier_problems(const std::string& base) {
  std::vector<std::string> problems;
  struct stat st {};
  if (::lstat(base.c_str(), &st) != 0) return errno_error("lstat " + base);
  if (S_ISLNK(st.st_mode)) {
    problems.push_back(base + " is a symlink; the barrier must be the real directory");
    if (::stat(base.c_str(), &st) != 0) return errno_error("stat " + base);
  }
  if (!S_ISDIR(st.st_mode)) {
    problems.push_back(base + " is not a directory");
    return problems;
  }
  if (st.st_uid != 0) problems.push_back(base + " is not owned by root");
  if ((st.st_mode & 07777) != 0)
    problems.push_back(base + " has mode " + std::to_string((st.st_mode >> 6) & 7) +
                       std::to_string((st.st_mode >> 3) & 7) + std::to_string(st.st_mode & 7) +
                       ", not 000");
  return problems;
}

} // namespace vu
