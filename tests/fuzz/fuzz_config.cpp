// libFuzzer target: the one-value configuration files of util-vserver's
// layout (vdir targets, refserver names, context) and the file-name parser
// of util-vserver's hash-store configuration: any bytes give a value.
#include "core/guest.h"

#include <cstddef>
#include <cstdint>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  std::string value = vu::parse_config_value(text);
  // The value is a line of the input, trimmed: never longer, no newline.
  if (value.size() > size || value.find('\n') != std::string::npos) __builtin_trap();
  return 0;
}
