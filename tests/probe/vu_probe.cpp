// vu-probe: a static program the tests copy into a guest and run there
// (vserver NAME exec /usr/local/bin/vu-probe ATTACK ...). Each attack
// prints one line: "refused: <why>" (exit 0) when the guest held, or
// "ESCAPED: <what>" (exit 1) when it did not; "info" commands print facts
// for the test to compare. Linked statically: nothing of the guest's
// libraries is involved.
#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <linux/fs.h>
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/ptrace.h>
#include <sys/shm.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

namespace {

int refused(const char* what, int err) {
  std::printf("refused: %s: %s\n", what, std::strerror(err));
  return 0;
}

int escaped(const std::string& what) {
  std::printf("ESCAPED: %s\n", what.c_str());
  return 1;
}

// chroot into a subdirectory, climb with "..", chroot("."): the classic
// escape. "/" must still be the guest's root afterwards.
int chroot_escape() {
  struct stat before {};
  ::stat("/", &before);
  ::mkdir("/tmp/vu-probe-jail", 0700);
  if (::chroot("/tmp/vu-probe-jail") != 0) return refused("chroot", errno);
  for (int i = 0; i < 64; ++i)
    if (::chdir("..") != 0) break;
  if (::chroot(".") != 0) return refused("second chroot", errno);
  struct stat after {};
  ::stat("/", &after);
  if (after.st_dev == before.st_dev && after.st_ino == before.st_ino)
    return refused("climbing out of a chroot ends at the guest's root", 0);
  return escaped("a root other than the guest's was reached");
}

int open_by_handle() {
  struct {
    file_handle h;
    unsigned char bytes[128];
  } fh{};
  fh.h.handle_bytes = 128;
  int mount_id = 0;
  if (::syscall(SYS_name_to_handle_at, AT_FDCWD, "/", &fh.h, &mount_id, 0) != 0)
    return refused("name_to_handle_at", errno);
  int fd = static_cast<int>(::syscall(SYS_open_by_handle_at, AT_FDCWD, &fh.h, O_RDONLY));
  if (fd < 0) return refused("open_by_handle_at", errno);
  return escaped("open_by_handle_at opened a directory by handle");
}

int mknod_disk() {
  if (::mknod("/tmp/vu-probe-disk", S_IFBLK | 0600, makedev(8, 0)) != 0 &&
      ::mknod("/tmp/vu-probe-disk", S_IFBLK | 0600, makedev(253, 0)) != 0)
    return refused("mknod of a disk", errno);
  if (::mount("/tmp/vu-probe-disk", "/mnt", "ext4", MS_RDONLY, nullptr) != 0) {
    int e = errno;
    ::unlink("/tmp/vu-probe-disk");
    return refused("mount of the disk", e);
  }
  return escaped("a host disk was made and mounted");
}

int clear_immutable(const char* path) {
  int fd = ::open(path, O_RDONLY);
  if (fd < 0) return refused("open", errno);
  int flags = 0;
  if (::ioctl(fd, FS_IOC_GETFLAGS, &flags) != 0) return refused("FS_IOC_GETFLAGS", errno);
  if (!(flags & FS_IMMUTABLE_FL)) return escaped(std::string(path) + " is not immutable at all");
  flags &= ~FS_IMMUTABLE_FL;
  if (::ioctl(fd, FS_IOC_SETFLAGS, &flags) != 0)
    return refused("clearing the immutable flag", errno);
  return escaped(std::string("the immutable flag of ") + path + " was cleared");
}

// Every way to change a shared (iunlink) file's content or attributes;
// each must be refused. Then the ways to change its names, which must work
// (dpkg's backup link and rename): "allowed: ..." or "FAILED: ...".
int change_shared(const std::string& path) {
  int bad = 0;
  auto attempt = [&](const char* what, int rc) {
    if (rc < 0) {
      refused(what, errno);
    } else {
      bad |= escaped(std::string(what) + " of " + path + " worked");
    }
  };
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return refused("stat", errno), 2;
  for (int mode : {O_WRONLY, O_RDWR, O_WRONLY | O_APPEND, O_RDONLY | O_TRUNC}) {
    int fd = ::open(path.c_str(), mode);
    attempt(mode == O_WRONLY                ? "open for writing"
            : mode == O_RDWR                ? "open for reading and writing"
            : mode == (O_WRONLY | O_APPEND) ? "open for appending"
                                            : "open with O_TRUNC",
            fd);
    if (fd >= 0) ::close(fd);
  }
  attempt("truncate", ::truncate(path.c_str(), 0));
  attempt("chmod", ::chmod(path.c_str(), st.st_mode & 07777));
  attempt("chown", ::chown(path.c_str(), st.st_uid, st.st_gid));
  attempt("utimes", ::utimensat(AT_FDCWD, path.c_str(), nullptr, 0));
  attempt("setxattr user.*", ::setxattr(path.c_str(), "user.vu-probe", "1", 1, 0));
  // A valid access ACL (version 2: user::rw- group::r-- other::r--).
  struct {
    uint32_t version;
    struct {
      uint16_t tag, perm;
      uint32_t id;
    } e[3];
  } acl{2, {{0x01, 6, ~0u}, {0x04, 4, ~0u}, {0x20, 4, ~0u}}};
  attempt("setfacl", ::setxattr(path.c_str(), "system.posix_acl_access", &acl, sizeof(acl), 0));
  attempt("removexattr", ::removexattr(path.c_str(), "security.capability"));
  int fd = ::open(path.c_str(), O_RDONLY);
  int flags = 0;
  if (fd >= 0 && ::ioctl(fd, FS_IOC_GETFLAGS, &flags) == 0) {
    int cleared = 0;
    attempt("clearing its inode flags", ::ioctl(fd, FS_IOC_SETFLAGS, &cleared));
  }
  if (fd >= 0) ::close(fd);
  const std::string linked = path + ".vu-probe-link", renamed = path + ".vu-probe-renamed";
  const char* step = "link";
  if (::link(path.c_str(), linked.c_str()) == 0 &&
      (step = "rename", ::rename(linked.c_str(), renamed.c_str()) == 0) &&
      (step = "unlink", ::unlink(renamed.c_str()) == 0)) {
    std::printf("allowed: link, rename and unlink\n");
  } else {
    std::printf("FAILED: %s: %s\n", step, std::strerror(errno));
    bad = 1;
  }
  return bad;
}

// A process that joins a guest's cgroup (writing its pid to
// `cgroup_procs`) after opening the barrier directory and chrooting into
// `inside` (a directory below it), keeping every capability: it must not
// climb out through "..", fchdir to the barrier, nor open anything through
// the barrier's descriptor.
int barrier_walk(const char* barrier, const char* inside, const char* cgroup_procs) {
  int bfd = ::open(barrier, O_RDONLY | O_DIRECTORY);
  int procs = ::open(cgroup_procs, O_WRONLY);
  struct stat bst {};
  if (bfd < 0 || procs < 0 || ::fstat(bfd, &bst) != 0) return refused("set-up", errno), 2;
  if (::chdir(inside) != 0 || ::chroot(".") != 0) return refused("chroot set-up", errno), 2;
  const std::string pid = std::to_string(::getpid());
  if (::write(procs, pid.data(), pid.size()) < 0) return refused("joining the cgroup", errno), 2;
  int bad = 0;
  for (int i = 0; i < 64; ++i)
    if (::chdir("..") != 0) break;
  struct stat here {};
  ::stat(".", &here);
  if (here.st_dev == bst.st_dev && here.st_ino == bst.st_ino)
    bad |= escaped("climbing with .. reached the barrier");
  else
    refused("climbing with .. stops below the barrier", 0);
  if (::fchdir(bfd) == 0)
    bad |= escaped("fchdir to the barrier");
  else
    refused("fchdir to the barrier", errno);
  std::string first = std::string(inside).substr(std::strlen(barrier) + 1);
  first = first.substr(0, first.find('/'));
  int fd = ::openat(bfd, first.c_str(), O_RDONLY | O_DIRECTORY);
  if (fd >= 0)
    bad |= escaped("openat through the barrier's descriptor");
  else
    refused("openat through the barrier's descriptor", errno);
  return bad;
}

int load_module() {
  int fd = ::open("/dev/null", O_RDONLY);
  if (::syscall(SYS_finit_module, fd, "", 0) != 0 &&
      ::syscall(SYS_init_module, nullptr, 0, "") != 0)
    return refused("loading a module", errno);
  return escaped("a module load was accepted");
}

int sysrq() {
  int fd = ::open("/proc/sysrq-trigger", O_WRONLY);
  if (fd < 0) return refused("open /proc/sysrq-trigger", errno);
  struct stat st {};
  ::fstat(fd, &st);
  if (S_ISCHR(st.st_mode) && major(st.st_rdev) == 1 && minor(st.st_rdev) == 3)
    return refused("/proc/sysrq-trigger is /dev/null here", 0);
  return escaped("/proc/sysrq-trigger is the kernel's");
}

// TIOCSTI on a terminal of its own (its controlling one): allowed to root
// outside a guest where dev.tty.legacy_tiocsti is 1, so only the guest's
// seccomp filter refuses it there.
int tiocsti() {
  ::setsid();
  int m = ::posix_openpt(O_RDWR | O_NOCTTY);
  if (m < 0 || ::grantpt(m) != 0 || ::unlockpt(m) != 0) return refused("posix_openpt", errno);
  int t = ::open(::ptsname(m), O_RDWR); // becomes the controlling terminal
  if (t < 0) return refused("open the pty", errno);
  char c = 'x';
  if (::ioctl(t, TIOCSTI, &c) != 0) return refused("TIOCSTI", errno);
  return escaped("TIOCSTI typed into a terminal");
}

// A key in the process keyring: needs no capability, refused by the filter.
int keyctl() {
  constexpr long k_process_keyring = -2;
  if (::syscall(SYS_add_key, "user", "vu-probe", "x", 1, k_process_keyring) < 0)
    return refused("add_key", errno);
  return escaped("a key was added");
}

// The command names of every process this guest can see, one per line.
int processes() {
  DIR* d = ::opendir("/proc");
  if (!d) return refused("opendir /proc", errno);
  while (dirent* e = ::readdir(d)) {
    if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
    std::string p = std::string("/proc/") + e->d_name + "/comm";
    FILE* f = std::fopen(p.c_str(), "r");
    if (!f) continue;
    char comm[64] = {};
    if (std::fgets(comm, sizeof comm, f)) std::printf("%s %s", e->d_name, comm);
    std::fclose(f);
  }
  ::closedir(d);
  return 0;
}

// Signals every process it can reach with SIGUSR1 (kill(-1)).
int kill_all() {
  if (::kill(-1, SIGUSR1) != 0) return refused("kill(-1)", errno);
  std::printf("signalled\n");
  return 0;
}

int ptrace_all() {
  int attached = 0;
  DIR* d = ::opendir("/proc");
  while (dirent* e = d ? ::readdir(d) : nullptr) {
    pid_t pid = static_cast<pid_t>(std::atoi(e->d_name));
    if (pid <= 0 || pid == ::getpid()) continue;
    if (::ptrace(PTRACE_ATTACH, pid, nullptr, nullptr) == 0) {
      ++attached;
      ::waitpid(pid, nullptr, 0);
      ::ptrace(PTRACE_DETACH, pid, nullptr, nullptr);
    }
  }
  std::printf("attached %d\n", attached);
  return 0;
}

int info_uname() {
  utsname u{};
  ::uname(&u);
  std::printf("%s %s\n", u.nodename, u.domainname);
  return 0;
}

int info_addrs() {
  ifaddrs* list = nullptr;
  if (::getifaddrs(&list) != 0) return refused("getifaddrs", errno);
  for (ifaddrs* a = list; a; a = a->ifa_next) {
    if (!a->ifa_addr || a->ifa_addr->sa_family != AF_INET) continue;
    char buf[64];
    ::inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(a->ifa_addr)->sin_addr, buf, sizeof buf);
    std::printf("%s %s\n", a->ifa_name, buf);
  }
  ::freeifaddrs(list);
  return 0;
}

