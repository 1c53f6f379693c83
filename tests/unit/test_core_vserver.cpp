// The start/stop core's parsers and decisions that need no running guest:
// a guest's run configuration, capability sets, the run-state file, cgroup
// settings.
#include "core/guest_cgroup.h"
#include "core/run_state.h"
#include "core/vserver_config.h"
#include "tests/support/temp_tree.h"

#include <gtest/gtest.h>
#include <linux/capability.h>

#include <filesystem>

using namespace vu;
using vu::test::TempTree;
namespace fs = std::filesystem;

namespace {

class VServerConfigTest : public ::testing::Test {
protected:
  void SetUp() override {
    t.mkdirs("etc/g/uts");
    t.mkdirs("vservers/g");
    fs::create_symlink(t.path("vservers/g"), t.path("etc/g/vdir"));
  }
  Result<VServerConfig> load() { return load_vserver_config(ConfigBase(t.path("etc")), "g"); }
  TempTree t;
};

TEST_F(VServerConfigTest, DefaultsAreUtilVserversSysvWithTheDefaultCapabilities) {
  auto c = load();
  ASSERT_TRUE(c.ok()) << c.error().message();
  EXPECT_EQ(c->style, InitStyle::sysv);
  EXPECT_EQ(c->runlevel_start, "3");
  EXPECT_EQ(c->runlevel_stop, "6");
  EXPECT_EQ(c->nodename, "g");
  EXPECT_EQ(c->killseq, (std::vector<int>{15, 5, 9}));
  EXPECT_EQ(c->capabilities, default_guest_capabilities());
  EXPECT_TRUE(c->interfaces.empty());
  EXPECT_TRUE(c->notices.empty());
}

TEST_F(VServerConfigTest, ReadsEverySetting) {
  t.write("etc/g/context", "42\n");
  t.write("etc/g/uts/nodename", "# comment\nweb1\n");
  t.write("etc/g/uts/domainname", "example.org\n");
  t.mkdirs("etc/g/interfaces/0");
  t.mkdirs("etc/g/interfaces/1");
  t.write("etc/g/interfaces/dev", "br0\n");
  t.write("etc/g/interfaces/0/ip", "192.0.2.10\n");
  t.write("etc/g/interfaces/0/mask", "255.255.255.0\n");
  t.write("etc/g/interfaces/1/ip", "2001:db8::1\n");
  t.write("etc/g/interfaces/1/prefix", "64\n");
  t.write("etc/g/interfaces/1/name", "uplink\n");
  t.write("etc/g/interfaces/1/nodev", "");
  t.mkdirs("etc/g/apps/init");
  t.write("etc/g/apps/init/style", "plain\n");
  t.write("etc/g/apps/init/runlevel", "2\n");
  t.write("etc/g/apps/init/killseq", "15\n2\n9\n");
  t.write("etc/g/apps/init/environment", "LANG=C.UTF-8\n");
  t.write("etc/g/apps/init/cmd.stop", "/sbin/telinit\n0\n");
  t.write("etc/g/bcapabilities", "CAP_NET_ADMIN\n!CAP_KILL\n~chown\n");
  t.mkdirs("etc/g/cgroup");
  t.write("etc/g/cgroup/memory.limit_in_bytes", "268435456\n");
  t.write("etc/g/shell", "/bin/zsh -l\n");
  auto c = load();
  ASSERT_TRUE(c.ok()) << c.error().message();
  EXPECT_EQ(c->context, 42u);
  EXPECT_EQ(c->nodename, "web1");
  EXPECT_EQ(c->domainname, "example.org");
  ASSERT_EQ(c->interfaces.size(), 2u);
  EXPECT_EQ(c->interfaces[0].ip, "192.0.2.10");
  EXPECT_EQ(c->interfaces[0].prefix, 24);
  EXPECT_EQ(c->interfaces[0].dev, "br0"); // the default of interfaces/
  EXPECT_EQ(c->interfaces[0].name, "eth0");
  EXPECT_EQ(c->interfaces[1].prefix, 64);
  EXPECT_EQ(c->interfaces[1].name, "uplink");
  EXPECT_TRUE(c->interfaces[1].nodev);
  EXPECT_EQ(c->style, InitStyle::plain);
  EXPECT_EQ(c->runlevel_start, "2");
  EXPECT_EQ(c->killseq, (std::vector<int>{15, 2, 9}));
  EXPECT_EQ(c->environment, (std::vector<std::string>{"LANG=C.UTF-8"}));
  EXPECT_EQ(c->cmd_stop, (std::vector<std::string>{"/sbin/telinit", "0"}));
  EXPECT_TRUE(c->capabilities & cap_bit(CAP_NET_ADMIN));
  EXPECT_FALSE(c->capabilities & cap_bit(CAP_KILL));
  EXPECT_FALSE(c->capabilities & cap_bit(CAP_CHOWN));
  ASSERT_EQ(c->cgroup.size(), 1u);
  EXPECT_EQ(c->cgroup[0].first, "memory.limit_in_bytes");
  EXPECT_EQ(c->shell, (std::vector<std::string>{"/bin/zsh", "-l"}));
}

TEST_F(VServerConfigTest, CapabilitiesThatReachTheHostAreNeverKept) {
  t.write("etc/g/bcapabilities",
          "CAP_SYS_ADMIN\nCAP_SYS_MODULE\nSYS_PTRACE\nCAP_DAC_READ_SEARCH\n");
  auto c = load();
  ASSERT_TRUE(c.ok()) << c.error().message();
  for (int cap : {CAP_SYS_ADMIN, CAP_SYS_MODULE, CAP_SYS_PTRACE, CAP_DAC_READ_SEARCH,
                  CAP_LINUX_IMMUTABLE, CAP_MKNOD, CAP_BPF})
    EXPECT_FALSE(c->capabilities & cap_bit(cap)) << capability_name(cap);
  ASSERT_EQ(c->notices.size(), 1u);
  EXPECT_NE(c->notices[0].find("CAP_SYS_ADMIN"), std::string::npos) << c->notices[0];
}

TEST_F(VServerConfigTest, UnknownAndUnappliedSettingsAreNoticesNotErrors) {
  t.write("etc/g/flags", "fakeinit\n");
  t.write("etc/g/frobnicate", "1\n");
  t.mkdirs("etc/g/apps/init");
  t.write("etc/g/apps/init/wibble", "1\n");
  auto c = load();
  ASSERT_TRUE(c.ok()) << c.error().message();
  ASSERT_EQ(c->notices.size(), 3u);
  std::string all;
  for (const auto& n : c->notices) all += n + "\n";
  EXPECT_NE(all.find("flags: FAKEINIT not applied on mainline Linux"), std::string::npos) << all;
  EXPECT_NE(all.find("frobnicate: unknown setting"), std::string::npos) << all;
  EXPECT_NE(all.find("wibble: unknown setting"), std::string::npos) << all;
}

// ccapabilities: RAW_ICMP is applied, '~' takes it back; other names are
// named once (hostile bytes never printed, a long list cut); flags the
// namespaces already give are no notice.
TEST_F(VServerConfigTest, ContextCapabilitiesAndFlags) {
  t.write("etc/g/ccapabilities", "raw_icmp\nSECURE_MOUNT\n\x1b[2Jevil\n");
  std::string many;
  for (int i = 0; i < 12; ++i) many += "VIRT_X" + std::to_string(i) + "\n";
  t.write("etc/g/flags", "HIDE_NETIF\nINIT_PID\n~VIRT_MEM\n" + many);
  auto c = load();
  ASSERT_TRUE(c.ok()) << c.error().message();
  EXPECT_TRUE(c->raw_icmp);
  std::string all;
  for (const auto& n : c->notices) all += n + "\n";
  EXPECT_NE(all.find("ccapabilities: SECURE_MOUNT, (an unreadable name) not applied"),
            std::string::npos)
      << all;
  EXPECT_EQ(all.find('\x1b'), std::string::npos) << all;
  EXPECT_NE(all.find("flags: VIRT_X0, VIRT_X1"), std::string::npos) << all;
  EXPECT_NE(all.find("VIRT_X9 and 2 more not applied"), std::string::npos) << all;
  EXPECT_EQ(all.find("HIDE_NETIF"), std::string::npos) << all;
  EXPECT_EQ(all.find("VIRT_MEM"), std::string::npos) << all;
  t.write("etc/g/ccapabilities", "RAW_ICMP\n~RAW_ICMP\n");
  auto off = load();
  ASSERT_TRUE(off.ok());
  EXPECT_FALSE(off->raw_icmp);
}

TEST_F(VServerConfigTest, MalformedValuesAreErrorsNamingTheFile) {
  const std::vector<std::pair<std::string, std::string>> cases{
      {"context", "0\n"},           {"context", "12345678901\n"},
      {"uts/nodename", "a b\n"},    {"bcapabilities", "CAP_FLY\n"},
      {"apps/init/style", "rc\n"},  {"apps/init/environment", "=x\n"},
      {"apps/init/killseq", "-1\n"}};
  for (const auto& [file, content] : cases) {
    SCOPED_TRACE(file + ": " + content);
    TempTree u;
    u.mkdirs("etc/g/apps/init");
    u.mkdirs("etc/g/uts");
    u.mkdirs("vservers/g");
    fs::create_symlink(u.path("vservers/g"), u.path("etc/g/vdir"));
    u.write("etc/g/" + file, content);
    auto c = load_vserver_config(ConfigBase(u.path("etc")), "g");
    ASSERT_FALSE(c.ok());
    EXPECT_NE(c.error().message().find(file), std::string::npos) << c.error().message();
  }
  EXPECT_FALSE(load_vserver_config(ConfigBase(t.path("etc")), "../g").ok());
  EXPECT_FALSE(load_vserver_config(ConfigBase(t.path("etc")), "missing").ok());
}

TEST(Bcapabilities, NamesNumbersAndRemovals) {
  auto c = apply_bcapabilities(0, {"CAP_CHOWN", "net_raw", "^12", "!CAP_CHOWN"});
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(*c, cap_bit(CAP_NET_RAW) | cap_bit(12));
  EXPECT_FALSE(apply_bcapabilities(0, {"^64"}).ok());
  EXPECT_FALSE(apply_bcapabilities(0, {"!"}).ok());
  EXPECT_EQ(capability_by_name("cap_sys_admin"), CAP_SYS_ADMIN);
  EXPECT_EQ(capability_name(CAP_BPF), "CAP_BPF");
}

TEST(RunState, RoundTripsAndRefusesGarbage) {
  RunState s;
  s.pid = 1234;
  s.start_ticks = 99;
  s.boot = "0b7c6f0e-1111-2222-3333-444455556666";
  s.context = 40001;
  s.cgroup2 = "/sys/fs/cgroup/unified/vservers/g";
  s.cgroup1 = {"/sys/fs/cgroup/pids/vservers/g"};
  s.started = 1700000000;
  auto back = parse_run_state(format_run_state(s));
  ASSERT_TRUE(back.ok()) << back.error().message();
  EXPECT_EQ(back->pid, 1234);
  EXPECT_EQ(back->start_ticks, 99u);
  EXPECT_EQ(back->boot, s.boot);
  EXPECT_EQ(back->context, 40001u);
  EXPECT_EQ(back->cgroup2, s.cgroup2);
  EXPECT_EQ(back->cgroup1, s.cgroup1);
  for (const char* bad :
       {"", "pid=12\n", "pid=x\nstart=1\ncgroup=/a\n", "pid=1\nstart=1\ncgroup=relative\n",
        "pid=99999999999\nstart=1\ncgroup=/a\n", "pid=1\nstart=1\ncgroup=/a/../b\n", "garbage"})
    EXPECT_FALSE(parse_run_state(bad).ok()) << bad;
}

TEST(RunState, AStateOfAnotherBootOrAReusedPidIsStale) {
  RunState s;
  s.pid = ::getpid();
  s.start_ticks = 1; // this process started later than tick 1
  s.boot = "not-this-boot";
  EXPECT_EQ(liveness(s), Liveness::stale);
}

TEST(GuestCgroup, V1SettingsInCgroup2Terms) {
  EXPECT_EQ(cgroup2_knob("memory.limit_in_bytes", "1024").first, "memory.max");
  EXPECT_EQ(cgroup2_knob("memory.limit_in_bytes", "-1").second, "max");
  EXPECT_EQ(cgroup2_knob("cpu.shares", "1024").first, "cpu.weight");
  EXPECT_EQ(cgroup2_knob("cpu.shares", "2").second, "1");
  EXPECT_EQ(cgroup2_knob("cpu.shares", "262144").second, "10000");
  EXPECT_EQ(cgroup2_knob("pids.max", "100").second, "100");
  EXPECT_TRUE(cgroup2_knob("blkio.weight", "100").first.empty());
}

} // namespace
