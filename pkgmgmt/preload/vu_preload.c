/* libvu-preload.so: the LD_PRELOAD library a host-side package manager
 * runs under while it works on a guest (util-vserver's rpm-fake, covering
 * the whole family). With VU_PRELOAD_ROOT set to the guest's root:
 *  - user and group lookups (getpw*, getgr*, their _r forms, the *ent
 *    enumerations, getgrouplist, initgroups) are answered from the guest's
 *    etc/passwd and etc/group, opened beneath the root without following
 *    any symlink (openat2), at most 16 MiB, parsed with bounds
 *    (passwd_parse.h) - never through the host's or the guest's NSS
 *    modules;
 *  - every exec (execve, execv, execvp, execvpe, execl, execlp, execle,
 *    posix_spawn, posix_spawnp, system) runs VU_PRELOAD_EXEC instead, as
 *    "VU_PRELOAD_EXEC ROOT -- PATH ARGV0 ARGS...", with LD_PRELOAD and the
 *    VU_PRELOAD_* variables removed from its environment: that helper runs
 *    the command inside the guest's context. Without VU_PRELOAD_EXEC (an
 *    absolute path) an exec fails with EACCES: nothing of the guest runs
 *    on the host. popen fails with EACCES too (glibc starts its shell
 *    through an internal call no library can wrap).
 * With VU_PRELOAD_BROKER also set (the number of an inherited AF_UNIX
 * SOCK_SEQPACKET socket; vrpm --host-rpm), the broker mode: an exec is
 * not an exec at all. The calling process sends the command (PATH ARGV1
 * ...) with its standard descriptors and a reply socket to the broker,
 * which runs it in the guest's context, waits for the status and exits
 * with it - so for its parent it is the command that ended. posix_spawn
 * fails with EACCES in this mode. When the library is loaded (before the
 * program's main) it makes the guest's root the process's root (chroot),
 * keeps only the capabilities a package manager needs to write files
 * (chown, dac_override, dac_read_search, fowner, fsetid, setfcap - not
 * sys_chroot, so the chroot holds), and forbids execve and execveat for
 * the process and its children with a seccomp filter (EPERM): every path
 * the program opens resolves inside the guest, and a direct system call
 * runs nothing. If any of that fails the process exits with 126.
 * Without VU_PRELOAD_ROOT every function is the C library's.
 * Limits (fail safe only where the caller checks): a static or set-uid
 * program ignores LD_PRELOAD; the tools that use this library run only
 * dynamically linked, not set-uid package managers. */
#define _GNU_SOURCE
#include "pkgmgmt/preload/passwd_parse.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/audit.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/openat2.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <pwd.h>
#include <spawn.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define VU_EXPORT __attribute__((visibility("default")))
#define VU_MAX_FILE (16u << 20)

extern char** environ;

static const char* guest_root(void) {
  const char* root = getenv("VU_PRELOAD_ROOT");
  return root && root[0] == '/' ? root : NULL;
}

/* Set once the broker mode has made the guest's root this process's. */
static int s_chrooted;

/* ---- the guest's files ---- */

/* The content of `rel` beneath the guest root (NUL-terminated), or NULL
 * with errno set. The caller frees it. */
static char* read_guest_file(const char* rel, size_t* len) {
  const char* root = guest_root();
  if (!root) {
    errno = ENOENT;
    return NULL;
  }
  int rootfd = open(s_chrooted ? "/" : root, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (rootfd < 0) return NULL;
  struct open_how how = {.flags = O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC,
                         .resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS};
  int fd = (int)syscall(SYS_openat2, rootfd, rel, &how, sizeof how);
  int saved = errno;
  close(rootfd);
  if (fd < 0) {
    errno = saved;
    return NULL;
  }
  struct stat st;
  char* data = NULL;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || (size_t)st.st_size > VU_MAX_FILE) {
    errno = EIO;
  } else if ((data = malloc((size_t)st.st_size + 1)) != NULL) {
    size_t got = 0;
    for (ssize_t n;
         got <= (size_t)st.st_size && (n = read(fd, data + got, (size_t)st.st_size + 1 - got)) > 0;)
      got += (size_t)n;
    if (got > (size_t)st.st_size) { /* it grew: not a file to trust now */
      free(data);
      data = NULL;
      errno = EIO;
    } else {
      data[got] = '\0';
      *len = got;
    }
  }
  close(fd);
  return data;
}

