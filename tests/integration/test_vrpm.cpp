// vrpm on real unified guests with a real rpm and real packages: Debian
// guests given the host's rpm (its programs, libraries and /usr/lib/rpm,
// with %_dbpath /var/lib/rpm, as an RPM distribution has it) and a
// database made by vrpm itself; vu-test-c 1.0 and 1.1 built with rpmbuild
// (a %pre that adds a user, a %config(noreplace) file, files of that
// user; installed with --nodeps, as nothing in the rpm database provides
// the Debian guest's /bin/sh). Guests are unified with vhashify first, so
// rpm meets shared, immutable files.
#include "tests/support/fixtures.h"
#include "tests/support/guest_fixture.h"

#include <gtest/gtest.h>

#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <thread>

using namespace vu::test;
namespace fs = std::filesystem;

namespace {

class VRpm : public GuestTest {
protected:
  void SetUp() override {
    GuestTest::SetUp();
    if (IsSkipped()) return;
    std::string why;
    m_rpms = cached_user_rpms(why);
    if (m_rpms.empty()) GTEST_SKIP() << why;
  }

  // A guest with rpm: the host's programs and the libraries the guest
  // lacks, copied to the same paths.
  void make_rpm_guest(const std::string& name, unsigned context) {
    make_guest(name, context);
    const std::string r = root(name);
    for (const char* bin : {"rpm", "rpmdb", "rpmkeys", "rpmquery", "rpmverify"}) {
      ASSERT_EQ(sh(std::string("cp -a /usr/bin/") + bin + " " + r + "/usr/bin/"), 0) << bin;
      ASSERT_EQ(sh(std::string("for l in $(ldd /usr/bin/") + bin +
                   " | awk '/=>/{print $3}'); do [ -e " + r + "$l ] || cp -L $l " + r + "$l; done"),
                0);
    }
    ASSERT_EQ(sh("cp -a /usr/lib/rpm " + r + "/usr/lib/"), 0);
    put(r + "/etc/rpm/macros", "%_dbpath /var/lib/rpm\n");
    fs::create_directories(r + "/var/lib/rpm");
    fs::create_directories(r + "/srv/rpms");
    for (const auto& p : m_rpms)
      fs::copy_file(p, r + "/srv/rpms/" + fs::path(p).filename().string());
  }

  ProgramResult vrpm(const std::vector<std::string>& args) {
    std::vector<std::string> argv{VRPM_BIN};
    argv.insert(argv.end(), args.begin(), args.end());
    return run_program(argv, m_env, 300);
  }