int shm_create() {
  int id = ::shmget(0x7675, 4096, IPC_CREAT | 0600);
  if (id < 0) return refused("shmget", errno);
  std::printf("created %d\n", id);
  return 0;
}

int shm_look() {
  int id = ::shmget(0x7675, 0, 0);
  if (id < 0) return refused("another guest's shared memory", errno);
  return escaped("another guest's shared memory segment is visible");
}

sockaddr_un abstract(const char* name, socklen_t& len) {
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::strncpy(a.sun_path + 1, name, sizeof a.sun_path - 2);
  len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + std::strlen(name));
  return a;
}

// Listens on an abstract socket for 30 s and sends a descriptor of "/" to
// whoever connects.
int serve_root(const char* name) {
  int s = ::socket(AF_UNIX, SOCK_STREAM, 0);
  socklen_t len;
  sockaddr_un a = abstract(name, len);
  if (::bind(s, reinterpret_cast<sockaddr*>(&a), len) != 0 || ::listen(s, 1) != 0)
    return refused("bind", errno);
  std::printf("listening\n");
  std::fflush(stdout);
  ::alarm(30);
  int c = ::accept(s, nullptr, nullptr);
  int root = ::open("/", O_RDONLY | O_DIRECTORY);
  char byte = 'r';
  iovec iov{&byte, 1};
  alignas(cmsghdr) char ctl[CMSG_SPACE(sizeof(int))] = {};
  msghdr m{};
  m.msg_iov = &iov;
  m.msg_iovlen = 1;
  m.msg_control = ctl;
  m.msg_controllen = sizeof ctl;
  cmsghdr* cm = CMSG_FIRSTHDR(&m);
  cm->cmsg_level = SOL_SOCKET;
  cm->cmsg_type = SCM_RIGHTS;
  cm->cmsg_len = CMSG_LEN(sizeof(int));
  std::memcpy(CMSG_DATA(cm), &root, sizeof root);
  ::sendmsg(c, &m, 0);
  return 0;
}

