/* Bounded parsers of a guest's etc/passwd and etc/group lines, for the
 * LD_PRELOAD library (vu_preload.c). Plain C: the library is loaded into
 * other programs. A line is "name:passwd:uid:gid:gecos:dir:shell" or
 * "name:passwd:gid:member,member"; a line that is not exactly that (a
 * field missing or extra, a number that is not a decimal below 2^32-1, an
 * empty name, a NUL byte) is not an entry. Nothing here allocates: the
 * entry's fields point into the line. */
#ifndef VU_PRELOAD_PASSWD_PARSE_H
#define VU_PRELOAD_PASSWD_PARSE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

struct vu_field {
  const char* p;
  size_t n;
};

struct vu_pw_line {
  struct vu_field name, passwd, gecos, dir, shell;
  uint32_t uid, gid;
};

struct vu_gr_line {
  struct vu_field name, passwd, members; /* members: comma-separated */
  uint32_t gid;
};

/* 1 when [line, line + len) (without its newline) is an entry. */
int vu_parse_pw_line(const char* line, size_t len, struct vu_pw_line* out);
int vu_parse_gr_line(const char* line, size_t len, struct vu_gr_line* out);

/* The next line of [*pos, end): its start and length; advances *pos past
 * its newline. 0 at the end. */
int vu_next_line(const char** pos, const char* end, const char** line, size_t* len);

/* 1 when `name` (NUL-terminated) is one of the comma-separated members. */
int vu_has_member(struct vu_field members, const char* name);

#ifdef __cplusplus
}
#endif

#endif