  std::vector<std::string> m_rpms;
  const std::string m_v10 = "/srv/rpms/vu-test-c-1.0-1.noarch.rpm";
  const std::string m_v11 = "/srv/rpms/vu-test-c-1.1-1.noarch.rpm";
};

// Install, upgrade and erase in a running and a stopped guest: the
// guest's own rpm cannot upgrade over shared files, vrpm can; %pre ran in
// the guest and added the user there, who owns the files; a changed
// noreplace config stays; the other guest keeps its files until its turn;
// the updated files are shared again; the host's passwd is unchanged.
TEST_F(VRpm, InstallUpgradeAndEraseInUnifiedGuests) {
  make_rpm_guest("r1", 4301);
  make_rpm_guest("r2", 4302);
  const std::string host_passwd = file_digest("/etc/passwd");
  auto r = vrpm({"r1", "r2", "--", "--initdb"});
  ASSERT_EQ(r.status, 0) << r.out << r.err;
  ASSERT_EQ(run_vhashify({"r1", "r2"}, m_env).status, 0);
  ASSERT_EQ(vserver({"r1", "start"}).status, 0);

  r = vrpm({"r1", "r2", "--", "-ivh", "--nodeps", m_v10});
  ASSERT_EQ(r.status, 0) << r.out << r.err;
  for (const char* g : {"r1", "r2"}) {
    const long vuc = uid_in(root(g) + "/etc/passwd", "vuc");
    ASSERT_GT(vuc, 0) << g;
    EXPECT_EQ(static_cast<long>(owner_of(root(g) + "/var/lib/vu-c/state")), vuc) << g;
    const std::string pre = read_all(root(g) + "/var/tmp/vu-c.pre");
    EXPECT_EQ(pre.substr(0, pre.find('\n')), std::string(g) + "-host") << pre;
  }
  EXPECT_EQ(uid_in("/etc/passwd", "vuc"), -1);
  const std::string data = "/usr/share/vu-c/data.bin";
  EXPECT_TRUE(same_inode(root("r1") + data, root("r2") + data));
  EXPECT_TRUE(is_immutable_path(root("r1") + data));

  // The guest's own rpm cannot replace the shared files ...
  auto own = vserver({"r1", "exec", "rpm", "-Uvh", "--nodeps", m_v11});
  EXPECT_NE(own.status, 0) << "rpm replaced a shared file: " << own.out;
  // ... vrpm can; a changed noreplace config is kept.
  put(root("r1") + "/etc/vu-c.conf", "c-setting = changed by the admin\n");
  r = vrpm({"r1", "--", "-Uvh", "--nodeps", m_v11});
  ASSERT_EQ(r.status, 0) << r.out << r.err;
  EXPECT_EQ(read_all(root("r1") + data).substr(0, 1), "d");
  EXPECT_EQ(read_all(root("r1") + "/etc/vu-c.conf"), "c-setting = changed by the admin\n");
  EXPECT_EQ(read_all(root("r2") + data).substr(0, 1), "c");
  EXPECT_TRUE(is_immutable_path(root("r2") + data));
  r = vrpm({"r2", "--", "-Uvh", "--nodeps", m_v11});
  ASSERT_EQ(r.status, 0) << r.out << r.err;
  EXPECT_TRUE(same_inode(root("r1") + data, root("r2") + data));

  r = vrpm({"r1", "--", "-e", "vu-test-c"});
  ASSERT_EQ(r.status, 0) << r.out << r.err;
  EXPECT_FALSE(fs_exists(root("r1") + data));
  EXPECT_TRUE(fs_exists(root("r2") + data));
  for (const char* g : {"r1", "r2"})
    EXPECT_EQ(writable_shared_files(root(g)), std::vector<std::string>{}) << g;
  EXPECT_EQ(file_digest("/etc/passwd"), host_passwd);
}

// A guest whose rpm answers with names no package has is refused before
// rpm runs; the other guest of the call is updated; queries pass through.
TEST_F(VRpm, AHostileRpmIsRefusedAndQueriesPassThrough) {
  make_rpm_guest("h", 4311);
  make_rpm_guest("g", 4312);
  ASSERT_EQ(vrpm({"h", "g", "--", "--initdb"}).status, 0);
  const std::string fake = root("h") + "/usr/local/bin/rpm";
  put(fake, "#!/bin/sh\necho '@@name ../../etc/shadow'\necho /etc/shadow\n");
  ::chmod(fake.c_str(), 0755);
  auto r = vrpm({"h", "g", "--json", "--", "-ivh", "--nodeps", m_v10});
  EXPECT_EQ(r.status, 1) << r.out << r.err;
  auto j = json_of(r);
  ASSERT_EQ(j["guests"].size(), 2u);
  EXPECT_NE(j["guests"][0].value("error", "").find("bad package name"), std::string::npos)
      << j.dump();
  EXPECT_TRUE(j["guests"][0]["exit_status"].is_null());
  EXPECT_TRUE(j["guests"][1]["ok"].get<bool>()) << j.dump();
  fs::remove(fake);
  r = vrpm({"g", "--", "-q", "vu-test-c"});
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("vu-test-c-1.0-1"), std::string::npos) << r.out;
  EXPECT_EQ(vrpm({"h", "--", "-q", "vu-test-c"}).status, 1); // not installed there
}

