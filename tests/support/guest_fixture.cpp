// Real guests for the tests (see guest_fixture.h).
#include "tests/support/guest_fixture.h"

#include "tests/support/fixtures.h"

#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <thread>

namespace fs = std::filesystem;

namespace vu::test {

std::string read_all(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void put(const std::string& path, const std::string& content) {
  fs::create_directories(fs::path(path).parent_path());
  std::ofstream(path) << content;
}

// Processes whose root directory is `root` (the guest's processes, seen
// from the host).
std::vector<pid_t> processes_in(const std::string& root) {
  std::vector<pid_t> out;
  struct stat want {};
  if (::stat(root.c_str(), &want) != 0) return out;
  for (auto& e : fs::directory_iterator("/proc")) {
    pid_t pid = static_cast<pid_t>(std::atoi(e.path().filename().c_str()));
    if (pid <= 0) continue;
    struct stat st {};
    if (::stat((e.path().string() + "/root").c_str(), &st) == 0 && st.st_dev == want.st_dev &&
        st.st_ino == want.st_ino)
      out.push_back(pid);
  }
  return out;
}

std::string file_digest(const std::string& path) {
  return std::to_string(std::hash<std::string>{}(read_all(path))) + ":" +
         std::to_string(read_all(path).size());
}

// uid of `user` in a passwd file; -1 when absent.
long uid_in(const std::string& passwd, const std::string& user) {
  std::istringstream in(read_all(passwd));
  for (std::string line; std::getline(in, line);)
    if (line.rfind(user + ":", 0) == 0) {
      auto a = line.find(':', user.size() + 1);
      return std::atol(line.c_str() + a + 1);
    }
  return -1;
}

uid_t owner_of(const std::string& path) {
  struct stat st {};
  return ::lstat(path.c_str(), &st) == 0 ? st.st_uid : static_cast<uid_t>(-1);
}

// Files of the tree linked from outside it (another guest, the hash
// store) that are not immutable.
std::vector<std::string> writable_shared_files(const std::string& root) {
  std::map<ino_t, std::pair<nlink_t, std::vector<std::string>>> inodes;
  for (auto it = fs::recursive_directory_iterator(root); it != fs::recursive_directory_iterator();
       ++it) {
    struct stat st {};
    if (::lstat(it->path().c_str(), &st) == 0 && S_ISREG(st.st_mode) && st.st_nlink > 1) {
      auto& e = inodes[st.st_ino];
      e.first = st.st_nlink;
      e.second.push_back(it->path());
    }
  }
  std::vector<std::string> out;
  for (const auto& [ino, e] : inodes)
    if (e.first > e.second.size() && !is_immutable_path(e.second.front()))
      out.push_back(e.second.front());
  return out;
}

std::string GuestTest::s_base;
std::string GuestTest::s_why;

void GuestTest::SetUpTestSuite() {
  s_base = cached_minbase(s_why);
}

void GuestTest::SetUp() {
  if (s_base.empty()) GTEST_SKIP() << s_why;
  m_cgroup = "vunify-test-" + std::to_string(::getpid()) + "-" +
             ::testing::UnitTest::GetInstance()->current_test_info()->name();
  m_cgroup = m_cgroup.substr(0, 100);
  fs::create_directories(t.path("etc/.defaults"));
  fs::create_directories(t.path("vservers"));
  fs::create_directories(t.path("run"));
  fs::create_symlink(t.path("vservers"), t.path("etc/.defaults/vdirbase"));
  m_env = {"VSERVER_CONFDIR=" + t.path("etc"), "VSERVER_RUNDIR=" + t.path("run"),
           "VSERVER_CGROUP=" + m_cgroup};
}

void GuestTest::TearDown() {
  for (const auto& g : m_guests) vserver({g, "stop"});
  for (const auto& g : m_guests)
    EXPECT_TRUE(processes_in(root(g)).empty()) << g << " left processes";
  for (const char* base : {"/sys/fs/cgroup/unified", "/sys/fs/cgroup"})
    ::rmdir((std::string(base) + "/" + m_cgroup).c_str());
  for (const char* c : {"pids", "memory", "cpu"})
    ::rmdir(("/sys/fs/cgroup/" + std::string(c) + "/" + m_cgroup).c_str());
  ::rmdir((t.path("run/.cgroup2") + "/" + m_cgroup).c_str());
  ::umount2(t.path("run/.cgroup2").c_str(), MNT_DETACH);
}

void GuestTest::make_guest(const std::string& name, unsigned context, const std::string& iface) {
  ASSERT_EQ(sh("cp -a " + s_base + " " + root(name)), 0);
  ASSERT_EQ(sh("install -m 0755 " VU_PROBE_BIN " " + root(name) + "/usr/local/bin/vu-probe"), 0);
  put(root(name) + "/var/www/html/index.html", "guest " + name + "\n");
  put(root(name) + "/etc/webfsd.conf",
      "web_root=\"/var/www/html\"\nweb_port=\"80\"\nweb_user=\"www-data\"\n"
      "web_group=\"www-data\"\nweb_index=\"index.html\"\n");
  fs::create_directories(conf(name) + "/uts");
  fs::create_symlink(root(name), conf(name) + "/vdir");
  put(conf(name) + "/context", std::to_string(context) + "\n");
  put(conf(name) + "/uts/nodename", name + "-host\n");
  if (!iface.empty()) {
    // "dev:ip/prefix" or "ip/prefix"
    std::string dev, ip = iface;
    if (auto colon = iface.find(':'); colon != std::string::npos) {
      dev = iface.substr(0, colon);
      ip = iface.substr(colon + 1);
    }
    put(conf(name) + "/interfaces/0/ip", ip.substr(0, ip.find('/')) + "\n");
    put(conf(name) + "/interfaces/0/prefix", ip.substr(ip.find('/') + 1) + "\n");
    if (!dev.empty()) put(conf(name) + "/interfaces/0/dev", dev + "\n");
  }
  m_guests.push_back(name);
}

ProgramResult GuestTest::vserver(const std::vector<std::string>& args, int timeout_s) {
  std::vector<std::string> argv{VSERVER_BIN};
  argv.insert(argv.end(), args.begin(), args.end());
  return run_program(argv, m_env, timeout_s);
}

bool GuestTest::kill_and_check(KillDelay& delay, const std::vector<std::string>& argv,
                               const std::string& guest, int round) {
  pid_t pid = spawn_quiet(argv, m_env);
  EXPECT_GT(pid, 0);
  if (pid <= 0) return false;
  const bool killed = delay.kill_after_delay(pid);
  for (int i = 0; i < 100 && !processes_in(root(guest)).empty(); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_TRUE(processes_in(root(guest)).empty()) << "round " << round;
  EXPECT_EQ(writable_shared_files(root(guest)), std::vector<std::string>{}) << "round " << round;
  return killed;
}

} // namespace vu::test
