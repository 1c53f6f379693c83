/* The least an exec into a guest can cost (bench/vserver.sh): a static
 * program that starts a command and waits for it, joining no namespace and
 * dropping nothing. Any such tool - nsenter, vserver exec - does at least
 * this: start itself, fork, exec the command, wait.
 *
 *   vu-launch-floor PROGRAM [ARG...]      exit status: the program's */
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char** argv) {
  if (argc < 2) return 2;
  pid_t pid = fork();
  if (pid == 0) {
    execv(argv[1], argv + 1);
    _exit(127);
  }
  int status = 0;
  if (pid < 0 || waitpid(pid, &status, 0) < 0) return 126;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}
