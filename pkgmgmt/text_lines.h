// Line by line through text a guest printed or wrote.
#pragma once

#include "kernel/result.h"

#include <algorithm>
#include <string_view>

namespace vu {

// Calls fn(line, line number) for each line of `text` (without its '\n')
// and stops at the first error.
template <typename Fn> Status for_each_line(std::string_view text, Fn fn) {
  size_t line_no = 0;
  for (size_t pos = 0; pos < text.size();) {
    size_t eol = std::min(text.find('\n', pos), text.size());
    VU_TRY(fn(text.substr(pos, eol - pos), ++line_no));
    pos = eol + 1;
  }
  return {};
}

} // namespace vu
