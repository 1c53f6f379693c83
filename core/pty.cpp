// The relayed pseudo-terminal (see pty.h).
#include "core/pty.h"

#include "kernel/fs.h"

#include <fcntl.h>
#include <linux/magic.h>
#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/statfs.h>
#include <termios.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>

namespace vu {

namespace {

bool copy_some(int from, int to) {
  char buf[4096];
  ssize_t n = ::read(from, buf, sizeof buf);
  return n > 0 && write_all(to, std::string_view(buf, static_cast<size_t>(n))).ok();
}

void pass_window_size(int master) {
  winsize ws{};
  if (::ioctl(STDIN_FILENO, TIOCGWINSZ, &ws) == 0) ::ioctl(master, TIOCSWINSZ, &ws);
}

// Raw mode on stdin while it lives, when stdin is a terminal.
class RawMode {
public:
  RawMode() {
    if (::tcgetattr(STDIN_FILENO, &m_saved) != 0) return;
    termios raw = m_saved;
    ::cfmakeraw(&raw);
    m_active = ::tcsetattr(STDIN_FILENO, TCSANOW, &raw) == 0;
  }
  ~RawMode() {
    if (m_active) ::tcsetattr(STDIN_FILENO, TCSANOW, &m_saved);
  }
  RawMode(const RawMode&) = delete;
  RawMode& operator=(const RawMode&) = delete;

private:
  termios m_saved{};
  bool m_active = false;
};

} // namespace

Result<Pty> open_pty_here() {
  int root = ::open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (root < 0) return make_error(errno, "open /");
  UniqueFd r(root);
  VU_TRY_ASSIGN(m, open_beneath(root, "dev/pts/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC));
  struct statfs fs {};
  if (::fstatfs(m.get(), &fs) != 0 || fs.f_type != DEVPTS_SUPER_MAGIC)
    return described_error(ENOTTY, "/dev/pts/ptmx of the guest is not a devpts multiplexer");
  int unlock = 0;
  if (::ioctl(m.get(), TIOCSPTLCK, &unlock) != 0) return make_error(errno, "unlock the pty");
  int t = ::ioctl(m.get(), TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (t < 0) return make_error(errno, "open the pty's terminal");
  Pty p;
  p.master = std::move(m);
  p.terminal = UniqueFd(t);
  return p;
}

// One byte of data and room for one descriptor: the message both ends of
// a descriptor hand-over use.
struct DescriptorMessage {
  char byte = 'f';
  iovec iov{&byte, 1};
  alignas(cmsghdr) char ctl[CMSG_SPACE(sizeof(int))] = {};
  msghdr m{};
  DescriptorMessage() {
    m.msg_iov = &iov;
    m.msg_iovlen = 1;
    m.msg_control = ctl;
    m.msg_controllen = sizeof ctl;
  }
  DescriptorMessage(const DescriptorMessage&) = delete;
  DescriptorMessage& operator=(const DescriptorMessage&) = delete;
};

Status send_descriptor(int socket, int fd) {
  DescriptorMessage d;
  cmsghdr* cm = CMSG_FIRSTHDR(&d.m);
  cm->cmsg_level = SOL_SOCKET;
  cm->cmsg_type = SCM_RIGHTS;
  cm->cmsg_len = CMSG_LEN(sizeof(int));
  std::memcpy(CMSG_DATA(cm), &fd, sizeof fd);
  if (::sendmsg(socket, &d.m, MSG_NOSIGNAL) != 1) return make_error(errno, "send a descriptor");
  return {};
}

Result<UniqueFd> receive_descriptor(int socket) {
  DescriptorMessage d;
  ssize_t n = ::recvmsg(socket, &d.m, MSG_CMSG_CLOEXEC);
  if (n != 1) return described_error(EIO, "no terminal came back from the guest");
  cmsghdr* cm = CMSG_FIRSTHDR(&d.m);
  if (!cm || cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS ||
      cm->cmsg_len != CMSG_LEN(sizeof(int)))
    return described_error(EIO, "no terminal came back from the guest");
  int fd = -1;
  std::memcpy(&fd, CMSG_DATA(cm), sizeof fd);
  pass_window_size(fd);
  return UniqueFd(fd);
}

void relay_pty(int master, int pidfd) {
  sigset_t winch;
  sigemptyset(&winch);
  sigaddset(&winch, SIGWINCH);
  sigprocmask(SIG_BLOCK, &winch, nullptr);
  UniqueFd sfd(::signalfd(-1, &winch, SFD_CLOEXEC));
  RawMode raw;
  bool in_open = true;
  for (;;) {
    pollfd fds[4] = {{master, POLLIN, 0},
                     {pidfd, POLLIN, 0},
                     {in_open ? STDIN_FILENO : -1, POLLIN, 0},
                     {sfd.get(), POLLIN, 0}};
    if (::poll(fds, 4, -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (fds[0].revents & POLLIN) {
      if (!copy_some(master, STDOUT_FILENO)) break;
      continue; // drain output before noticing the exit
    }
    if (fds[0].revents & (POLLHUP | POLLERR)) break;
    if (fds[1].revents & POLLIN) break;
    if ((fds[2].revents & (POLLIN | POLLHUP)) && !copy_some(STDIN_FILENO, master)) in_open = false;
    if (fds[3].revents & POLLIN) {
      signalfd_siginfo si;
      if (::read(sfd.get(), &si, sizeof si) > 0) pass_window_size(master);
    }
  }
  sigprocmask(SIG_UNBLOCK, &winch, nullptr);
}

} // namespace vu