/* Copies a field into the buffer as a C string; NULL when it does not fit. */
static char* put(struct vu_field f, char** at, size_t* left) {
  if (f.n + 1 > *left) return NULL;
  char* s = *at;
  memcpy(s, f.p, f.n);
  s[f.n] = '\0';
  *at += f.n + 1;
  *left -= f.n + 1;
  return s;
}

static int fill_pw(const struct vu_pw_line* l, struct passwd* pw, char* buf, size_t buflen) {
  char* at = buf;
  size_t left = buflen;
  if (!(pw->pw_name = put(l->name, &at, &left)) || !(pw->pw_passwd = put(l->passwd, &at, &left)) ||
      !(pw->pw_gecos = put(l->gecos, &at, &left)) || !(pw->pw_dir = put(l->dir, &at, &left)) ||
      !(pw->pw_shell = put(l->shell, &at, &left)))
    return ERANGE;
  pw->pw_uid = l->uid;
  pw->pw_gid = l->gid;
  return 0;
}

static int fill_gr(const struct vu_gr_line* l, struct group* gr, char* buf, size_t buflen) {
  size_t members = 0;
  for (size_t i = 0; i < l->members.n; ++i) members += l->members.p[i] == ',';
  members += l->members.n > 0;
  size_t skip = (sizeof(char*) - (uintptr_t)buf % sizeof(char*)) % sizeof(char*);
  size_t table = skip + (members + 1) * sizeof(char*);
  if (table > buflen) return ERANGE;
  char** mem = (char**)(void*)(buf + skip);
  char* at = buf + table;
  size_t left = buflen - table;
  if (!(gr->gr_name = put(l->name, &at, &left)) || !(gr->gr_passwd = put(l->passwd, &at, &left)))
    return ERANGE;
  size_t start = 0, k = 0;
  for (size_t i = 0; l->members.n > 0 && i <= l->members.n; ++i) {
    if (i < l->members.n && l->members.p[i] != ',') continue;
    struct vu_field f = {l->members.p + start, i - start};
    if (!(mem[k++] = put(f, &at, &left))) return ERANGE;
    start = i + 1;
  }
  mem[k] = NULL;
  gr->gr_mem = mem;
  gr->gr_gid = l->gid;
  return 0;
}

/* ---- lookups by key ---- */

struct key {
  const char* name; /* or NULL: by id */
  uint32_t id;
};

static int pw_matches(const struct vu_pw_line* l, const struct key* k) {
  if (k->name) return l->name.n == strlen(k->name) && memcmp(l->name.p, k->name, l->name.n) == 0;
  return l->uid == k->id;
}

static int gr_matches(const struct vu_gr_line* l, const struct key* k) {
  if (k->name) return l->name.n == strlen(k->name) && memcmp(l->name.p, k->name, l->name.n) == 0;
  return l->gid == k->id;
}

/* getpw*_r's convention: 0 with *result NULL when not found, an error
 * number otherwise. */
static int find_pw(const struct key* k, struct passwd* pw, char* buf, size_t buflen,
                   struct passwd** result) {
  *result = NULL;
  size_t len = 0;
  char* data = read_guest_file("etc/passwd", &len);
  if (!data) return errno == ENOENT ? 0 : errno;
  const char *pos = data, *line;
  size_t n;
  int rc = 0;
  struct vu_pw_line l;
  while (vu_next_line(&pos, data + len, &line, &n))
    if (vu_parse_pw_line(line, n, &l) && pw_matches(&l, k)) {
      rc = fill_pw(&l, pw, buf, buflen);
      if (rc == 0) *result = pw;
      break;
    }
  free(data);
  return rc;
}

static int find_gr(const struct key* k, struct group* gr, char* buf, size_t buflen,
                   struct group** result) {
  *result = NULL;
  size_t len = 0;
  char* data = read_guest_file("etc/group", &len);
  if (!data) return errno == ENOENT ? 0 : errno;
  const char *pos = data, *line;
  size_t n;
  int rc = 0;
  struct vu_gr_line l;
  while (vu_next_line(&pos, data + len, &line, &n))
    if (vu_parse_gr_line(line, n, &l) && gr_matches(&l, k)) {
      rc = fill_gr(&l, gr, buf, buflen);
      if (rc == 0) *result = gr;
      break;
    }
  free(data);
  return rc;
}

