/* A program the preload library's tests run under LD_PRELOAD: it calls
 * one wrapped function as its arguments say and prints the result.
 *   pwnam NAME | pwuid UID | grnam NAME | grgid GID      the plain forms
 *   pwnam_r NAME LEN | pwuid_r UID LEN | grnam_r NAME LEN | grgid_r GID LEN
 *   pwent | grent | pwent_r LEN | grent_r LEN            enumeration
 *   grouplist USER GID ROOM                              getgrouplist
 *   initgroups USER GID                                  then getgroups
 *   FORM PATH ARG...   FORM: execve execv execvp execvpe execl execlp
 *                      execle posix_spawn posix_spawnp system popen
 * An entry prints as name:uid:gid:gecos:dir:shell or name:gid:m1,m2;
 * "none E" when there is none (E: errno or the returned error number). */
#define _GNU_SOURCE
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char** environ;

static void print_pw(const struct passwd* p) {
  printf("%s:%u:%u:%s:%s:%s\n", p->pw_name, (unsigned)p->pw_uid, (unsigned)p->pw_gid, p->pw_gecos,
         p->pw_dir, p->pw_shell);
}

static void print_gr(const struct group* g) {
  printf("%s:%u:", g->gr_name, (unsigned)g->gr_gid);
  for (char** m = g->gr_mem; *m; ++m) printf("%s%s", m == g->gr_mem ? "" : ",", *m);
  printf("\n");
}

static int lookup(int argc, char** argv) {
  const char* what = argv[1];
  errno = 0;
  if (!strcmp(what, "pwnam") || !strcmp(what, "pwuid")) {
    struct passwd* p = !strcmp(what, "pwnam") ? getpwnam(argv[2]) : getpwuid(atoi(argv[2]));
    p ? print_pw(p) : (void)printf("none %d\n", errno);
  } else if (!strcmp(what, "grnam") || !strcmp(what, "grgid")) {
    struct group* g = !strcmp(what, "grnam") ? getgrnam(argv[2]) : getgrgid(atoi(argv[2]));
    g ? print_gr(g) : (void)printf("none %d\n", errno);
  } else if (argc > 3 && (!strcmp(what, "pwnam_r") || !strcmp(what, "pwuid_r"))) {
    size_t len = (size_t)atol(argv[3]);
    char* buf = malloc(len + 1);
    struct passwd pw, *r = NULL;
    int rc = !strcmp(what, "pwnam_r") ? getpwnam_r(argv[2], &pw, buf, len, &r)
                                      : getpwuid_r(atoi(argv[2]), &pw, buf, len, &r);
    r ? print_pw(r) : (void)printf("none %d\n", rc);
    free(buf);
  } else if (argc > 3 && (!strcmp(what, "grnam_r") || !strcmp(what, "grgid_r"))) {
    size_t len = (size_t)atol(argv[3]);
    char* buf = malloc(len + 1);
    struct group gr, *r = NULL;
    int rc = !strcmp(what, "grnam_r") ? getgrnam_r(argv[2], &gr, buf, len, &r)
                                      : getgrgid_r(atoi(argv[2]), &gr, buf, len, &r);
    r ? print_gr(r) : (void)printf("none %d\n", rc);
    free(buf);
  } else {
    return -1;
  }
  return 0;
}

