// Starting, stopping and entering guests (see runtime.h).
#include "core/runtime.h"

#include "core/confine.h"
#include "core/guest_cgroup.h"
#include "core/guest_net.h"
#include "core/guest_root.h"
#include "core/pty.h"
#include "kernel/fs.h"
#include "kernel/mount.h"
#include "kernel/ns.h"

#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <ctime>
#include <thread>

namespace vu {

namespace {

constexpr uint64_t k_guest_namespaces =
    CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWNET | CLONE_NEWCGROUP;

struct Pipe {
  UniqueFd r, w;
};

Result<Pipe> make_pipe() {
  int p[2];
  if (::pipe2(p, O_CLOEXEC) != 0) return make_error(errno, "pipe");
  return Pipe{UniqueFd(p[0]), UniqueFd(p[1])};
}

// In a child: reports `message` on the status pipe and ends.
[[noreturn]] void child_fail(int status_fd, const std::string& message) {
  (void)write_all(status_fd, "error " + message + "\n");
  ::_exit(1);
}

void send_signal(int pidfd, int sig) {
  ::syscall(SYS_pidfd_send_signal, pidfd, sig, nullptr, 0);
}

// Waits up to `ms` for the process behind `pidfd` to exit.
bool wait_pidfd(int pidfd, int ms) {
  pollfd p{pidfd, POLLIN, 0};
  return ::poll(&p, 1, ms) > 0;
}

// Where a command's output goes: io.sink (until its first error, which is
// kept) or io.output_fd.
class OutputRelay {
public:
  explicit OutputRelay(const RuntimeIo& io) : m_io(io) {}
  void operator()(std::string_view data) {
    if (!m_io.sink) {
      (void)write_all(m_io.output_fd, data);
    } else if (m_status.ok()) {
      m_status = m_io.sink(data);
    }
  }
  const Status& status() const { return m_status; }

private:
  const RuntimeIo& m_io;
  Status m_status;
};

// ---- the guest's init (runs in the child, PID 1 of the guest) ----

std::vector<std::string> start_command(const VServerConfig& c) {
  if (c.style == InitStyle::commands) return c.cmd_start;
  if (c.style == InitStyle::plain) {
    std::vector<std::string> cmd{"/sbin/init"};
    if (!c.runlevel_start.empty()) cmd.push_back(c.runlevel_start);
    return c.cmd_start.empty() ? cmd : c.cmd_start;
  }
  if (!c.cmd_start.empty()) return c.cmd_start;
  for (const char* rc : {"/etc/init.d/rc", "/etc/rc.d/rc"})
    if (::access(rc, X_OK) == 0) return {rc, c.runlevel_start};
  return {};
}

std::vector<std::string> init_environment(const VServerConfig& c) {
  if (c.style != InitStyle::sysv) return guest_environment(c, {});
  return guest_environment(c, {"RUNLEVEL=" + c.runlevel_start, "PREVLEVEL=N"});
}

// Runs `cmd` with output to `out`; returns its exit status, reaping
// whatever else dies meanwhile (we are PID 1).
int run_and_reap(const std::vector<std::string>& cmd, const std::vector<std::string>& env,
                 int out) {
  pid_t pid = ::fork();
  if (pid == 0) {
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    ::setsid();
    ::dup2(out, 1);
    ::dup2(out, 2);
    close_descriptors_from(3);
    auto r = exec_in_place(cmd, env);
    (void)write_all(2, "vserver: " + r.error().message() + "\n");
    ::_exit(127);
  }
  if (pid < 0) return 127;
  for (;;) {
    int status = 0;
    pid_t done = ::waitpid(-1, &status, 0);
    if (done < 0 && errno != EINTR) return 127;
    if (done == pid) return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }
}

// The descriptors the guest's first process keeps (numbers 3 to 7 in it,
// then the trees of the context mounts).
struct InitFds {
  int root, go, status, out_w, out_r;
  std::vector<ContextMount> mounts;
};

// After the start: waits until the host has read the start's output (it
// closes `go`), then reads and discards what the guest's daemons write to
// the output they inherited, so none of them meets a broken pipe once
// `vserver start` has gone; reaps orphans meanwhile.
[[noreturn]] void reap_and_drain(int go, int out_r) {
  sigset_t chld;
  sigemptyset(&chld);
  sigaddset(&chld, SIGCHLD);
  int sfd = ::signalfd(-1, &chld, SFD_CLOEXEC);
  // Watched after the signals: `go` until the host closes it, then the
  // output until its last writer is gone (then nothing: a pipe at its end
  // would wake poll for ever).
  int watched = go;
  for (;;) {
    pollfd fds[2] = {{sfd, POLLIN, 0}, {watched, POLLIN, 0}};
    if (::poll(fds, 2, -1) < 0 && errno != EINTR) ::sleep(1);
    if (fds[0].revents) {
      signalfd_siginfo info;
      (void)!::read(sfd, &info, sizeof info);
      while (::waitpid(-1, nullptr, WNOHANG) > 0) {
      }
    }
    if (watched >= 0 && fds[1].revents) {
      char buf[4096];
      if (::read(watched, buf, sizeof buf) > 0) continue;
      ::close(watched);
      watched = watched == go ? out_r : -1;
    }
  }
}

// sysv and none: run cmd.prepare and the start command, report, then reap
// orphans for ever. Signals from inside the guest do not reach PID 1 (no
// handlers); the host ends it with SIGKILL.
[[noreturn]] void minimal_init(const VServerConfig& c, const InitFds& fds) {
  sigset_t chld;
  sigemptyset(&chld);
  sigaddset(&chld, SIGCHLD);
  sigprocmask(SIG_BLOCK, &chld, nullptr);
  const auto env = init_environment(c);
  int code = 0;
  if (!c.cmd_prepare.empty()) code = run_and_reap(c.cmd_prepare, env, fds.out_w);
  if (code == 0) code = run_and_reap(start_command(c), env, fds.out_w);
  (void)write_all(fds.status, "rc " + std::to_string(code) + "\n");
  ::close(fds.status);
  ::close(fds.out_w);
  reap_and_drain(fds.go, fds.out_r);
}

// The guest's root as this mount namespace sees it: the descriptor opened
// before clone belongs to the host's namespace, where no mount can be made
// from here. Reopened by path - a path of the host's (the guest cannot
// rename its own root) - and checked to be the same directory.
Result<UniqueFd> reopen_root(const VServerConfig& c, int root) {
  int fd = ::open(c.guest.root.c_str(), O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return make_error(errno, "guest root " + c.guest.root);
  UniqueFd here(fd);
  VU_TRY_ASSIGN(a, stat_fd(root));
  VU_TRY_ASSIGN(b, stat_fd(fd));
  if (a.dev != b.dev || a.ino != b.ino)
    return described_error(ESTALE, "guest root " + c.guest.root + " changed during the start");
  return here;
}

// ccapabilities RAW_ICMP: ping sockets for every group of the guest. Still
// the host's /proc, but /proc/sys/net is the opener's network namespace:
// the guest's own, made for this start.
Status allow_ping_sockets() {
  const char* knob = "/proc/sys/net/ipv4/ping_group_range";
  int fd = ::open(knob, O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return make_error(errno, std::string("open ") + knob);
  UniqueFd owned(fd);
  return write_all(fd, "0 2147483647\n");
}

Status become_guest(const VServerConfig& c, int root, const std::vector<ContextMount>& mounts) {
  if (c.raw_icmp) VU_TRY(allow_ping_sockets());
  {
    VU_TRY_ASSIGN(here, reopen_root(c, root));
    ::close(root);
    VU_TRY(enter_guest_root(here.get(), mounts));
    for (const auto& m : mounts) ::close(m.tree);
  }
  if (::sethostname(c.nodename.data(), c.nodename.size()) != 0)
    return make_error(errno, "sethostname " + c.nodename);
  if (!c.domainname.empty() && ::setdomainname(c.domainname.data(), c.domainname.size()) != 0)
    return make_error(errno, "setdomainname " + c.domainname);
  VU_TRY(bring_up_loopback());
  if (c.style != InitStyle::plain && start_command(c).empty())
    return described_error(ENOENT, "the guest has no /etc/init.d/rc for the sysv init style "
                                   "(Debian: install sysv-rc in it), or set apps/init/style to "
                                   "plain, or to none with apps/init/cmd.start");
  VU_TRY(confine_to_guest(c));
  int null = ::open("/dev/null", O_RDWR | O_CLOEXEC);
  if (null < 0) return make_error(errno, "open /dev/null in the guest");
  // The caller's output is not the guest's: it would keep `vserver start`'s
  // reader waiting for ever. The start command writes to the output pipe.
  for (int fd = 0; fd < 3; ++fd) ::dup2(null, fd);
  ::close(null);
  return {};
}

// The child of clone: waits for the host, becomes the guest, runs init.
[[noreturn]] void guest_child(const VServerConfig& c, const InitFds& fds) {
  char byte = 0;
  if (::read(fds.go, &byte, 1) != 1 || byte != 'g') ::_exit(1);
  auto r = become_guest(c, fds.root, fds.mounts);
  if (!r.ok()) child_fail(fds.status, r.error().message());
  (void)write_all(fds.status, "ready\n");
  if (c.style == InitStyle::plain) {
    auto e = exec_in_place(start_command(c), init_environment(c));
    child_fail(fds.status, e.error().message());
  }
  minimal_init(c, fds);
}

// ---- the host's side of start ----

struct Launched {
  Child init;
  UniqueFd go, status, out;
};

Result<UniqueFd> open_guest_root(const VServerConfig& c) {
  int fd = ::open(c.guest.root.c_str(), O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return make_error(errno, "guest root " + c.guest.root);
  UniqueFd root(fd);
  VU_TRY_ASSIGN(st, stat_fd(fd));
  struct stat host {};
  if (::stat("/", &host) == 0 && st.dev == host.st_dev && st.ino == host.st_ino)
    return described_error(EINVAL, "guest root " + c.guest.root + " is the host's root");
  if (st.uid != 0 || (st.mode & 022))
    return described_error(EPERM, "guest root " + c.guest.root +
                                      " must belong to root and not be writable by others");
  return root;
}

Result<Launched> launch_init(const VServerConfig& c, int root, const GuestCgroups& groups,
                             DieWithParent die, const std::vector<ContextMount>& mounts) {
  VU_TRY_ASSIGN(go, make_pipe());
  VU_TRY_ASSIGN(status, make_pipe());
  VU_TRY_ASSIGN(out, make_pipe());
  std::fflush(nullptr);
  VU_TRY_ASSIGN(child, clone_into(k_guest_namespaces, groups.v2.fd(), die));
  if (child.pid == 0) {
    // Only what the child needs stays open: the root, four pipe ends and
    // the mounts' trees.
    std::vector<int> keep{root, go.r.get(), status.w.get(), out.w.get(), out.r.get()};
    for (const auto& m : mounts) keep.push_back(m.tree);
    const int n = static_cast<int>(keep.size());
    const int high = 10 + n;
    for (int i = 0; i < n; ++i) keep[i] = ::fcntl(keep[i], F_DUPFD, high + i);
    for (int i = 0; i < n; ++i) ::dup2(keep[i], 3 + i);
    close_descriptors_from(3 + n);
    for (int fd = 4; fd < 3 + n; ++fd) ::fcntl(fd, F_SETFD, FD_CLOEXEC);
    InitFds fds{3, 4, 5, 6, 7, {}};
    for (size_t i = 0; i < mounts.size(); ++i)
      fds.mounts.push_back({8 + static_cast<int>(i), mounts[i].target});
    guest_child(c, fds);
  }
  return Launched{std::move(child), std::move(go.w), std::move(status.r), std::move(out.r)};
}

// Reads status lines and relays output until the start command reported
// (or the status pipe closed). Returns the start command's exit status.
Result<int> follow_start(Launched& l, OutputRelay& relay) {
  std::string pending;
  bool ready = false;
  for (;;) {
    pollfd fds[2] = {{l.status.get(), POLLIN, 0}, {l.out.valid() ? l.out.get() : -1, POLLIN, 0}};
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      return make_error(errno, "poll");
    }
    if (fds[1].revents) {
      char buf[4096];
      ssize_t n = ::read(l.out.get(), buf, sizeof buf);
      if (n > 0)
        relay(std::string_view(buf, static_cast<size_t>(n)));
      else
        l.out.reset();
      continue;
    }
    char buf[512];
    ssize_t n = ::read(l.status.get(), buf, sizeof buf);
    if (n <= 0) {
      if (ready) return 0; // plain: init is running
      return described_error(EIO, "the guest's init ended while it was being set up");
    }
    pending.append(buf, static_cast<size_t>(n));
    for (size_t eol; (eol = pending.find('\n')) != std::string::npos;) {
      std::string line = pending.substr(0, eol);
      pending.erase(0, eol + 1);
      if (line == "ready")
        ready = true;
      else if (line.rfind("error ", 0) == 0)
        return described_error(EIO, line.substr(6));
      else if (line.rfind("rc ", 0) == 0)
        return std::atoi(line.c_str() + 3);
    }
  }
}

Status record_and_release(const VServerConfig& c, const GuestRunDir& dir, const GuestCgroups& g,
                          Launched& l) {
  for (const auto& v1 : g.v1) VU_TRY(v1.add(l.init.pid));
  RunState s;
  s.pid = l.init.pid;
  VU_TRY_ASSIGN(ticks, process_start_ticks(l.init.pid));
  s.start_ticks = ticks;
  s.boot = boot_id();
  s.context = c.context;
  s.cgroup2 = g.v2.path();
  for (const auto& v1 : g.v1) s.cgroup1.push_back(v1.path());
  s.started = static_cast<int64_t>(std::time(nullptr));
  VU_TRY(dir.write(s));
  VU_TRY(configure_interfaces(c, l.init.pid, l.init.pidfd.get()));
  // `go` stays open until the start's output is read (start_guest
  // returns): its end tells init to begin draining that output itself.
  (void)write_all(l.go.get(), "g");
  return {};
}

// The guest's cgroups and its first process, waiting for `go`.
struct LaunchedGuest {
  GuestCgroups groups;
  Launched launched;
};

Result<LaunchedGuest> launch_guest(const VServerConfig& c, DieWithParent die,
                                   const std::vector<ContextMount>& mounts = {}) {
  VU_TRY_ASSIGN(root, open_guest_root(c));
  VU_TRY_ASSIGN(groups, make_guest_cgroups(c));
  auto launched = launch_init(c, root.get(), groups, die, mounts);
  if (!launched.ok()) {
    (void)remove_guest_cgroups(groups);
    return launched.error();
  }
  return LaunchedGuest{std::move(groups), std::move(*launched)};
}

Result<UniqueFd> take_lock(const GuestRunDir& dir, const std::string& name, LockWait wait) {
  auto lock = dir.lock(wait);
  if (!lock.ok() && lock.code() == EWOULDBLOCK)
    return described_error(EBUSY, "another vserver command is starting or stopping '" + name +
                                      "'; try again when it has finished");
  return lock;
}

// Ends whatever a stale or failed run left: its processes and cgroups.
void clean_up(const GuestRunDir& dir, const RunState& s) {
  auto g = open_guest_cgroups(s.cgroup2, s.cgroup1);
  if (g.ok()) (void)remove_guest_cgroups(*g);
  (void)dir.clear();
}

} // namespace

// ---- start, stop, status ----

namespace {

// The guest's state when it runs; a stale state is cleaned up on the way.
Result<std::optional<RunState>> running_state(const GuestRunDir& dir, bool* cleaned) {
  VU_TRY_ASSIGN(s, dir.read());
  if (!s) return s;
  if (liveness(*s) == Liveness::running) return s;
  clean_up(dir, *s);
  if (cleaned) *cleaned = true;
  return std::optional<RunState>{};
}

void notice(const RuntimeIo& io, const std::string& text) {
  if (!io.quiet) (void)write_all(2, "vserver: " + text + "\n");
}

} // namespace

Status start_guest(const VServerConfig& c, const RuntimeIo& io) {
  VU_TRY_ASSIGN(dir, GuestRunDir::open(c.guest.name));
  VU_TRY_ASSIGN(lock, take_lock(dir, c.guest.name, LockWait::no));
  bool cleaned = false;
  VU_TRY_ASSIGN(running, running_state(dir, &cleaned));
  if (cleaned) notice(io, "'" + c.guest.name + "': removed the state of an earlier run that ended");
  if (running)
    return described_error(EEXIST, "guest '" + c.guest.name + "' is already running (init pid " +
                                       std::to_string(running->pid) + ")");
  for (const auto& n : c.notices) notice(io, n);
  VU_TRY_ASSIGN(init, launch_guest(c, DieWithParent::no));
  auto& groups = init.groups;
  auto* launched = &init.launched;
  auto fail = [&](const Error& e) -> Status {
    send_signal(launched->init.pidfd.get(), SIGKILL);
    (void)wait_exit_code(launched->init.pid);
    (void)remove_guest_cgroups(groups);
    (void)dir.clear();
    return described_error(e.code, "cannot start '" + c.guest.name + "': " + e.message());
  };
  auto released = record_and_release(c, dir, groups, *launched);
  if (!released.ok()) return fail(released.error());
  OutputRelay relay(io);
  auto code = follow_start(*launched, relay);
  // Only now may init drain the output pipe itself: had it begun earlier,
  // a read of ours that poll announced could block until a daemon wrote.
  launched->go.reset();
  if (!code.ok()) return fail(code.error());
  if (*code != 0)
    return described_error(EIO, "'" + c.guest.name + "' runs, but its start command exited with " +
                                    std::to_string(*code) +
                                    " (output above); stop it with "
                                    "'vserver " +
                                    c.guest.name + " stop'");
  return {};
}

namespace {

std::vector<std::string> stop_command(const VServerConfig& c) {
  if (!c.cmd_stop.empty()) return c.cmd_stop;
  if (c.style == InitStyle::sysv) return {"/etc/init.d/rc", c.runlevel_stop};
  if (c.style == InitStyle::plain && !c.runlevel_stop.empty())
    return {"/sbin/init", c.runlevel_stop};
  return {};
}

// Every process of the guest but its init, by signal `sig`.
void signal_guest(const GuestCgroups& g, pid_t init, int sig) {
  for (pid_t pid : g.v2.processes())
    if (pid != init) ::kill(pid, sig);
}

bool only_init_left(const GuestCgroups& g, pid_t init) {
  for (pid_t pid : g.v2.processes())
    if (pid != init) return false;
  return true;
}

// apps/init/killseq: signal, seconds to wait, signal, ...
void run_kill_sequence(const VServerConfig& c, const GuestCgroups& g, pid_t init) {
  for (size_t i = 0; i < c.killseq.size(); i += 2) {
    if (only_init_left(g, init)) return;
    signal_guest(g, init, c.killseq[i]);
    if (i + 1 >= c.killseq.size()) return;
    const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(c.killseq[i + 1]);
    while (!only_init_left(g, init) && std::chrono::steady_clock::now() < end)
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

Result<int> run_in_guest(const VServerConfig& c, const RunState& s,
                         const std::vector<std::string>& argv, Terminal terminal, int output_fd,
                         OutputRelay* relay = nullptr,
                         const std::vector<ContextMount>& mounts = {});

} // namespace

Status stop_guest(const VServerConfig& c, const RuntimeIo& io) {
  VU_TRY_ASSIGN(dir, GuestRunDir::open(c.guest.name));
  VU_TRY_ASSIGN(lock, take_lock(dir, c.guest.name, LockWait::yes));
  bool cleaned = false;
  VU_TRY_ASSIGN(running, running_state(dir, &cleaned));
  if (!running) {
    notice(io, "'" + c.guest.name + "' is not running" +
                   (cleaned ? " (the state of an earlier run was removed)" : ""));
    return {};
  }
  const RunState s = *running;
  VU_TRY_ASSIGN(pidfd, open_pidfd(s.pid));
  auto cmd = stop_command(c);
  if (!cmd.empty()) {
    auto code = run_in_guest(c, s, cmd, Terminal::none, io.output_fd);
    if (code.ok() && *code != 0)
      notice(io, "'" + c.guest.name + "': the stop command exited with " + std::to_string(*code));
  }
  VU_TRY_ASSIGN(groups, open_guest_cgroups(s.cgroup2, s.cgroup1));
  run_kill_sequence(c, groups, s.pid);
  send_signal(pidfd.get(), SIGKILL); // the PID namespace ends with its init
  if (!wait_pidfd(pidfd.get(), 10000))
    return described_error(EBUSY, "the init of '" + c.guest.name + "' did not end after SIGKILL");
  VU_TRY(remove_guest_cgroups(groups));
  return dir.clear();
}

Result<GuestStatus> guest_status(const std::string& name) {
  VU_TRY_ASSIGN(dir, GuestRunDir::open(name));
  GuestStatus st;
  auto lock = dir.lock(LockWait::no); // cleaning needs it; without it, only read
  VU_TRY_ASSIGN(s, dir.read());
  if (!s) return st;
  if (liveness(*s) != Liveness::running) {
    if (lock.ok()) {
      clean_up(dir, *s);
      st.stale_cleaned = true;
    }
    return st;
  }
  st.running = true;
  st.state = *s;
  auto g = Cgroup::open(s->cgroup2, false);
  if (g.ok()) st.processes = g->processes();
  return st;
}

// ---- exec and enter ----

namespace {

std::vector<std::string> default_shell(const VServerConfig& c) {
  if (!c.shell.empty()) return c.shell;
  if (::access("/bin/bash", X_OK) == 0) return {"/bin/bash", "-login"};
  return {"/bin/sh", "-l"};
}

// The second child: in the guest's PID namespace already. With a
// terminal wanted (`tty_socket` >= 0), it opens a pty of the guest's own
// devpts and sends the master to the host; then it confines itself and
// runs the command.
[[noreturn]] void exec_child(const VServerConfig& c, std::vector<std::string> argv, int tty_socket,
                             int output_fd) {
  ::setsid(); // no controlling terminal of the host's
  if (tty_socket >= 0) {
    auto pty = open_pty_here();
    Status sent = pty.ok() ? send_descriptor(tty_socket, pty->master.get()) : Status(pty.error());
    if (!sent.ok()) {
      (void)write_all(2, "vserver: " + sent.error().message() + "\n");
      ::_exit(126);
    }
    ::ioctl(pty->terminal.get(), TIOCSCTTY, 0);
    for (int fd = 0; fd < 3; ++fd) ::dup2(pty->terminal.get(), fd);
  } else if (output_fd >= 0) {
    int null = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (null >= 0) ::dup2(null, 0);
    ::dup2(output_fd, 1);
    ::dup2(output_fd, 2);
  }
  close_descriptors_from(3);
  if (::chdir("/") != 0) ::_exit(126);
  if (argv.empty()) argv = default_shell(c);
  auto confined = confine_to_guest(c);
  if (!confined.ok()) {
    (void)write_all(2, "vserver: " + confined.error().message() + "\n");
    ::_exit(126);
  }
  auto r = exec_in_place(argv, guest_environment(c, {}));
  (void)write_all(2, "vserver: " + r.error().message() + "\n");
  ::_exit(r.code() == ENOENT ? 127 : 126);
}

// Context mounts in a running guest: in a copy of the guest's mount
// namespace of this process alone (and of what it starts), from which they
// are detached again (detach_context_mounts) when the command has ended -
// a daemon it left keeps the copy, but not the mounts.
Status attach_private_mounts(const std::vector<ContextMount>& mounts) {
  if (mounts.empty()) return {};
  if (::unshare(CLONE_NEWNS) != 0) return make_error(errno, "unshare(CLONE_NEWNS)");
  VU_TRY(make_mounts_private());
  int root = ::open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (root < 0) return make_error(errno, "open / in the guest");
  UniqueFd guard(root);
  for (const auto& m : mounts) VU_TRY(attach_context_mount(root, m));
  return {};
}

// Each tree's descriptor is its mount, attached now: detached through it.
void detach_context_mounts(const std::vector<ContextMount>& mounts) {
  for (auto it = mounts.rbegin(); it != mounts.rend(); ++it)
    if (::fchdir(it->tree) == 0) (void)::umount2(".", MNT_DETACH);
}

// The first child: joins the guest's cgroups and namespaces (the PID
// namespace applies to its children), forks the second and passes on its
// exit status.
[[noreturn]] void join_child(const VServerConfig& c, const RunState& s, int pidfd,
                             const std::vector<std::string>& argv, int tty_socket, int output_fd,
                             const std::vector<ContextMount>& mounts) {
  auto groups = open_guest_cgroups(s.cgroup2, s.cgroup1);
  Status joined = groups.ok() ? join_guest_cgroups(*groups, ::getpid()) : Status(groups.error());
  if (joined.ok()) joined = join_namespaces(pidfd, k_guest_namespaces);
  if (joined.ok()) joined = attach_private_mounts(mounts);
  if (!joined.ok()) {
    (void)write_all(2, "vserver: cannot enter '" + c.guest.name + "': " + joined.error().message() +
                           "\n");
    ::_exit(126);
  }
  pid_t pid = ::fork();
  if (pid == 0) exec_child(c, argv, tty_socket, output_fd);
  if (pid < 0) ::_exit(126);
  if (tty_socket >= 0) ::close(tty_socket);
  auto code = wait_exit_code(pid);
  detach_context_mounts(mounts);
  ::_exit(code.ok() ? *code : 126);
}

// With `relay`, the command's output comes through a pipe read here until
// the entering process has ended and the pipe holds nothing more (a daemon
// the command left may keep it open for ever).
void read_until_exit(int out, pid_t pid, OutputRelay& relay) {
  auto child = open_pidfd(pid);
  ::fcntl(out, F_SETFL, ::fcntl(out, F_GETFL) | O_NONBLOCK);
  bool ended = !child.ok();
  for (;;) {
    pollfd fds[2] = {{out, POLLIN, 0}, {child.ok() ? child->get() : -1, POLLIN, 0}};
    if (!ended && ::poll(fds, 2, -1) < 0 && errno != EINTR) return;
    if (fds[1].revents) ended = true;
    char buf[65536];
    ssize_t n = ::read(out, buf, sizeof buf);
    if (n > 0) {
      relay(std::string_view(buf, static_cast<size_t>(n)));
      continue;
    }
    if (n == 0 || ended) return; // all writers gone, or nothing more after the end
  }
}

Result<int> run_in_guest(const VServerConfig& c, const RunState& s,
                         const std::vector<std::string>& argv, Terminal terminal, int output_fd,
                         OutputRelay* relay, const std::vector<ContextMount>& mounts) {
  UniqueFd relay_r, relay_w;
  if (relay) {
    VU_TRY_ASSIGN(p, make_pipe());
    relay_r = std::move(p.r);
    relay_w = std::move(p.w);
    output_fd = relay_w.get();
  }
  VU_TRY_ASSIGN(pidfd, open_pidfd(s.pid));
  // The pidfd holds the process: if it is still the recorded one now, the
  // namespaces joined through it are the guest's.
  auto ticks = process_start_ticks(s.pid);
  if (!ticks.ok() || *ticks != s.start_ticks)
    return described_error(ESRCH, "guest '" + c.guest.name + "' is not running");
  UniqueFd ours, theirs;
  if (terminal == Terminal::pty) {
    int sp[2];
    if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) != 0)
      return make_error(errno, "socketpair");
    ours = UniqueFd(sp[0]);
    theirs = UniqueFd(sp[1]);
  }
  std::fflush(nullptr);
  pid_t pid = ::fork();
  if (pid < 0) return make_error(errno, "fork");
  if (pid == 0) {
    ours.reset();
    relay_r.reset();
    join_child(c, s, pidfd.get(), argv, theirs.valid() ? theirs.get() : -1, output_fd, mounts);
  }
  if (relay) {
    relay_w.reset();
    read_until_exit(relay_r.get(), pid, *relay);
  }
  if (terminal == Terminal::pty) {
    theirs.reset();
    auto master = receive_descriptor(ours.get());
    auto child = open_pidfd(pid);
    if (master.ok() && child.ok()) relay_pty(master->get(), child->get());
  }
  return wait_exit_code(pid);
}

} // namespace

Result<int> exec_in_guest(const VServerConfig& c, const std::vector<std::string>& argv,
                          Terminal terminal) {
  VU_TRY_ASSIGN(dir, GuestRunDir::open(c.guest.name));
  VU_TRY_ASSIGN(s, dir.read());
  if (!s || liveness(*s) != Liveness::running)
    return described_error(ESRCH, "guest '" + c.guest.name + "' is not running (vserver " +
                                      c.guest.name + " start)");
  return run_in_guest(c, *s, argv, terminal, -1);
}

// ---- a command in the guest's context, running or not ----

namespace {

// The stopped guest's context for one command: started like the guest,
// with the command as its start command and nothing before it; its init
// dies with this process (a kill -9 of the caller ends the command, and the
// next command cleans up the state); the lock is held throughout, so no
// start or stop comes between.
Result<int> run_once(const VServerConfig& guest, const GuestRunDir& dir,
                     const std::vector<std::string>& argv, const RuntimeIo& io,
                     const std::vector<ContextMount>& mounts) {
  VServerConfig c = guest;
  c.style = InitStyle::commands;
  c.cmd_prepare.clear();
  c.cmd_start = argv;
  VU_TRY_ASSIGN(init, launch_guest(c, DieWithParent::yes, mounts));
  auto& groups = init.groups;
  auto* launched = &init.launched;
  Result<int> code = Error{};
  auto released = record_and_release(c, dir, groups, *launched);
  OutputRelay relay(io);
  if (released.ok()) {
    code = follow_start(*launched, relay);
    launched->go.reset();
  } else {
    code = released.error();
  }
  send_signal(launched->init.pidfd.get(), SIGKILL); // its PID namespace ends with it
  (void)wait_exit_code(launched->init.pid);
  (void)remove_guest_cgroups(groups);
  (void)dir.clear();
  if (!code.ok())
    return described_error(code.code(), "cannot run a command in '" + c.guest.name +
                                            "': " + code.error().message());
  if (!relay.status().ok()) return relay.status().error();
  return code;
}

} // namespace

Result<int> run_in_guest_context(const VServerConfig& c, const std::vector<std::string>& argv,
                                 const RuntimeIo& io, const std::vector<ContextDir>& dirs) {
  std::vector<UniqueFd> trees;
  std::vector<ContextMount> mounts;
  for (const auto& d : dirs) {
    VU_TRY_ASSIGN(tree, clone_mount(d.dir, Recursive::no));
    VU_TRY(set_mount_attr(tree.get(), d.attr, 0));
    mounts.push_back({tree.get(), d.target});
    trees.push_back(std::move(tree));
  }
  VU_TRY_ASSIGN(dir, GuestRunDir::open(c.guest.name));
  VU_TRY_ASSIGN(lock, take_lock(dir, c.guest.name, LockWait::no));
  VU_TRY_ASSIGN(running, running_state(dir, nullptr));
  if (!running) return run_once(c, dir, argv, io, mounts);
  lock.reset(); // stopping the guest meanwhile ends the command, as with exec
  OutputRelay relay(io);
  VU_TRY_ASSIGN(code, run_in_guest(c, *running, argv, Terminal::none, io.output_fd,
                                   io.sink ? &relay : nullptr, mounts));
  if (!relay.status().ok()) return relay.status().error();
  return code;
}

} // namespace vu