#define REAL(type, name, ...) ((type(*)(__VA_ARGS__))dlsym(RTLD_NEXT, name))

VU_EXPORT int getpwnam_r(const char* name, struct passwd* pw, char* buf, size_t buflen,
                         struct passwd** result) {
  if (!guest_root())
    return REAL(int, "getpwnam_r", const char*, struct passwd*, char*, size_t,
                struct passwd**)(name, pw, buf, buflen, result);
  struct key k = {name, 0};
  return find_pw(&k, pw, buf, buflen, result);
}

VU_EXPORT int getpwuid_r(uid_t uid, struct passwd* pw, char* buf, size_t buflen,
                         struct passwd** result) {
  if (!guest_root())
    return REAL(int, "getpwuid_r", uid_t, struct passwd*, char*, size_t,
                struct passwd**)(uid, pw, buf, buflen, result);
  struct key k = {NULL, uid};
  return find_pw(&k, pw, buf, buflen, result);
}

VU_EXPORT int getgrnam_r(const char* name, struct group* gr, char* buf, size_t buflen,
                         struct group** result) {
  if (!guest_root())
    return REAL(int, "getgrnam_r", const char*, struct group*, char*, size_t,
                struct group**)(name, gr, buf, buflen, result);
  struct key k = {name, 0};
  return find_gr(&k, gr, buf, buflen, result);
}

VU_EXPORT int getgrgid_r(gid_t gid, struct group* gr, char* buf, size_t buflen,
                         struct group** result) {
  if (!guest_root())
    return REAL(int, "getgrgid_r", gid_t, struct group*, char*, size_t,
                struct group**)(gid, gr, buf, buflen, result);
  struct key k = {NULL, gid};
  return find_gr(&k, gr, buf, buflen, result);
}

/* The non-reentrant forms: a buffer per thread, grown on ERANGE. */
static __thread struct passwd tls_pw;
static __thread struct group tls_gr;
static __thread char* tls_buf;
static __thread size_t tls_len;

static int grow_tls(void) {
  size_t want = tls_len ? tls_len * 2 : 1024;
  if (want > VU_MAX_FILE * 2) return 0;
  char* p = realloc(tls_buf, want);
  if (!p) return 0;
  tls_buf = p;
  tls_len = want;
  return 1;
}

#define NONREENTRANT(rtype, var, call)                                                             \
  do {                                                                                             \
    rtype* result = NULL;                                                                          \
    int rc = ERANGE;                                                                               \
    while (rc == ERANGE && grow_tls()) rc = call;                                                  \
    if (rc != 0) errno = rc;                                                                       \
    return rc == 0 ? result : NULL;                                                                \
  } while (0)

VU_EXPORT struct passwd* getpwnam(const char* name) {
  if (!guest_root()) return REAL(struct passwd*, "getpwnam", const char*)(name);
  NONREENTRANT(struct passwd, tls_pw, getpwnam_r(name, &tls_pw, tls_buf, tls_len, &result));
}

VU_EXPORT struct passwd* getpwuid(uid_t uid) {
  if (!guest_root()) return REAL(struct passwd*, "getpwuid", uid_t)(uid);
  NONREENTRANT(struct passwd, tls_pw, getpwuid_r(uid, &tls_pw, tls_buf, tls_len, &result));
}

VU_EXPORT struct group* getgrnam(const char* name) {
  if (!guest_root()) return REAL(struct group*, "getgrnam", const char*)(name);
  NONREENTRANT(struct group, tls_gr, getgrnam_r(name, &tls_gr, tls_buf, tls_len, &result));
}

VU_EXPORT struct group* getgrgid(gid_t gid) {
  if (!guest_root()) return REAL(struct group*, "getgrgid", gid_t)(gid);
  NONREENTRANT(struct group, tls_gr, getgrgid_r(gid, &tls_gr, tls_buf, tls_len, &result));
}

/* ---- enumeration: one snapshot of each file and a cursor ---- */

struct cursor {
  char* data;
  size_t len;
  const char* pos;
};

static pthread_mutex_t ent_lock = PTHREAD_MUTEX_INITIALIZER;
static struct cursor pw_cur, gr_cur;