// kill -9 of vrpm at random moments of up- and downgrades of a stopped
// guest: nothing of the guest keeps running, no shared inode is left
// writable, and rpm --rebuilddb in the guest leaves a database the next
// vrpm works with.
TEST_F(VRpm, KillNineLeavesADatabaseRpmRebuilds) {
  make_rpm_guest("k", 4321);
  ASSERT_EQ(vrpm({"k", "--", "--initdb"}).status, 0);
  ASSERT_EQ(vrpm({"k", "--", "-ivh", "--nodeps", m_v10}).status, 0);
  ASSERT_EQ(run_vhashify({"k"}, m_env).status, 0);
  auto round_args = [&](int round) {
    return std::vector<std::string>{
        VRPM_BIN, "-q", "k", "--", "-Uvh", "--nodeps", "--oldpackage", round % 2 ? m_v10 : m_v11};
  };
  const auto t0 = std::chrono::steady_clock::now();
  ASSERT_EQ(run_program(round_args(0), m_env).status, 0);
  const double full_us =
      std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count();
  KillDelay delay(full_us, 1.0, 4321);
  int killed = 0;
  for (int round = 1; round <= 6; ++round) {
    killed += kill_and_check(delay, round_args(round), "k", round);
    auto rebuilt = vrpm({"k", "--", "--rebuilddb"});
    EXPECT_EQ(rebuilt.status, 0) << "round " << round << ": " << rebuilt.err;
  }
  EXPECT_GE(killed, 2);
  auto r = vrpm({"k", "--", "-Uvh", "--nodeps", "--oldpackage", "--replacepkgs", m_v11});
  EXPECT_EQ(r.status, 0) << r.out << r.err;
  EXPECT_EQ(read_all(root("k") + "/usr/share/vu-c/data.bin").substr(0, 1), "d");
  EXPECT_EQ(writable_shared_files(root("k")), std::vector<std::string>{});
}

} // namespace

// An external rpm database (vserver NAME pkgmgmt externalize): rpm runs in
// the guest with the database shown to it for the call alone; install in a
// stopped guest, upgrade in a running one, erase; internalize brings it
// back into the guest.
TEST_F(VRpm, ExternalDatabase) {
  make_rpm_guest("x", 4311);
  const std::string base = t.path("vservers/.pkg/x");
  fs::create_directories(base);
  fs::create_directories(conf("x") + "/apps/pkgmgmt");
  fs::create_symlink(base, conf("x") + "/apps/pkgmgmt/base");
  ASSERT_EQ(vrpm({"x", "--", "--initdb"}).status, 0);
  auto r = vserver({"x", "pkgmgmt", "externalize"});
  ASSERT_EQ(r.status, 0) << r.err;
  ASSERT_TRUE(fs::is_empty(root("x") + "/var/lib/rpm"));
  ASSERT_FALSE(fs::is_empty(base + "/rpm/state"));

  r = vrpm({"x", "--", "-ivh", "--nodeps", m_v10});
  ASSERT_EQ(r.status, 0) << r.out << r.err;
  EXPECT_GT(uid_in(root("x") + "/etc/passwd", "vuc"), 0);
  ASSERT_EQ(vserver({"x", "start"}).status, 0);
  r = vrpm({"x", "--", "-Uvh", "--nodeps", m_v11});
  ASSERT_EQ(r.status, 0) << r.out << r.err;
  r = vrpm({"x", "--", "-q", "vu-test-c"});
  EXPECT_EQ(r.status, 0);
  EXPECT_NE(r.out.find("vu-test-c-1.1-1"), std::string::npos) << r.out << r.err;
  // Outside the calls the guest's rpm has no database (it makes an empty
  // one of its own in the mount point, which internalize refuses to cover).
  auto own = vserver({"x", "exec", "rpm", "-q", "vu-test-c"});
  EXPECT_NE(own.status, 0) << own.out;
  ASSERT_EQ(vserver({"x", "stop"}).status, 0);
  r = vserver({"x", "pkgmgmt", "internalize"});
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("must be empty"), std::string::npos) << r.err;
  fs::remove_all(root("x") + "/var/lib/rpm");
  r = vrpm({"x", "--", "-e", "vu-test-c"});
  ASSERT_EQ(r.status, 0) << r.out << r.err;
  EXPECT_FALSE(fs_exists(root("x") + "/usr/share/vu-c/data.bin"));
  r = vrpm({"x", "--", "-ivh", "--nodeps", m_v10});
  ASSERT_EQ(r.status, 0) << r.out << r.err;

  r = vserver({"x", "pkgmgmt", "internalize"});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_FALSE(fs_exists(base + "/rpm/state"));
  ASSERT_EQ(vserver({"x", "start"}).status, 0);
  own = vserver({"x", "exec", "rpm", "-q", "vu-test-c"});
  EXPECT_EQ(own.status, 0) << own.out << own.err;
  EXPECT_NE(own.out.find("vu-test-c-1.0-1"), std::string::npos) << own.out;
  EXPECT_EQ(writable_shared_files(root("x")), std::vector<std::string>{});
}

