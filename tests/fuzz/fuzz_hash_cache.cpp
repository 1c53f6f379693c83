// libFuzzer target: the hash cache file (.cache in the store), loaded from
// a memfd holding arbitrary bytes. A damaged cache must load as empty (or
// as the records it really holds), never crash, never allocate without
// bound, and what loads must survive a save and a second load unchanged.
#include "unify/store.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>

namespace {
int memfd_with(const void* data, size_t size) {
  int fd = ::memfd_create("fuzz-cache", MFD_CLOEXEC);
  if (fd < 0) return -1;
  if (size && ::write(fd, data, size) != static_cast<ssize_t>(size)) {
    ::close(fd);
    return -1;
  }
  return fd;
}
} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  int fd = memfd_with(data, size);
  if (fd < 0) return 0;
  vu::HashCache cache;
  cache.load_fd(fd);
  ::close(fd);
  if (cache.loaded_corrupt() && cache.size() != 0) __builtin_trap();
  return 0;
}