static void cursor_reset(struct cursor* c, const char* rel) {
  free(c->data);
  c->data = rel ? read_guest_file(rel, &c->len) : NULL;
  c->pos = c->data;
}

/* set*ent (a new snapshot) and end*ent (none). */
static void reset_ent(struct cursor* c, const char* rel, const char* real) {
  if (!guest_root()) {
    ((void (*)(void))dlsym(RTLD_NEXT, real))();
    return;
  }
  pthread_mutex_lock(&ent_lock);
  cursor_reset(c, rel);
  pthread_mutex_unlock(&ent_lock);
}

/* The next entry of the snapshot into the caller's buffer; ENOENT when the
 * snapshot is at its end. On ERANGE the cursor stays, as glibc's does. */
static int next_pw(struct passwd* pw, char* buf, size_t buflen, struct passwd** result) {
  *result = NULL;
  if (!pw_cur.data) cursor_reset(&pw_cur, "etc/passwd");
  if (!pw_cur.data) return ENOENT;
  const char *line, *before;
  size_t n;
  struct vu_pw_line l;
  for (before = pw_cur.pos; vu_next_line(&pw_cur.pos, pw_cur.data + pw_cur.len, &line, &n);
       before = pw_cur.pos) {
    if (!vu_parse_pw_line(line, n, &l)) continue;
    int rc = fill_pw(&l, pw, buf, buflen);
    if (rc != 0) {
      pw_cur.pos = before;
      return rc;
    }
    *result = pw;
    return 0;
  }
  return ENOENT;
}

static int next_gr(struct group* gr, char* buf, size_t buflen, struct group** result) {
  *result = NULL;
  if (!gr_cur.data) cursor_reset(&gr_cur, "etc/group");
  if (!gr_cur.data) return ENOENT;
  const char *line, *before;
  size_t n;
  struct vu_gr_line l;
  for (before = gr_cur.pos; vu_next_line(&gr_cur.pos, gr_cur.data + gr_cur.len, &line, &n);
       before = gr_cur.pos) {
    if (!vu_parse_gr_line(line, n, &l)) continue;
    int rc = fill_gr(&l, gr, buf, buflen);
    if (rc != 0) {
      gr_cur.pos = before;
      return rc;
    }
    *result = gr;
    return 0;
  }
  return ENOENT;
}

VU_EXPORT void setpwent(void) {
  reset_ent(&pw_cur, "etc/passwd", "setpwent");
}

VU_EXPORT void endpwent(void) {
  reset_ent(&pw_cur, NULL, "endpwent");
}

VU_EXPORT int getpwent_r(struct passwd* pw, char* buf, size_t buflen, struct passwd** result) {
  if (!guest_root())
    return REAL(int, "getpwent_r", struct passwd*, char*, size_t, struct passwd**)(pw, buf, buflen,
                                                                                   result);
  pthread_mutex_lock(&ent_lock);
  int rc = next_pw(pw, buf, buflen, result);
  pthread_mutex_unlock(&ent_lock);
  return rc;
}

VU_EXPORT struct passwd* getpwent(void) {
  if (!guest_root()) return REAL(struct passwd*, "getpwent", void)();
  NONREENTRANT(struct passwd, tls_pw, getpwent_r(&tls_pw, tls_buf, tls_len, &result));
}

VU_EXPORT void setgrent(void) {
  reset_ent(&gr_cur, "etc/group", "setgrent");
}

VU_EXPORT void endgrent(void) {
  reset_ent(&gr_cur, NULL, "endgrent");
}

VU_EXPORT int getgrent_r(struct group* gr, char* buf, size_t buflen, struct group** result) {
  if (!guest_root())
    return REAL(int, "getgrent_r", struct group*, char*, size_t, struct group**)(gr, buf, buflen,
                                                                                 result);
  pthread_mutex_lock(&ent_lock);
  int rc = next_gr(gr, buf, buflen, result);
  pthread_mutex_unlock(&ent_lock);
  return rc;
}

VU_EXPORT struct group* getgrent(void) {
  if (!guest_root()) return REAL(struct group*, "getgrent", void)();
  NONREENTRANT(struct group, tls_gr, getgrent_r(&tls_gr, tls_buf, tls_len, &result));
}

/* ---- supplementary groups ---- */