static int enumerate(int argc, char** argv) {
  const char* what = argv[1];
  if (!strcmp(what, "pwent")) {
    setpwent();
    for (struct passwd* p; (p = getpwent());) print_pw(p);
    endpwent();
  } else if (!strcmp(what, "grent")) {
    setgrent();
    for (struct group* g; (g = getgrent());) print_gr(g);
    endgrent();
  } else if (argc > 2 && !strcmp(what, "pwent_r")) {
    char* buf = malloc((size_t)atol(argv[2]) + 1);
    struct passwd pw, *r;
    int rc = getpwent_r(&pw, buf, (size_t)atol(argv[2]), &r);
    rc == 0 ? print_pw(r) : (void)printf("none %d\n", rc);
    free(buf);
  } else if (argc > 2 && !strcmp(what, "grent_r")) {
    char* buf = malloc((size_t)atol(argv[2]) + 1);
    struct group gr, *r;
    int rc = getgrent_r(&gr, buf, (size_t)atol(argv[2]), &r);
    rc == 0 ? print_gr(r) : (void)printf("none %d\n", rc);
    free(buf);
  } else if (argc > 4 && !strcmp(what, "grouplist")) {
    int n = atoi(argv[4]);
    gid_t groups[64];
    int rc = getgrouplist(argv[2], (gid_t)atoi(argv[3]), groups, &n);
    printf("%d %d", rc, n);
    for (int i = 0; i < rc; ++i) printf(" %u", (unsigned)groups[i]);
    printf("\n");
  } else if (argc > 3 && !strcmp(what, "initgroups")) {
    if (initgroups(argv[2], (gid_t)atoi(argv[3])) != 0) return printf("none %d\n", errno), 0;
    gid_t groups[64];
    int n = getgroups(64, groups);
    for (int i = 0; i < n; ++i) printf("%s%u", i ? " " : "", (unsigned)groups[i]);
    printf("\n");
  } else {
    return -1;
  }
  return 0;
}

static int spawn_and_wait(const char* form, char** argv) {
  pid_t pid;
  int rc = !strcmp(form, "posix_spawn") ? posix_spawn(&pid, argv[0], NULL, NULL, argv, environ)
                                        : posix_spawnp(&pid, argv[0], NULL, NULL, argv, environ);
  if (rc != 0) return printf("none %d\n", rc), 0;
  int status = 0;
  waitpid(pid, &status, 0);
  printf("status %d\n", WEXITSTATUS(status));
  return 0;
}

static int run(int argc, char** argv) {
  const char* form = argv[1];
  char** args = argv + 2; /* PATH ARG... : the command's argv is ARG... with PATH as argv[0] */
  char out[4200];
  snprintf(out, sizeof out, "VU_TEST_OUT=%s", getenv("VU_TEST_OUT") ? getenv("VU_TEST_OUT") : "");
  char* env[] = {"FROM_EXECLE=1", "LD_PRELOAD=/evil.so", "VU_PRELOAD_ROOT=/", out, NULL};
  fflush(stdout);
  if (!strcmp(form, "execve"))
    execve(args[0], args, environ);
  else if (!strcmp(form, "execv"))
    execv(args[0], args);
  else if (!strcmp(form, "execvp"))
    execvp(args[0], args);
  else if (!strcmp(form, "execvpe"))
    execvpe(args[0], args, environ);
  else if (!strcmp(form, "execl"))
    execl(args[0], args[0], argc > 3 ? args[1] : NULL, (char*)NULL);
  else if (!strcmp(form, "execlp"))
    execlp(args[0], args[0], argc > 3 ? args[1] : NULL, (char*)NULL);
  else if (!strcmp(form, "execle"))
    execle(args[0], args[0], argc > 3 ? args[1] : NULL, (char*)NULL, env);
  else if (!strcmp(form, "posix_spawn") || !strcmp(form, "posix_spawnp"))
    return spawn_and_wait(form, args);
  else if (!strcmp(form, "system")) {
    int st = system(args[0]);
    return printf("status %d\n", st < 0 ? -1 : WEXITSTATUS(st)), 0;
  } else if (!strcmp(form, "popen")) {
    FILE* f = popen(args[0], "r");
    if (!f) return printf("none %d\n", errno), 0;
    pclose(f);
    return printf("opened\n"), 0;
  } else {
    return -1;
  }
  printf("none %d\n", errno);
  return 0;
}

int main(int argc, char** argv) {
  if (argc < 3 && !(argc == 2 && (!strcmp(argv[1], "pwent") || !strcmp(argv[1], "grent"))))
    return 2;
  if (lookup(argc, argv) == 0 || enumerate(argc, argv) == 0 || run(argc, argv) == 0) return 0;
  return 2;
}
