// libFuzzer target: /proc/locks text, parsed to find the processes waiting
// for a lease (thaw.h). Any text gives a list, never a crash.
#include "kernel/proc.h"

#include <cstddef>
#include <cstdint>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  (void)vu::parse_lease_waiters(text, 20499, 0xfe00, 10953485);
  return 0;
}