VU_EXPORT int getgrouplist(const char* user, gid_t group, gid_t* groups, int* ngroups) {
  if (!guest_root())
    return REAL(int, "getgrouplist", const char*, gid_t, gid_t*, int*)(user, group, groups,
                                                                       ngroups);
  int count = 0;
  if (count < *ngroups) groups[count] = group;
  ++count;
  size_t len = 0;
  char* data = read_guest_file("etc/group", &len);
  const char *pos = data, *line;
  size_t n;
  struct vu_gr_line l;
  while (data && vu_next_line(&pos, data + len, &line, &n) && count < 65536)
    if (vu_parse_gr_line(line, n, &l) && l.gid != group && vu_has_member(l.members, user)) {
      if (count < *ngroups) groups[count] = l.gid;
      ++count;
    }
  free(data);
  const int room = *ngroups;
  *ngroups = count;
  return count > room ? -1 : count;
}

VU_EXPORT int initgroups(const char* user, gid_t group) {
  if (!guest_root()) return REAL(int, "initgroups", const char*, gid_t)(user, group);
  int n = 0;
  getgrouplist(user, group, NULL, &n);
  gid_t* list = calloc((size_t)n, sizeof *list);
  if (!list) return -1;
  getgrouplist(user, group, list, &n);
  int rc = setgroups((size_t)n, list);
  free(list);
  return rc;
}

/* ---- the broker mode ---- */

#define VU_MAX_REQUEST 65536

/* The broker's socket, or -1 when not in the broker mode. */
static int broker_fd(void) {
  const char* s = getenv("VU_PRELOAD_BROKER");
  if (!guest_root() || !s || !*s) return -1;
  char* end = NULL;
  long fd = strtol(s, &end, 10);
  return *end == '\0' && fd >= 3 && fd < 65536 ? (int)fd : -1;
}

#if defined(__x86_64__)
#define VU_AUDIT_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define VU_AUDIT_ARCH AUDIT_ARCH_AARCH64
#else
#error "the broker mode's seccomp filter knows x86_64 and aarch64"
#endif

/* execve, execveat and every x32 system call fail with EPERM; another
 * architecture's system calls end the process. */
static int forbid_exec(void) {
  struct sock_filter f[] = {
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, VU_AUDIT_ARCH, 1, 0),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
      BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, 0x40000000u, 3, 0),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_execve, 2, 0),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_execveat, 1, 0),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
  };
  struct sock_fprog prog = {(unsigned short)(sizeof f / sizeof f[0]), f};
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return -1;
  return (int)syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog);
}

/* Everything but the capabilities for writing files, from every set. */
static int keep_file_capabilities(void) {
  const unsigned long keep = (1ul << CAP_CHOWN) | (1ul << CAP_DAC_OVERRIDE) |
                             (1ul << CAP_DAC_READ_SEARCH) | (1ul << CAP_FOWNER) |
                             (1ul << CAP_FSETID) | (1ul << CAP_SETFCAP);
  for (unsigned long cap = 0; cap <= 63; ++cap)
    if (!(keep & (1ul << cap)) && prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 && errno != EINVAL)
      return -1;
  struct __user_cap_header_struct head = {_LINUX_CAPABILITY_VERSION_3, 0};
  struct __user_cap_data_struct data[2];
  if (syscall(SYS_capget, &head, data) != 0) return -1;
  for (int i = 0; i < 2; ++i) {
    const unsigned mask = (unsigned)(keep >> (32 * i));
    data[i].effective &= mask;
    data[i].permitted &= mask;
    data[i].inheritable = 0;
  }
  return (int)syscall(SYS_capset, &head, data);
}

static void broker_mode_failed(const char* what) {
  char msg[160];
  int n = snprintf(msg, sizeof msg, "libvu-preload: %s: %s; stopping\n", what, strerror(errno));
  if (n > 0) (void)!write(2, msg, (size_t)n < sizeof msg ? (size_t)n : sizeof msg - 1);
  _exit(126);
}

