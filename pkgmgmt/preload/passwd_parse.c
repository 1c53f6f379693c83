/* Bounded passwd/group line parsers (see passwd_parse.h). */
#include "pkgmgmt/preload/passwd_parse.h"

#include <string.h>

int vu_next_line(const char** pos, const char* end, const char** line, size_t* len) {
  if (*pos >= end) return 0;
  const char* nl = memchr(*pos, '\n', (size_t)(end - *pos));
  const char* stop = nl ? nl : end;
  *line = *pos;
  *len = (size_t)(stop - *pos);
  *pos = nl ? nl + 1 : end;
  return 1;
}

/* Splits into exactly `count` fields at ':'; 0 on another number. */
static int split(const char* line, size_t len, struct vu_field* fields, int count) {
  if (memchr(line, '\0', len)) return 0;
  int n = 0;
  size_t start = 0;
  for (size_t i = 0; i <= len; ++i) {
    if (i < len && line[i] != ':') continue;
    if (n == count) return 0;
    fields[n].p = line + start;
    fields[n].n = i - start;
    ++n;
    start = i + 1;
  }
  return n == count;
}

/* A decimal number below 2^32 - 1 ((uid_t)-1 means "none"). */
static int number(struct vu_field f, uint32_t* out) {
  if (f.n == 0 || f.n > 10) return 0;
  uint64_t v = 0;
  for (size_t i = 0; i < f.n; ++i) {
    if (f.p[i] < '0' || f.p[i] > '9') return 0;
    v = v * 10 + (uint64_t)(f.p[i] - '0');
  }
  if (v >= 0xffffffffu) return 0;
  *out = (uint32_t)v;
  return 1;
}

int vu_parse_pw_line(const char* line, size_t len, struct vu_pw_line* out) {
  struct vu_field f[7];
  if (!split(line, len, f, 7) || f[0].n == 0) return 0;
  if (!number(f[2], &out->uid) || !number(f[3], &out->gid)) return 0;
  out->name = f[0];
  out->passwd = f[1];
  out->gecos = f[4];
  out->dir = f[5];
  out->shell = f[6];
  return 1;
}

int vu_parse_gr_line(const char* line, size_t len, struct vu_gr_line* out) {
  struct vu_field f[4];
  if (!split(line, len, f, 4) || f[0].n == 0) return 0;
  if (!number(f[2], &out->gid)) return 0;
  out->name = f[0];
  out->passwd = f[1];
  out->members = f[3];
  return 1;
}

int vu_has_member(struct vu_field members, const char* name) {
  size_t want = strlen(name);
  size_t start = 0;
  for (size_t i = 0; i <= members.n; ++i) {
    if (i < members.n && members.p[i] != ',') continue;
    if (i - start == want && want > 0 && memcmp(members.p + start, name, want) == 0) return 1;
    start = i + 1;
  }
  return 0;
}
