// A host package manager on a stopped guest (see host_manager.h).
#include "tools/common/host_manager.h"

#include "core/runtime.h"
#include "kernel/fs.h"
#include "kernel/mount.h"
#include "kernel/ns.h"
#include "tools/common/programs.h"
#include "version.h"

#include <elf.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>

namespace vu {

namespace {

constexpr size_t k_max_request = 65536;
constexpr size_t k_max_args = 4096;

// Whether the ELF file `fd` names an interpreter (is dynamically linked).
Result<bool> has_interpreter(int fd, const std::string& program) {
  Elf64_Ehdr eh{};
  VU_TRY_ASSIGN(n, read_at(fd, &eh, sizeof eh, 0));
  if (n != sizeof eh || std::memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0 ||
      eh.e_ident[EI_CLASS] != ELFCLASS64 || eh.e_phentsize != sizeof(Elf64_Phdr))
    return described_error(ENOEXEC, program + " is not a 64-bit ELF program");
  for (unsigned i = 0; i < eh.e_phnum && i < 256; ++i) {
    Elf64_Phdr ph{};
    VU_TRY_ASSIGN(got, read_at(fd, &ph, sizeof ph, eh.e_phoff + i * sizeof ph));
    if (got != sizeof ph) break;
    if (ph.p_type == PT_INTERP) return true;
  }
  return false;
}

// The child: its own mount namespace with the mounts attached beneath the
// guest's root, then the program with the library's environment.
[[noreturn]] void manager_child(const VServerConfig& c, const HostManagerRun& run,
                                const std::string& library, int root, int broker, int out,
                                const std::vector<ContextMount>& trees) {
  auto fail = [&](const std::string& what) {
    (void)write_all(out, "vunify: " + c.guest.name + ": " + what + "\n");
    ::_exit(126);
  };
  if (::unshare(CLONE_NEWNS) != 0) fail("unshare(CLONE_NEWNS) failed");
  if (auto r = make_mounts_private(); !r.ok()) fail(r.error().message());
  {
    // The descriptor opened before belongs to the host's namespace.
    int here = ::open(c.guest.root.c_str(), O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    auto a = stat_fd(root);
    auto b = here >= 0 ? stat_fd(here) : Result<FileStat>(make_error(errno, c.guest.root));
    if (!a.ok() || !b.ok() || a->dev != b->dev || a->ino != b->ino) fail("the guest root moved");
    for (const auto& m : trees)
      if (auto r = attach_context_mount(here, m); !r.ok()) fail(r.error().message());
  }
  int null = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (null < 0 || ::dup2(null, 0) < 0 || ::dup2(out, 1) < 0 || ::dup2(out, 2) < 0 ||
      ::dup2(broker, 3) < 0)
    fail("cannot set up descriptors");
  close_descriptors_from(4);
  std::vector<std::string> argv{run.program};
  argv.insert(argv.end(), run.args.begin(), run.args.end());
  const std::vector<std::string> env{"LD_PRELOAD=" + library,
                                     "VU_PRELOAD_ROOT=" + c.guest.root,
                                     "VU_PRELOAD_BROKER=3",
                                     "LC_ALL=C",
                                     "PATH=/usr/sbin:/usr/bin:/sbin:/bin",
                                     "HOME=/root"};
  std::vector<char*> a, e;
  for (const auto& s : argv) a.push_back(const_cast<char*>(s.c_str()));
  a.push_back(nullptr);
  for (const auto& s : env) e.push_back(const_cast<char*>(s.c_str()));
  e.push_back(nullptr);
  ::execve(run.program.c_str(), a.data(), e.data());
  fail("cannot run " + run.program);
  ::_exit(126);
}

// One request of the library: the command, then its status on the reply
// socket. Returns false when the broker socket has closed.
bool serve_request(const VServerConfig& c, const HostManagerRun& run, int broker) {
  std::string blob(k_max_request + 1, '\0');
  alignas(cmsghdr) char control[CMSG_SPACE(4 * sizeof(int))] = {};
  iovec iov{blob.data(), blob.size()};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  ssize_t n = ::recvmsg(broker, &msg, MSG_CMSG_CLOEXEC);
  if (n <= 0) return n < 0 && errno == EINTR;
  std::vector<UniqueFd> fds;
  for (cmsghdr* h = CMSG_FIRSTHDR(&msg); h; h = CMSG_NXTHDR(&msg, h))
    if (h->cmsg_level == SOL_SOCKET && h->cmsg_type == SCM_RIGHTS)
      for (size_t i = 0; i < (h->cmsg_len - CMSG_LEN(0)) / sizeof(int); ++i) {
        int fd = -1;
        std::memcpy(&fd, CMSG_DATA(h) + i * sizeof(int), sizeof fd);
        fds.emplace_back(fd);
      }
  // A malformed request gets no answer: its sender exits with 127.
  if (fds.size() != 4 || (msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) ||
      static_cast<size_t>(n) > k_max_request || blob[static_cast<size_t>(n) - 1] != '\0')
    return true;
  std::vector<std::string> argv;
  for (size_t at = 0; at < static_cast<size_t>(n) && argv.size() < k_max_args;) {
    const size_t end = blob.find('\0', at);
    argv.push_back(blob.substr(at, end - at));
    at = end + 1;
  }
  RuntimeIo io{fds[2].get(), true, run.sink};
  auto code = run_in_guest_context(c, argv, io);
  int status = code.ok() ? *code : 126;
  if (!code.ok())
    (void)write_all(fds[3].get(), "vunify: " + c.guest.name + ": " + code.error().message() + "\n");
  (void)::send(fds[0].get(), &status, sizeof status, MSG_NOSIGNAL);
  return true;
}

// Serves the library's requests and relays output until the program ends.
void serve(const VServerConfig& c, const HostManagerRun& run, int broker, int pidfd, int out) {
  bool broker_open = true;
  for (;;) {
    pollfd fds[3] = {{broker_open ? broker : -1, POLLIN, 0}, {pidfd, POLLIN, 0}, {out, POLLIN, 0}};
    if (::poll(fds, 3, -1) < 0 && errno != EINTR) return;
    if (fds[2].revents) {
      char buf[65536];
      ssize_t n = ::read(out, buf, sizeof buf);
      if (n > 0) {
        (void)run.sink(std::string_view(buf, static_cast<size_t>(n)));
        continue;
      }
      if (n == 0) out = -1; // every writer gone
    }
    if (fds[0].revents && broker_open) broker_open = serve_request(c, run, broker);
    if (fds[1].revents) return;
  }
}

} // namespace

Status check_host_program(const std::string& program) {
  if (program.empty() || program.front() != '/')
    return described_error(EINVAL, "the host program must be given by its absolute path");
  int fd = ::open(program.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return make_error(errno, program);
  UniqueFd guard(fd);
  VU_TRY_ASSIGN(st, stat_fd(fd));
  if (!st.is_regular() || st.uid != 0 || (st.mode & 022))
    return described_error(EPERM, program + " must be a regular file of root's, not writable by "
                                            "group or others");
  if (st.mode & (S_ISUID | S_ISGID))
    return described_error(EPERM, program + " is set-uid or set-gid: LD_PRELOAD would not be "
                                            "applied, so it is not run on a guest");
  VU_TRY_ASSIGN(dynamic, has_interpreter(fd, program));
  if (!dynamic)
    return described_error(EPERM, program + " is statically linked: LD_PRELOAD would not be "
                                            "applied, so it is not run on a guest");
  return {};
}

Result<std::string> preload_library() {
  std::vector<std::string> candidates{program_dir() + "/../pkgmgmt/libvu-preload.so",
                                      k_preload_installed};
  for (const auto& path : candidates) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) continue;
    if (!S_ISREG(st.st_mode) || st.st_uid != 0 || (st.st_mode & 022))
      return described_error(EPERM, path + " must be a regular file of root's, not writable by "
                                           "group or others");
    return path;
  }
  return described_error(ENOENT, std::string("libvu-preload.so is not installed (looked for ") +
                                     k_preload_installed + ")");
}

Result<int> run_host_manager(const VServerConfig& c, const HostManagerRun& run) {
  VU_TRY(check_host_program(run.program));
  VU_TRY_ASSIGN(library, preload_library());
  auto st = guest_status(c.guest.name);
  if (!st.ok()) return st.error();
  if (st->running)
    return described_error(EBUSY, "'" + c.guest.name +
                                      "' is running: a host package manager "
                                      "works on stopped guests only");
  int fd = ::open(c.guest.root.c_str(), O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return make_error(errno, "guest root " + c.guest.root);
  UniqueFd root(fd);
  std::vector<UniqueFd> owned;
  std::vector<ContextMount> trees;
  for (const auto& d : run.mounts) {
    VU_TRY_ASSIGN(tree, clone_mount(d.dir, Recursive::no));
    VU_TRY(set_mount_attr(tree.get(), d.attr, 0));
    trees.push_back({tree.get(), d.target});
    owned.push_back(std::move(tree));
  }
  int sp[2], pp[2];
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) != 0)
    return make_error(errno, "socketpair");
  UniqueFd broker(sp[0]), theirs(sp[1]);
  UniqueFd out_r, out_w;
  if (run.sink) {
    if (::pipe2(pp, O_CLOEXEC) != 0) return make_error(errno, "pipe");
    out_r = UniqueFd(pp[0]);
    out_w = UniqueFd(pp[1]);
  }
  const int out = run.sink ? out_w.get() : run.output_fd;
  VU_TRY_ASSIGN(pid, fork_dying_with_parent());
  if (pid == 0) manager_child(c, run, library, root.get(), theirs.get(), out, trees);
  theirs.reset();
  out_w.reset();
  VU_TRY_ASSIGN(pidfd, open_pidfd(pid));
  serve(c, run, broker.get(), pidfd.get(), out_r.valid() ? out_r.get() : -1);
  if (out_r.valid()) { // what is left after the end
    char buf[65536];
    for (ssize_t n; (n = ::read(out_r.get(), buf, sizeof buf)) > 0;)
      (void)run.sink(std::string_view(buf, static_cast<size_t>(n)));
  }
  return wait_exit_code(pid);
}

} // namespace vu