__attribute__((constructor)) static void enter_broker_mode(void) {
  if (broker_fd() < 0) return;
  int root = open(guest_root(), O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (root < 0 || fchdir(root) != 0 || chroot(".") != 0 || chdir("/") != 0)
    broker_mode_failed("cannot enter the guest's root");
  close(root);
  s_chrooted = 1;
  if (keep_file_capabilities() != 0) broker_mode_failed("cannot drop capabilities");
  if (forbid_exec() != 0) broker_mode_failed("cannot forbid exec (seccomp)");
}

/* Sends `path` and argv[1..] with the standard descriptors to the broker
 * and exits with the command's status; returns -1 (errno set) when the
 * request cannot be made. */
static int broker_exec(int broker, const char* path, char* const argv[]) {
  char* blob = malloc(VU_MAX_REQUEST);
  if (!blob) return -1;
  size_t len = 0;
  for (size_t i = 0; i == 0 || (argv && argv[i]); ++i) {
    const char* a = i == 0 ? path : argv[i];
    size_t n = strlen(a) + 1;
    if (len + n > VU_MAX_REQUEST) {
      free(blob);
      errno = E2BIG;
      return -1;
    }
    memcpy(blob + len, a, n);
    len += n;
  }
  int pair[2];
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) != 0) {
    free(blob);
    return -1;
  }
  int fds[4] = {pair[1], 0, 1, 2};
  char control[CMSG_SPACE(sizeof fds)];
  memset(control, 0, sizeof control);
  struct iovec iov = {blob, len};
  struct msghdr msg = {0};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  struct cmsghdr* c = CMSG_FIRSTHDR(&msg);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof fds);
  memcpy(CMSG_DATA(c), fds, sizeof fds);
  ssize_t sent = sendmsg(broker, &msg, MSG_NOSIGNAL);
  int saved = errno;
  free(blob);
  close(pair[1]);
  if (sent < 0) {
    close(pair[0]);
    errno = saved;
    return -1;
  }
  int status = 127;
  while (recv(pair[0], &status, sizeof status, 0) < 0 && errno == EINTR) {
  }
  _exit(status & 0xff);
}

/* ---- exec: into the guest through VU_PRELOAD_EXEC ---- */

static int is_ours(const char* entry) {
  return strncmp(entry, "LD_PRELOAD=", 11) == 0 || strncmp(entry, "VU_PRELOAD_", 11) == 0;
}

/* The helper's argv and environment for running `path` with `argv` and
 * `envp` in the guest; NULL (errno set) when exec is not allowed. */
struct redirect {
  char** argv;
  char** envp;
};

static int make_redirect(const char* path, char* const argv[], char* const envp[],
                         struct redirect* r) {
  const char* helper = getenv("VU_PRELOAD_EXEC");
  if (!helper || helper[0] != '/') {
    errno = EACCES;
    return -1;
  }
  size_t na = 0, ne = 0;
  while (argv && argv[na]) ++na;
  while (envp && envp[ne]) ++ne;
  r->argv = calloc(na + 5, sizeof(char*));
  r->envp = calloc(ne + 1, sizeof(char*));
  if (!r->argv || !r->envp) {
    free(r->argv);
    free(r->envp);
    errno = ENOMEM;
    return -1;
  }
  size_t k = 0;
  r->argv[k++] = (char*)helper;
  r->argv[k++] = (char*)guest_root();
  r->argv[k++] = (char*)"--";
  r->argv[k++] = (char*)path;
  for (size_t i = 0; i < na; ++i) r->argv[k++] = argv[i];
  k = 0;
  for (size_t i = 0; i < ne; ++i)
    if (!is_ours(envp[i])) r->envp[k++] = envp[i];
  return 0;
}

static void drop_redirect(struct redirect* r) {
  int saved = errno;
  free(r->argv);
  free(r->envp);
  errno = saved;
}

VU_EXPORT int execve(const char* path, char* const argv[], char* const envp[]) {
  if (!guest_root()) return (int)syscall(SYS_execve, path, argv, envp);
  int broker = broker_fd();
  if (broker >= 0) return broker_exec(broker, path, argv);
  struct redirect r;
  if (make_redirect(path, argv, envp, &r) != 0) return -1;
  int rc = (int)syscall(SYS_execve, r.argv[0], r.argv, r.envp);
  drop_redirect(&r);
  return rc;
}

VU_EXPORT int execv(const char* path, char* const argv[]) {
  return execve(path, argv, environ);
}

/* A bare name is looked up by the helper, on the guest's PATH. */
VU_EXPORT int execvpe(const char* file, char* const argv[], char* const envp[]) {
  if (!guest_root())
    return REAL(int, "execvpe", const char*, char* const*, char* const*)(file, argv, envp);
  return execve(file, argv, envp);
}

