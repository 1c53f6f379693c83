// libFuzzer target: store entry names as the store walk meets them. A name
// parses only in its one canonical spelling: what parses must print back
// to exactly the input.
#include "unify/store.h"

#include <cstddef>
#include <cstdint>
#include <string>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string path(reinterpret_cast<const char*>(data), size);
  auto entry = vu::parse_store_entry(path);
  if (entry && vu::store_entry_name(entry->first, entry->second) != path) __builtin_trap();
  return 0;
}
