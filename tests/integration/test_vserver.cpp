// The start/stop core on real guests: copies of the cached debootstrapped
// bookworm tree (sysv-rc and webfs installed), each with its own
// configuration under a temporary configuration base, run directory and
// cgroup parent - nothing of the host's /etc/vservers, /run/vservers or
// cgroups is touched. vu-probe (tests/probe), a static program copied into
// each guest, makes the attacks from inside.
#include "tests/support/build_kind.h"
#include "tests/support/fixtures.h"
#include "tests/support/guest_fixture.h"
#include "tests/support/run_program.h"
#include "tests/support/temp_tree.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <fcntl.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <random>
#include <sstream>
#include <thread>

using namespace vu::test;
namespace fs = std::filesystem;

namespace {

class VServer : public GuestTest {
protected:
  ProgramResult probe(const std::string& guest, const std::vector<std::string>& args) {
    std::vector<std::string> a{guest, "exec", "/usr/local/bin/vu-probe"};
    a.insert(a.end(), args.begin(), args.end());
    return vserver(a, 60);
  }

  void expect_refused(const std::string& guest, const std::vector<std::string>& args) {
    auto r = probe(guest, args);
    EXPECT_EQ(r.status, 0) << args[0] << ": " << r.out << r.err;
    EXPECT_EQ(r.out.rfind("refused", 0), 0u) << args[0] << ": " << r.out << r.err;
  }
};

// A client network namespace joined to the host by a veth pair; the guest
// gets a macvlan on the host end.
class ClientNet {
public:
  explicit ClientNet(int n)
      : m_ns("vutest" + std::to_string(::getpid() % 100000)), m_host("vuh" + std::to_string(n)),
        m_subnet("10.231." + std::to_string(n) + ".") {
    m_ok =
        sh("ip netns add " + m_ns) == 0 &&
        sh("ip link add " + m_host + " type veth peer name vuc" + std::to_string(n) + " netns " +
           m_ns) == 0 &&
        sh("ip link set " + m_host + " up") == 0 &&
        sh("ip -n " + m_ns + " addr add " + m_subnet + "1/24 dev vuc" + std::to_string(n)) == 0 &&
        sh("ip -n " + m_ns + " link set vuc" + std::to_string(n) + " up") == 0;
  }
  ~ClientNet() {
    sh("ip link del " + m_host + " 2>/dev/null");
    sh("ip netns del " + m_ns + " 2>/dev/null");
  }
  bool ok() const { return m_ok; }
  std::string host_dev() const { return m_host; }
  std::string address(int host) const { return m_subnet + std::to_string(host); }
  // An HTTP GET from inside the client namespace (bash's /dev/tcp).
  std::string get(const std::string& ip) const {
    std::string out = "/tmp/vutest-get-" + std::to_string(::getpid());
    sh("ip netns exec " + m_ns + " timeout 10 bash -c 'exec 3<>/dev/tcp/" + ip +
       "/80; printf \"GET /index.html HTTP/1.0\\r\\n\\r\\n\" >&3; cat <&3' > " + out + " 2>&1");
    std::string body = read_all(out);
    ::unlink(out.c_str());
    return body;
  }

private:
  std::string m_ns, m_host, m_subnet;
  bool m_ok = false;
};

TEST(VServerLink, IsStaticAndPositionIndependent) {
  // vserver runs once per exec into a guest: librpm, libapt-pkg and TBB
  // (and the twenty libraries they load) tripled its start (3.2 ms against
  // 0.9 ms) when a unity object of tools/common took them into it; linked
  // statically it loads and relocates no library at all. Position
  // independent, so that its addresses stay random.
  if (vu::test::k_under_asan) GTEST_SKIP() << "the sanitizer build links its programs differently";
  if (::access("/usr/bin/readelf", X_OK) != 0) GTEST_SKIP() << "no readelf (binutils)";
  auto r = vu::test::run_program({"/usr/bin/readelf", "-h", "-l", "-d", VSERVER_BIN});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out.find("(NEEDED)"), std::string::npos) << "vserver needs a shared library:\n"
                                                       << r.out;
  EXPECT_NE(r.out.find("DYN (Position-Independent Executable file)"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("INTERP"), std::string::npos) << "vserver has a dynamic loader:\n" << r.out;
}

TEST_F(VServer, StartsARealDaemonOnItsOwnAddressAndStopLeavesNothing) {
  ClientNet net(7);
  if (!net.ok()) GTEST_SKIP() << "cannot make a network namespace with a veth pair here";
  make_guest("web", 40007, net.host_dev() + ":" + net.address(2) + "/24");
  auto start = vserver({"web", "start"});
  ASSERT_EQ(start.status, 0) << start.out << start.err;
  auto st = vserver({"web", "status"});
  EXPECT_EQ(st.status, 0) << st.out;
  EXPECT_NE(st.out.find("is running at context '40007'"), std::string::npos) << st.out;
  std::string page;
  for (int i = 0; i < 50 && page.find("guest web") == std::string::npos; ++i) {
    page = net.get(net.address(2));
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_NE(page.find("guest web"), std::string::npos) << page;
  auto uname = probe("web", {"uname"});
  EXPECT_EQ(uname.out.rfind("web-host ", 0), 0u) << uname.out << uname.err;
  EXPECT_FALSE(processes_in(root("web")).empty());
  auto stop = vserver({"web", "stop"});
  ASSERT_EQ(stop.status, 0) << stop.out << stop.err;
  EXPECT_TRUE(processes_in(root("web")).empty());
  EXPECT_EQ(vserver({"web", "running"}).status, 1);
  EXPECT_EQ(vserver({"web", "status"}).status, 3);
  EXPECT_FALSE(fs_exists(t.path("run/web/state")));
  EXPECT_EQ(net.get(net.address(2)).find("guest web"), std::string::npos);
}

TEST_F(VServer, AttacksFromInsideAGuestFail) {
  make_guest("a", 40010);
  put(root("a") + "/usr/local/share/shared.txt", "shared by unification\n");
  ASSERT_EQ(sh("chattr +i " + root("a") + "/usr/local/share/shared.txt"), 0);
  auto start = vserver({"a", "start"});
  ASSERT_EQ(start.status, 0) << start.out << start.err;
  expect_refused("a", {"chroot-escape"});
  expect_refused("a", {"open-by-handle"});
  expect_refused("a", {"mknod-disk"});
  expect_refused("a", {"clear-immutable", "/usr/local/share/shared.txt"});
  expect_refused("a", {"load-module"});
  expect_refused("a", {"sysrq"});
  // What only the seccomp filter refuses: the same probe on the host is
  // the control (it shows the call works where the filter is not).
  for (const char* call : {"tiocsti", "keyctl"}) {
    auto host = run_program({VU_PROBE_BIN, call}, {}, 30);
    if (host.out.rfind("ESCAPED", 0) != 0) {
      ADD_FAILURE() << call << " does not work on the host either: " << host.out << host.err;
      continue;
    }
    auto r = probe("a", {call});
    EXPECT_EQ(r.out.rfind("refused", 0), 0u) << call << ": " << r.out << r.err;
    EXPECT_NE(r.out.find("Operation not permitted"), std::string::npos) << r.out;
  }
  // Host processes are neither visible nor reachable.
  auto ps = probe("a", {"processes"});
  EXPECT_EQ(ps.status, 0) << ps.err;
  EXPECT_EQ(ps.out.find("vu_integration"), std::string::npos) << ps.out;
  EXPECT_NE(ps.out.find("1 "), std::string::npos) << ps.out; // the guest's own init
  pid_t sleeper = ::fork();
  if (sleeper == 0) {
    ::execl("/bin/sleep", "sleep", "60", nullptr);
    ::_exit(127);
  }
  auto k = probe("a", {"kill-all"});
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_EQ(::waitpid(sleeper, nullptr, WNOHANG), 0) << "a host process was killed from the guest";
  ::kill(sleeper, SIGKILL);
  ::waitpid(sleeper, nullptr, 0);
  EXPECT_EQ(k.status, 0) << k.err;
}

TEST_F(VServer, TwoGuestsDoNotSeeEachOther) {
  make_guest("a", 40021, "10.232.1.2/24");
  make_guest("b", 40022, "10.232.2.2/24");
  // util-vserver's context capabilities and flags: RAW_ICMP is applied (a's
  // users may ping, in a's network namespace only); the others are named.
  put(conf("a") + "/ccapabilities", "RAW_ICMP\nSECURE_MOUNT\n");
  put(conf("a") + "/flags", "HIDE_NETIF\nVIRT_MEM\n");
  const std::string host_ping = read_all("/proc/sys/net/ipv4/ping_group_range");
  std::string start_a;
  for (const char* g : {"a", "b"}) {
    auto r = vserver({g, "start"});
    ASSERT_EQ(r.status, 0) << g << ": " << r.out << r.err;
    if (std::string(g) == "a") start_a = r.err;
  }
  EXPECT_NE(start_a.find("ccapabilities: SECURE_MOUNT not applied on mainline Linux (RAW_ICMP is)"),
            std::string::npos)
      << start_a;
  EXPECT_NE(start_a.find("flags: VIRT_MEM not applied"), std::string::npos) << start_a;
  EXPECT_EQ(start_a.find("HIDE_NETIF"), std::string::npos) << "what the namespaces do: " << start_a;
  EXPECT_EQ(vserver({"a", "exec", "cat", "/proc/sys/net/ipv4/ping_group_range"}).out,
            "0\t2147483647\n");
  EXPECT_EQ(vserver({"b", "exec", "cat", "/proc/sys/net/ipv4/ping_group_range"}).out, "1\t0\n");
  EXPECT_EQ(read_all("/proc/sys/net/ipv4/ping_group_range"), host_ping)
      << "the host's is untouched";
  EXPECT_EQ(probe("a", {"uname"}).out.rfind("a-host ", 0), 0u);
  EXPECT_EQ(probe("b", {"uname"}).out.rfind("b-host ", 0), 0u);
  auto addrs_b = probe("b", {"addrs"});
  EXPECT_NE(addrs_b.out.find("10.232.2.2"), std::string::npos) << addrs_b.out << addrs_b.err;
  EXPECT_EQ(addrs_b.out.find("10.232.1.2"), std::string::npos) << addrs_b.out;
  auto shm = probe("a", {"shm-create"});
  EXPECT_EQ(shm.out.rfind("created", 0), 0u) << shm.out << shm.err;
  expect_refused("b", {"shm-look"});
  // A process of a that would hand out a descriptor of its root.
  pid_t server = spawn_quiet(
      {VSERVER_BIN, "a", "exec", "/usr/local/bin/vu-probe", "serve-root", "vutest-root"}, m_env);
  auto probes_in = [&](const std::string& g) {
    std::string out = probe(g, {"processes"}).out;
    size_t n = 0;
    for (size_t at = out.find("vu-probe"); at != std::string::npos;
         at = out.find("vu-probe", at + 1))
      ++n;
    return n;
  };
  for (int i = 0; i < 100 && probes_in("a") < 2; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  ASSERT_EQ(probes_in("a"), 2u) << "the server in a did not start";
  expect_refused("b", {"fetch-root", "vutest-root"});
  // The same request from inside a reaches it: the refusal above is the
  // guests' separation, not a server that was not there.
  auto own = probe("a", {"fetch-root", "vutest-root"});
  EXPECT_EQ(own.out.rfind("ESCAPED", 0), 0u) << own.out << own.err;
  EXPECT_EQ(probes_in("b"), 1u) << "b sees a's processes"; // only itself
  ::kill(server, SIGKILL);
  ::waitpid(server, nullptr, 0);
}

TEST_F(VServer, AHostConfiguredForTheBpfBackEndStartsNoGuestWithoutItsProgram) {
  // This machine's kernel refuses BPF LSM programs, so the program cannot
  // be loaded: guests whose shared files it should protect stay stopped.
  make_guest("f", 40031);
  put(t.path("etc/.defaults/apps/vunify/attr-backend"), "bpf\n");
  auto start = vserver({"f", "start"});
  EXPECT_EQ(start.status, 1);
  EXPECT_NE(start.err.find("vattr-bpf load"), std::string::npos) << start.err;
  EXPECT_EQ(vserver({"f", "status"}).status, 3);
  std::vector<std::string> argv{START_VSERVERS_BIN, "-c", t.path("etc"), "--all", "--start"};
  auto all = run_program(argv, m_env, 60);
  EXPECT_NE(all.status, 0);
  EXPECT_NE(all.err.find("vattr-bpf load"), std::string::npos) << all.err;
  put(t.path("etc/.defaults/apps/vunify/attr-backend"), "mainline\n");
  EXPECT_EQ(vserver({"f", "start"}).status, 0);
  EXPECT_EQ(vserver({"f", "stop"}).status, 0);
}

TEST_F(VServer, ExecPassesExitStatusAndRefusesAStoppedGuest) {
  make_guest("e", 40030);
  auto stopped = vserver({"e", "exec", "/bin/true"});
  EXPECT_EQ(stopped.status, 1);
  EXPECT_NE(stopped.err.find("is not running"), std::string::npos) << stopped.err;
  ASSERT_EQ(vserver({"e", "start"}).status, 0);
  EXPECT_EQ(vserver({"e", "exec", "/bin/sh", "-c", "exit 7"}).status, 7);
  auto env = vserver({"e", "exec", "/usr/bin/env"});
  EXPECT_NE(env.out.find("container=vserver"), std::string::npos) << env.out;
  EXPECT_EQ(env.out.find("VSERVER_CONFDIR"), std::string::npos) << "the host's environment leaked";
  auto caps = vserver({"e", "exec", "/bin/grep", "^Cap", "/proc/self/status"});
  EXPECT_NE(caps.out.find("CapBnd:\t00000000b084edfb"), std::string::npos) << caps.out;
  // enter on a terminal (script(1) gives vserver one): the shell runs on a
  // pty vserver relays; its exit status comes back.
  std::string env_line;
  for (const auto& e : m_env) env_line += e + " ";
  auto enter = run_program({"/bin/sh", "-c",
                            "printf 'tty; uname -n; exit 3\\n' | script -qec '" + env_line +
                                VSERVER_BIN " e enter' /dev/null"},
                           {}, 60);
  EXPECT_EQ(enter.status, 3) << enter.out << enter.err;
  EXPECT_NE(enter.out.find("e-host"), std::string::npos) << enter.out;
  EXPECT_NE(enter.out.find("/dev/pts/"), std::string::npos) << enter.out;
  auto again = vserver({"e", "start"});
  EXPECT_EQ(again.status, 1);
  EXPECT_NE(again.err.find("already running"), std::string::npos) << again.err;
}

TEST_F(VServer, SetUidProgramsWorkForAGuestsUsers) {
  // su, sudo and passwd: a user of the guest runs a set-uid-root program
  // and becomes root of the guest (with the guest's capabilities only).
  make_guest("su", 40035);
  ASSERT_EQ(sh("install -m 4755 " VU_PROBE_BIN " " + root("su") + "/usr/local/bin/vu-suid"), 0);
  ASSERT_EQ(vserver({"su", "start"}).status, 0);
  auto nnp = vserver({"su", "exec", "grep", "NoNewPrivs", "/proc/self/status"});
  EXPECT_EQ(nnp.out, "NoNewPrivs:\t0\n") << nnp.err;
  auto user = vserver({"su", "exec", "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                       "/usr/local/bin/vu-probe", "euid"});
  EXPECT_EQ(user.out, "65534\n") << user.err;
  auto suid = vserver({"su", "exec", "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                       "/usr/local/bin/vu-suid", "euid"});
  EXPECT_EQ(suid.out, "0\n") << suid.err;
  // ... and still cannot do what the guest's root cannot.
  auto imm = vserver({"su", "exec", "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                      "/usr/local/bin/vu-suid", "load-module"});
  EXPECT_EQ(imm.out.rfind("refused", 0), 0u) << imm.out << imm.err;
}

TEST_F(VServer, AGuestWhoseInitDiedIsStaleAndStartsAgain) {
  make_guest("s", 40040);
  ASSERT_EQ(vserver({"s", "start"}).status, 0);
  std::string state = read_all(t.path("run/s/state"));
  pid_t init = static_cast<pid_t>(std::atoi(state.c_str() + state.find("pid=") + 4));
  ASSERT_GT(init, 0);
  ::kill(init, SIGKILL);
  for (int i = 0; i < 100 && ::kill(init, 0) == 0; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_EQ(vserver({"s", "status"}).status, 3);
  EXPECT_FALSE(fs_exists(t.path("run/s/state")));
  auto start = vserver({"s", "start"});
  EXPECT_EQ(start.status, 0) << start.err;
  EXPECT_EQ(vserver({"s", "running"}).status, 0);
}

TEST_F(VServer, StartShowsTheStartOutputAndDaemonsOutliveItsReader) {
  // Style none: the start command prints, then leaves a daemon that keeps
  // the output it inherited and writes to it after `vserver start` is gone.
  make_guest("o", 40045);
  put(conf("o") + "/apps/init/style", "none\n");
  put(conf("o") + "/apps/init/cmd.start",
      "/bin/sh\n-c\necho starting o; "
      "(sleep 1; while :; do echo late; echo beat >> /tmp/beats; sleep 0.1; done) &\n");
  auto start = vserver({"o", "start"}, 30);
  ASSERT_FALSE(start.timed_out) << "vserver start waited for the daemon's output to end";
  ASSERT_EQ(start.status, 0) << start.err;
  EXPECT_NE(start.out.find("starting o"), std::string::npos) << start.out;
  EXPECT_EQ(start.out.find("late"), std::string::npos) << start.out;
  // Still writing well after the reader left: no broken pipe killed it.
  std::this_thread::sleep_for(std::chrono::milliseconds(1800));
  const size_t before = read_all(root("o") + "/tmp/beats").size();
  std::this_thread::sleep_for(std::chrono::milliseconds(600));
  EXPECT_GT(before, 0u);
  EXPECT_GT(read_all(root("o") + "/tmp/beats").size(), before);
  EXPECT_EQ(vserver({"o", "stop"}).status, 0);
  EXPECT_TRUE(processes_in(root("o")).empty());
}

TEST_F(VServer, AnIdleGuestsInitUsesNoCpu) {
  // No daemon holds the output pipe after the start: the guest's init must
  // sleep, not spin on a pipe at its end.
  make_guest("i", 40046);
  put(conf("i") + "/apps/init/style", "none\n");
  put(conf("i") + "/apps/init/cmd.start", "/bin/true\n");
  ASSERT_EQ(vserver({"i", "start"}).status, 0);
  std::string state = read_all(t.path("run/i/state"));
  const std::string pid = std::to_string(std::atoi(state.c_str() + state.find("pid=") + 4));
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  std::string stat = read_all("/proc/" + pid + "/stat");
  std::istringstream fields(stat.substr(stat.rfind(')') + 2));
  std::vector<std::string> f{std::istream_iterator<std::string>(fields), {}};
  ASSERT_GT(f.size(), 13u) << stat;
  const long ticks = std::atol(f[11].c_str()) + std::atol(f[12].c_str()); // utime + stime
  EXPECT_LT(ticks, 20) << "the guest's init used " << ticks << " ticks in 1.5 s";
}

TEST_F(VServer, APlainGuestRunsItsOwnInitAsPidOneAndStopsWithIt) {
  // Style plain: the guest's /sbin/init is the guest's PID 1, given the
  // runlevel; `stop` runs it again with the stop runlevel, then ends the
  // guest. Here /sbin/init is a script that records how it was run.
  make_guest("pl", 40047);
  put(conf("pl") + "/apps/init/style", "plain\n");
  put(conf("pl") + "/apps/init/runlevel.start", "2\n");
  put(conf("pl") + "/apps/init/runlevel.stop", "0\n");
  put(root("pl") + "/sbin/init",
      "#!/bin/sh\n"
      "if [ $$ != 1 ]; then echo \"stop $*\" >> /tmp/plain-init; exit 0; fi\n"
      "echo \"pid $$ args $*\" > /tmp/plain-init\n"
      "mkfifo /tmp/plain-wait && read x < /tmp/plain-wait\n"); // no child to kill
  ASSERT_EQ(::chmod((root("pl") + "/sbin/init").c_str(), 0755), 0);
  auto start = vserver({"pl", "start"}, 30);
  ASSERT_EQ(start.status, 0) << start.err;
  for (int i = 0; i < 100 && read_all(root("pl") + "/tmp/plain-init").empty(); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_EQ(read_all(root("pl") + "/tmp/plain-init"), "pid 1 args 2\n");
  auto pid1 = vserver({"pl", "exec", "/bin/cat", "/proc/1/cmdline"});
  EXPECT_NE(pid1.out.find("/sbin/init"), std::string::npos) << pid1.out << pid1.err;
  EXPECT_EQ(vserver({"pl", "stop"}, 30).status, 0);
  EXPECT_EQ(read_all(root("pl") + "/tmp/plain-init"), "pid 1 args 2\nstop 0\n");
  EXPECT_TRUE(processes_in(root("pl")).empty());
  EXPECT_NE(vserver({"pl", "running"}).status, 0);
  // Without a /sbin/init, the start fails with a line that names it, and
  // leaves nothing running.
  ASSERT_EQ(::unlink((root("pl") + "/sbin/init").c_str()), 0);
  auto missing = vserver({"pl", "start"}, 30);
  EXPECT_NE(missing.status, 0);
  EXPECT_NE(missing.err.find("/sbin/init"), std::string::npos) << missing.err;
  EXPECT_TRUE(processes_in(root("pl")).empty());
  EXPECT_NE(vserver({"pl", "running"}).status, 0);
}

TEST_F(VServer, VpsAndVserverStatShowEachGuestsProcesses) {
  make_guest("p", 40070);
  make_guest("q", 40071);
  for (const char* g : {"p", "q"}) ASSERT_EQ(vserver({g, "start"}).status, 0) << g;
  // A process of p's whose name claims to be the host's.
  pid_t sleeper = spawn_quiet(
      {VSERVER_BIN, "p", "exec", "/bin/bash", "-c", "exec -a '0 MAIN fake' /bin/sleep 77"}, m_env);
  std::string line;
  for (int i = 0; i < 100 && line.empty(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    auto vps = run_program({VPS_BIN, "ax"}, m_env, 30);
    ASSERT_EQ(vps.status, 0) << vps.err;
    std::istringstream in(vps.out);
    std::string header;
    std::getline(in, header);
    ASSERT_NE(header.find("CONTEXT"), std::string::npos) << header;
    // The guest's sleep, not the host's `vserver p exec ...` that starts it
    // (its command line names the fake too, and a slow machine lists it first).
    for (std::string l; std::getline(in, l);)
      if (l.find("fake") != std::string::npos && l.find(VSERVER_BIN) == std::string::npos) line = l;
  }
  // The column comes from the process's cgroup and namespaces, not its name.
  EXPECT_NE(line.find("40070 p "), std::string::npos) << line;
  auto own = run_program({VPS_BIN, "-p", std::to_string(::getpid())}, m_env, 30);
  EXPECT_NE(own.out.find("0 MAIN"), std::string::npos) << own.out;

  auto stat = run_program({VSERVER_STAT_BIN}, m_env, 30);
  ASSERT_EQ(stat.status, 0) << stat.err;
  EXPECT_EQ(stat.out.rfind("CTX   PROC    VSZ    RSS  userTIME   sysTIME    UPTIME NAME\n", 0), 0u)
      << stat.out;
  auto json = run_program({VSERVER_STAT_BIN, "--json"}, m_env, 30);
  ASSERT_EQ(json.status, 0) << json.err;
  auto j = nlohmann::json::parse(json.out);
  EXPECT_EQ(j["tool"], "vserver-stat");
  EXPECT_TRUE(j.contains("version") && j.contains("timestamp")) << json.out;
  ASSERT_EQ(j["guests"].size(), 2u) << json.out;
  std::map<std::string, nlohmann::json> by_name;
  for (const auto& g : j["guests"]) by_name[g["name"].get<std::string>()] = g;
  EXPECT_EQ(by_name["p"]["context"], 40070);
  EXPECT_EQ(by_name["q"]["context"], 40071);
  // Both run init and webfsd; p also the sleeper and the `vserver exec`
  // that waits for it inside p's cgroup.
  EXPECT_EQ(by_name["p"]["processes"].get<int>(), by_name["q"]["processes"].get<int>() + 2);
  EXPECT_GT(by_name["p"]["rss_bytes"].get<long>(), 0);
  EXPECT_NE(stat.out.find(" p\n"), std::string::npos) << stat.out;
  EXPECT_NE(stat.out.find(" q\n"), std::string::npos) << stat.out;
  ::kill(sleeper, SIGKILL);
  ::waitpid(sleeper, nullptr, 0);
  ASSERT_EQ(vserver({"q", "stop"}).status, 0);
  auto after = run_program({VSERVER_STAT_BIN, "--json"}, m_env, 30);
  EXPECT_EQ(nlohmann::json::parse(after.out)["guests"].size(), 1u) << after.out;
}

TEST_F(VServer, UnifyAndHashifyRunTheSuiteForTheGuest) {
  make_guest("u1", 40080);
  make_guest("u2", 40081);
  fs::create_directories(conf("u2") + "/apps/vunify");
  fs::create_symlink(conf("u1"), conf("u2") + "/apps/vunify/refserver.0");
  const std::string file = "/usr/bin/dpkg";
  ASSERT_FALSE(same_inode(root("u1") + file, root("u2") + file));
  auto r = vserver({"u2", "unify", "-q"});
  ASSERT_EQ(r.status, 0) << r.out << r.err;
  EXPECT_TRUE(same_inode(root("u1") + file, root("u2") + file));
  // A running guest keeps running on its unified files.
  ASSERT_EQ(vserver({"u2", "start"}).status, 0);
  EXPECT_EQ(vserver({"u2", "exec", "dpkg", "--version"}).status, 0);
  auto h = vserver({"u2", "hashify", "--help"});
  EXPECT_EQ(h.status, 0) << h.err;
  EXPECT_NE(h.out.find("vhashify"), std::string::npos) << h.out;
}

TEST_F(VServer, StartVserversStartsMarkedGuestsAfterTheirDependencies) {
  // web is marked "default" and depends on db (unmarked); other is neither.
  make_guest("web", 40090);
  make_guest("db", 40091);
  make_guest("other", 40092);
  put(conf("web") + "/apps/init/mark", "default\n");
  put(conf("web") + "/apps/init/depends", "db\n");
  auto sv = [&](const std::vector<std::string>& args) {
    std::vector<std::string> argv{START_VSERVERS_BIN};
    argv.insert(argv.end(), args.begin(), args.end());
    return run_program(argv, m_env, 180);
  };
  auto start = sv({"-m", "default", "--start"});
  ASSERT_EQ(start.status, 0) << start.out << start.err;
  EXPECT_EQ(vserver({"web", "running"}).status, 0);
  EXPECT_EQ(vserver({"db", "running"}).status, 0);
  EXPECT_EQ(vserver({"other", "running"}).status, 1);
  // db first: its init is older than web's (start times in clock ticks).
  auto started = [&](const std::string& g) {
    std::string st = read_all(t.path("run/" + g + "/state"));
    return std::atoll(st.c_str() + st.find("start=") + 6);
  };
  EXPECT_LE(started("db"), started("web"));
  // Nothing to do a second time.
  EXPECT_EQ(sv({"-m", "default", "--start"}).status, 0);
  // A broken guest among the selected: the others still start, exit 2.
  put(conf("other") + "/apps/init/mark", "default\n");
  put(conf("other") + "/context", "not a number\n");
  ASSERT_EQ(sv({"-m", "default", "--stop"}).status, 2); // other: unreadable
  EXPECT_EQ(vserver({"web", "running"}).status, 1);
  auto some = sv({"-m", "default", "--start"});
  EXPECT_EQ(some.status, 2) << some.err;
  EXPECT_NE(some.err.find("'other'"), std::string::npos) << some.err;
  EXPECT_EQ(vserver({"web", "running"}).status, 0);
  // A cycle is refused before anything is started; stopping goes on.
  put(conf("other") + "/context", "40092\n");
  put(conf("db") + "/apps/init/depends", "web\n");
  ASSERT_EQ(sv({"--all", "--stop"}).status, 0);
  EXPECT_EQ(vserver({"web", "running"}).status, 1);
  auto cycle = sv({"--start", "--", "web"});
  EXPECT_EQ(cycle.status, 1);
  EXPECT_NE(cycle.err.find("cycle"), std::string::npos) << cycle.err;
  EXPECT_EQ(vserver({"db", "running"}).status, 1);
  // A dependency that is a path, not a name: an error naming the file.
  put(conf("db") + "/apps/init/depends", "../../etc\n");
  auto path = sv({"--start", "--", "db"});
  EXPECT_EQ(path.status, 1);
  EXPECT_NE(path.err.find("is not a guest name"), std::string::npos) << path.err;
  EXPECT_EQ(vserver({"db", "running"}).status, 1);
  EXPECT_EQ(sv({"--start"}).status, 0); // nothing selected, nothing to do
  EXPECT_EQ(sv({"--start", "--stop"}).status, 2);
}

TEST_F(VServer, HostileConfigurationStartsNothing) {
  make_guest("h", 40050, "192.0.2.50/24"); // never started: the cases below break it
  make_guest("other", 40051);
  struct Case {
    std::string what, file, content, expect;
  };
  const std::vector<Case> cases{
      {"vdir to /", "vdir", "/", "host"},
      {"vdir into another guest", "vdir", root("other") + "/var", "inside"},
      {"context", "context", "forty\n", "context"},
      {"nodename", "uts/nodename", "a/b\n", "host name"},
      {"ip", "interfaces/0/ip", "999.1.1.1\n", "address"},
      {"capability", "bcapabilities", "CAP_NONSENSE\n", "capability"},
      {"style", "apps/init/style", "gentoo-ish\n", "init style"},
      {"cgroup value", "cgroup/pids.max", "1 2\n", "one value"},
      {"killseq", "apps/init/killseq", "TERM\n", "number"},
      {"huge file", "context", std::string(1 << 20, '7'), "larger than"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.what);
    const std::string path = conf("h") + "/" + c.file;
    // The setting as make_guest wrote it (a link for vdir), put back after.
    const bool link = fs::is_symlink(path), had = link || fs::exists(path);
    const std::string saved = link ? fs::read_symlink(path).string() : had ? read_all(path) : "";
    fs::remove(path);
    if (c.file == "vdir")
      fs::create_symlink(c.content, path);
    else
      put(path, c.content);
    auto r = vserver({"h", "start"});
    EXPECT_NE(r.status, 0);
    EXPECT_NE(r.err.find(c.expect), std::string::npos) << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    EXPECT_FALSE(fs_exists(t.path("run/h/state")));
    EXPECT_TRUE(processes_in(root("h")).empty());
    fs::remove(path);
    if (link)
      fs::create_symlink(saved, path);
    else if (had)
      put(path, saved);
  }
  // A FIFO where a value is expected: an error, not a hang.
  fs::remove(conf("h") + "/context");
  ASSERT_EQ(::mkfifo((conf("h") + "/context").c_str(), 0600), 0);
  auto fifo = vserver({"h", "start"}, 20);
  EXPECT_FALSE(fifo.timed_out);
  EXPECT_NE(fifo.status, 0);
  EXPECT_NE(fifo.err.find("not a regular file"), std::string::npos) << fifo.err;
}

TEST_F(VServer, KillNineDuringStartAndStopLeavesAStateTheNextCommandHandles) {
  make_guest("k", 40060);
  auto t0 = std::chrono::steady_clock::now();
  ASSERT_EQ(vserver({"k", "start"}).status, 0);
  double start_us =
      std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count();
  ASSERT_EQ(vserver({"k", "stop"}).status, 0);
  KillDelay delay(start_us, 1.0, 4242);
  for (int round = 0; round < 12; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    const bool during_stop = round % 2 == 1;
    if (during_stop) {
      ASSERT_EQ(vserver({"k", "start"}).status, 0);
    }
    std::vector<std::string> argv{VSERVER_BIN, "k", during_stop ? "stop" : "start"};
    pid_t pid = ::fork();
    if (pid == 0) {
      for (const auto& e : m_env) ::putenv(const_cast<char*>(e.c_str()));
      int null = ::open("/dev/null", O_WRONLY);
      ::dup2(null, 1);
      ::dup2(null, 2);
      std::vector<char*> a;
      for (auto& s : argv) a.push_back(s.data());
      a.push_back(nullptr);
      ::execv(a[0], a.data());
      ::_exit(127);
    }
    delay.kill_after_delay(pid);
    auto st = vserver({"k", "status"});
    EXPECT_TRUE(st.status == 0 || st.status == 3) << st.out << st.err;
    auto stop = vserver({"k", "stop"});
    EXPECT_EQ(stop.status, 0) << stop.err;
    EXPECT_EQ(vserver({"k", "status"}).status, 3);
    EXPECT_TRUE(processes_in(root("k")).empty());
  }
  auto start = vserver({"k", "start"});
  EXPECT_EQ(start.status, 0) << start.err;
}

TEST_F(VServer, CgroupLimitsAreApplied) {
  make_guest("l", 40079);
  put(conf("l") + "/cgroup/pids.max", "321\n");
  auto r = vserver({"l", "start"});
  if (r.status != 0 && r.err.find("no pids controller") != std::string::npos)
    GTEST_SKIP() << "no pids controller on this host";
  ASSERT_EQ(r.status, 0) << r.err;
  auto stat = vserver({"l", "exec", "/bin/cat", "/proc/self/cgroup"});
  EXPECT_EQ(stat.status, 0);
  std::string v1 = "/sys/fs/cgroup/pids/" + m_cgroup + "/l/pids.max";
  std::string found = fs_exists(v1) ? read_all(v1) : "";
  if (found.empty()) // cgroup2 holds the controller
    for (const char* base : {"/sys/fs/cgroup", "/sys/fs/cgroup/unified"})
      if (fs_exists(std::string(base) + "/" + m_cgroup + "/l/pids.max"))
        found = read_all(std::string(base) + "/" + m_cgroup + "/l/pids.max");
  EXPECT_EQ(found, "321\n");
}

TEST_F(VServer, BuildMakesASkeletonGuestAndRefusesAnExistingOne) {
  auto r = vserver({"sk", "build", "-m", "skeleton", "--hostname", "skel", "--interface",
                    "10.9.8.7/24", "--context", "42"});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(read_all(conf("sk") + "/uts/nodename"), "skel\n");
  EXPECT_EQ(read_all(conf("sk") + "/context"), "42\n");
  EXPECT_EQ(read_all(conf("sk") + "/interfaces/0/ip"), "10.9.8.7\n");
  EXPECT_EQ(read_all(conf("sk") + "/interfaces/0/prefix"), "24\n");
  EXPECT_EQ(fs::read_symlink(conf("sk") + "/vdir").string(), root("sk"));
  EXPECT_TRUE(fs::is_directory(root("sk") + "/proc"));
  auto again = vserver({"sk", "build", "-m", "skeleton"});
  EXPECT_EQ(again.status, 1);
  EXPECT_NE(again.err.find("exists already"), std::string::npos) << again.err;
  auto bad = vserver({"db", "build", "-m", "debootstrap"});
  EXPECT_EQ(bad.status, 2);
  EXPECT_NE(bad.err.find("-d SUITE"), std::string::npos) << bad.err;
  EXPECT_FALSE(fs_exists(conf("db")));
  // Without --context: the lowest number no guest uses (sk has 42).
  ASSERT_EQ(vserver({"sk2", "build", "-m", "skeleton"}).status, 0);
  EXPECT_EQ(read_all(conf("sk2") + "/context"), "2\n");
  EXPECT_EQ(read_all(root("sk2") + "/etc/hostname"), "sk2\n");
}

TEST_F(VServer, BuildDebootstrapsAGuestThatStartsAndStops) {
  // The .debs the cached tree was made from: nothing is downloaded twice.
  auto r =
      vserver({"d", "build", "-m", "debootstrap", "--hostname", "deb1", "--", "-d", "bookworm",
               "-m", host_mirror(), "--", "--variant=minbase", "--cache-dir=" + debootstrap_debs()},
              1200);
  ASSERT_EQ(r.status, 0) << r.out << r.err;
  m_guests.push_back("d");
  EXPECT_EQ(read_all(root("d") + "/etc/hostname"), "deb1\n");
  EXPECT_TRUE(fs_exists(root("d") + "/etc/init.d/rc")); // sysv-rc, for the default style
  auto start = vserver({"d", "start"});
  ASSERT_EQ(start.status, 0) << start.out << start.err;
  auto name = vserver({"d", "exec", "/bin/sh", "-c", "uname -n; cat /etc/hostname"});
  EXPECT_EQ(name.out, "deb1\ndeb1\n") << name.err;
  auto dpkg = vserver({"d", "exec", "dpkg-query", "-W", "-f", "${Status}", "sysv-rc"});
  EXPECT_EQ(dpkg.out, "install ok installed") << dpkg.err;
  ASSERT_EQ(vserver({"d", "stop"}).status, 0);
  EXPECT_TRUE(processes_in(root("d")).empty());
}

} // namespace