VU_EXPORT int execvp(const char* file, char* const argv[]) {
  return execvpe(file, argv, environ);
}

/* The variadic forms: the arguments up to the NULL as an argv. */
static char** collect_args(const char* arg0, va_list ap, char* const** envp) {
  size_t cap = 16, n = 0;
  char** argv = malloc(cap * sizeof *argv);
  if (!argv) return NULL;
  for (const char* a = arg0;; a = va_arg(ap, const char*)) {
    if (n + 1 >= cap) {
      char** more = realloc(argv, (cap *= 2) * sizeof *argv);
      if (!more) {
        free(argv);
        return NULL;
      }
      argv = more;
    }
    argv[n++] = (char*)a;
    if (!a) break;
  }
  if (envp) *envp = va_arg(ap, char* const*);
  return argv;
}

#define VARIADIC_EXEC(call, envp_out)                                                              \
  do {                                                                                             \
    va_list ap;                                                                                    \
    va_start(ap, arg);                                                                             \
    char* const* env = environ;                                                                    \
    char** argv = collect_args(arg, ap, envp_out);                                                 \
    va_end(ap);                                                                                    \
    if (!argv) {                                                                                   \
      errno = ENOMEM;                                                                              \
      return -1;                                                                                   \
    }                                                                                              \
    (void)env;                                                                                     \
    int rc = call;                                                                                 \
    int saved = errno;                                                                             \
    free(argv);                                                                                    \
    errno = saved;                                                                                 \
    return rc;                                                                                     \
  } while (0)

VU_EXPORT int execl(const char* path, const char* arg, ...) {
  VARIADIC_EXEC(execve(path, argv, env), NULL);
}

VU_EXPORT int execlp(const char* file, const char* arg, ...) {
  VARIADIC_EXEC(execvpe(file, argv, env), NULL);
}

VU_EXPORT int execle(const char* path, const char* arg, ...) {
  VARIADIC_EXEC(execve(path, argv, env), &env);
}

typedef int (*spawn_fn)(pid_t*, const char*, const posix_spawn_file_actions_t*,
                        const posix_spawnattr_t*, char* const*, char* const*);

static int spawn(const char* name, pid_t* pid, const char* path,
                 const posix_spawn_file_actions_t* fa, const posix_spawnattr_t* attr,
                 char* const argv[], char* const envp[]) {
  if (!guest_root()) return ((spawn_fn)dlsym(RTLD_NEXT, name))(pid, path, fa, attr, argv, envp);
  if (broker_fd() >= 0) return EACCES;
  struct redirect r;
  if (make_redirect(path, argv, envp, &r) != 0) return errno;
  int rc = ((spawn_fn)dlsym(RTLD_NEXT, "posix_spawn"))(pid, r.argv[0], fa, attr, r.argv, r.envp);
  drop_redirect(&r);
  return rc;
}

VU_EXPORT int posix_spawn(pid_t* pid, const char* path, const posix_spawn_file_actions_t* fa,
                          const posix_spawnattr_t* attr, char* const argv[], char* const envp[]) {
  return spawn("posix_spawn", pid, path, fa, attr, argv, envp);
}

VU_EXPORT int posix_spawnp(pid_t* pid, const char* file, const posix_spawn_file_actions_t* fa,
                           const posix_spawnattr_t* attr, char* const argv[], char* const envp[]) {
  return spawn("posix_spawnp", pid, file, fa, attr, argv, envp);
}

/* system(3): glibc starts its shell through an internal call, so it is
 * done here, through the wrapped execve. */
VU_EXPORT int system(const char* command) {
  if (!guest_root()) return REAL(int, "system", const char*)(command);
  if (!command) return 1;
  pid_t pid = fork();
  if (pid < 0) return -1;
  if (pid == 0) {
    execl("/bin/sh", "sh", "-c", command, (char*)NULL);
    _exit(127);
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0)
    if (errno != EINTR) return -1;
  return status;
}

VU_EXPORT FILE* popen(const char* command, const char* type) {
  if (!guest_root()) return REAL(FILE*, "popen", const char*, const char*)(command, type);
  errno = EACCES;
  return NULL;
}
