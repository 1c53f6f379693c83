// libFuzzer target: the LD_PRELOAD library's parser of a guest's
// etc/passwd and etc/group (pkgmgmt/preload/passwd_parse.h), as a hostile
// guest could write them. Every field stays inside its line and holds no
// ':' or NUL.
#include "pkgmgmt/preload/passwd_parse.h"

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <initializer_list>

namespace {

void check(const vu_field& f, const char* line, size_t len) {
  if (f.p < line || f.p + f.n > line + len) __builtin_trap();
  if (std::memchr(f.p, ':', f.n) || std::memchr(f.p, '\0', f.n)) __builtin_trap();
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const char* pos = reinterpret_cast<const char*>(data);
  const char* end = pos + size;
  const char* line;
  size_t len;
  while (vu_next_line(&pos, end, &line, &len)) {
    if (std::memchr(line, '\n', len)) __builtin_trap();
    vu_pw_line pw;
    if (vu_parse_pw_line(line, len, &pw)) {
      for (const auto& f : {pw.name, pw.passwd, pw.gecos, pw.dir, pw.shell}) check(f, line, len);
      if (pw.name.n == 0 || pw.uid == 0xffffffffu) __builtin_trap();
    }
    vu_gr_line gr;
    if (vu_parse_gr_line(line, len, &gr)) {
      for (const auto& f : {gr.name, gr.passwd, gr.members}) check(f, line, len);
      (void)vu_has_member(gr.members, "root");
    }
  }
  return 0;
}