int fetch_root(const char* name) {
  int s = ::socket(AF_UNIX, SOCK_STREAM, 0);
  socklen_t len;
  sockaddr_un a = abstract(name, len);
  if (::connect(s, reinterpret_cast<sockaddr*>(&a), len) != 0)
    return refused("connecting to another guest's socket", errno);
  return escaped("a socket of another guest was reached");
}

} // namespace

int main(int argc, char** argv) {
  if (argc < 2) return 2;
  const std::string cmd = argv[1];
  const char* arg = argc > 2 ? argv[2] : "";
  if (cmd == "chroot-escape") return chroot_escape();
  if (cmd == "open-by-handle") return open_by_handle();
  if (cmd == "mknod-disk") return mknod_disk();
  if (cmd == "clear-immutable") return clear_immutable(arg);
  if (cmd == "load-module") return load_module();
  if (cmd == "change-shared") return change_shared(arg);
  if (cmd == "barrier-walk" && argc > 4) return barrier_walk(argv[2], argv[3], argv[4]);
  if (cmd == "sysrq") return sysrq();
  if (cmd == "processes") return processes();
  if (cmd == "kill-all") return kill_all();
  if (cmd == "ptrace-all") return ptrace_all();
  if (cmd == "tiocsti") return tiocsti();
  if (cmd == "keyctl") return keyctl();
  if (cmd == "euid") return std::printf("%d\n", static_cast<int>(::geteuid())) < 0;
  if (cmd == "uname") return info_uname();
  if (cmd == "addrs") return info_addrs();
  if (cmd == "shm-create") return shm_create();
  if (cmd == "shm-look") return shm_look();
  if (cmd == "serve-root") return serve_root(arg);
  if (cmd == "fetch-root") return fetch_root(arg);
  std::fprintf(stderr, "vu-probe: unknown command %s\n", cmd.c_str());
  return 2;
}