namespace {

// A C program built for a test, owned by root, mode 0755.
std::string build_program(TempTree& t, const std::string& name, const std::string& source,
                          const std::string& flags) {
  const std::string src = t.path(name + ".c"), bin = t.path(name);
  put(src, source);
  if (sh("cc " + flags + " -o " + bin + " " + src + " 2>/dev/null") != 0) return {};
  ::chmod(bin.c_str(), 0755);
  return bin;
}

} // namespace

// --host-rpm: the host's rpm on a guest without rpm of its own, under
// libvu-preload.so: %pre ran in the guest (its user, its host name), files
// belong to the guest's user, shared files are made private first; the
// host's passwd and rpm databases are unchanged. Fail safe: a static or
// set-uid program is refused, a running guest is refused, and a direct
// execve system call is refused (EPERM) while libc's system() runs its
// command in the guest.
TEST_F(VRpm, HostRpmOnAGuestWithoutRpm) {
  make_guest("n", 4321);
  fs::create_directories(root("n") + "/var/lib/rpm");
  ASSERT_EQ(run_vhashify({"n"}, m_env).status, 0);
  std::string v10, v11;
  for (const auto& p : m_rpms) (p.find("1.0-1") != std::string::npos ? v10 : v11) = p;
  const std::string host_passwd = file_digest("/etc/passwd");
  const bool host_rpmdb = fs_exists("/root/.rpmdb");
  auto r = vrpm({"--host-rpm", "/usr/bin/rpm", "n", "--", "-ivh", "--nodeps", v10});
  ASSERT_EQ(r.status, 0) << r.out << r.err;
  const long vuc = uid_in(root("n") + "/etc/passwd", "vuc");
  ASSERT_GT(vuc, 0);
  EXPECT_EQ(static_cast<long>(owner_of(root("n") + "/var/lib/vu-c/state")), vuc);
  const std::string pre = read_all(root("n") + "/var/tmp/vu-c.pre");
  EXPECT_EQ(pre.substr(0, pre.find('\n')), "n-host") << pre;
  ASSERT_EQ(run_vhashify({"n"}, m_env).status, 0);
  r = vrpm({"--host-rpm", "/usr/bin/rpm", "n", "--", "-Uvh", "--nodeps", v11});
  ASSERT_EQ(r.status, 0) << r.out << r.err;
  EXPECT_EQ(read_all(root("n") + "/usr/share/vu-c/data.bin").substr(0, 1), "d");
  r = vrpm({"--host-rpm", "/usr/bin/rpm", "n", "--", "-q", "vu-test-c"});
  EXPECT_NE(r.out.find("vu-test-c-1.1-1"), std::string::npos) << r.out << r.err;
  r = vrpm({"--host-rpm", "/usr/bin/rpm", "n", "--", "-e", "vu-test-c"});
  ASSERT_EQ(r.status, 0) << r.out << r.err;
  EXPECT_FALSE(fs_exists(root("n") + "/usr/share/vu-c/data.bin"));
  EXPECT_EQ(writable_shared_files(root("n")), std::vector<std::string>{});
  EXPECT_EQ(file_digest("/etc/passwd"), host_passwd);
  EXPECT_EQ(fs_exists("/root/.rpmdb"), host_rpmdb);
  EXPECT_EQ(uid_in("/etc/passwd", "vuc"), -1);

  // Fail safe.
  const std::string marker = "/tmp/vu-raw-exec-" + std::to_string(::getpid());
  const std::string probe = build_program(
      t, "raw-exec-probe",
      "#include <errno.h>\n#include <stdio.h>\n#include <stdlib.h>\n#include <string.h>\n"
      "#include <spawn.h>\n#include <sys/syscall.h>\n#include <unistd.h>\n"
      "int main(void) {\n"
      "  char* a[] = {\"/bin/sh\", \"-c\", \"echo host > " +
          marker +
          "\", NULL};\n"
          "  long r = syscall(SYS_execve, \"/bin/sh\", a, NULL);\n"
          "  printf(\"raw execve %ld %s\\n\", r, strerror(errno));\n"
          "  fflush(stdout);\n"
          "  int rc = system(\"hostname > /var/tmp/vu-broker-probe\");\n"
          "  printf(\"system %d\\n\", rc);\n"
          "  pid_t pid;\n"
          "  rc = posix_spawn(&pid, \"/bin/true\", NULL, NULL, a, NULL);\n"
          "  printf(\"posix_spawn %s\\n\", strerror(rc));\n"
          "  return 0;\n}\n",
      "");
  ASSERT_FALSE(probe.empty()) << "no C compiler";
  r = vrpm({"--host-rpm", probe, "n", "--", "-qa"});
  EXPECT_EQ(r.status, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("raw execve -1 Operation not permitted"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("system 0"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("posix_spawn Permission denied"), std::string::npos) << r.out;
  EXPECT_FALSE(fs_exists(marker));
  EXPECT_EQ(read_all(root("n") + "/var/tmp/vu-broker-probe"), "n-host\n");
  const std::string fixed =
      build_program(t, "static-probe", "int main(void) { return 0; }\n", "-static");
  if (!fixed.empty()) {
    r = vrpm({"--host-rpm", fixed, "n", "--", "-qa"});
    EXPECT_EQ(r.status, 1);
    EXPECT_NE(r.err.find("statically linked"), std::string::npos) << r.err;
  }
  ASSERT_EQ(sh("cp /usr/bin/rpm " + t.path("rpm-suid") + " && chmod 4755 " + t.path("rpm-suid")),
            0);
  r = vrpm({"--host-rpm", t.path("rpm-suid"), "n", "--", "-qa"});
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("set-uid"), std::string::npos) << r.err;
  // The guest's database a symlink to a host directory: the host's rpm
  // resolves it inside the guest and never writes there.
  const std::string victim = t.path("victim");
  fs::create_directories(victim);
  fs::rename(root("n") + "/var/lib/rpm", root("n") + "/var/lib/rpm.away");
  fs::create_symlink(victim, root("n") + "/var/lib/rpm");
  r = vrpm({"--host-rpm", "/usr/bin/rpm", "n", "--", "-ivh", "--nodeps", v10});
  EXPECT_TRUE(fs::is_empty(victim)) << r.out << r.err;
  ASSERT_EQ(vserver({"n", "start"}).status, 0);
  r = vrpm({"--host-rpm", "/usr/bin/rpm", "n", "--", "-qa"});
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("running"), std::string::npos) << r.err;
}
