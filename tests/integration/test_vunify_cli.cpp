// The vunify program as a user runs it: argument forms, configuration
// base, exclude files, output formats and exit status.
#include "tests/support/run_program.h"
#include "tests/support/temp_tree.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <sys/mount.h>
#include <unistd.h>

using namespace vu::test;

namespace {

// conf/ (configuration base) with guests web1, web2, db1 under guests/.
class Cli : public ::testing::Test {
protected:
  void SetUp() override {
    t.build("d conf/.defaults/apps/vunify\nd conf/web1/apps/vunify\nd conf/web2\nd conf/db1\n");
    ASSERT_EQ(::symlink(t.path("guests").c_str(), t.path("conf/.defaults/vdirbase").c_str()), 0);
    for (const char* g : {"web1", "web2", "db1"}) {
      std::string p = std::string("guests/") + g;
      t.file(p + "/usr/bin/tool", random_bytes(9000, 1), 0755);
      t.file(p + "/usr/lib/libx.so", random_bytes(20000, 2));
      t.file(p + "/etc/hostname", std::string("host-name-of-the-guest\n"));
      t.file(p + "/etc/terminfo/x/xterm", random_bytes(3000, 3));
      t.file(p + "/var/lib/state", random_bytes(4000, 4));
      t.file(p + "/opt/app/data.bin", random_bytes(5000, 5));
    }
  }
  std::string conf() { return "--confdir=" + t.path("conf"); }
  bool same(const std::string& a, const std::string& b) { return same_inode(t.path(a), t.path(b)); }
  TempTree t;
};

} // namespace

TEST(CliBasics, HelpVersionAndUsageErrors) {
  auto help = run_vunify({"--help"});
  EXPECT_EQ(help.status, 0);
  EXPECT_NE(help.out.find("--dry-run"), std::string::npos);
  EXPECT_NE(help.out.find("--manually"), std::string::npos);
  auto version = run_vunify({"--version"});
  EXPECT_EQ(version.status, 0);
  EXPECT_NE(version.out.find("vunify "), std::string::npos);
  auto bad = run_vunify({"--no-such-option"});
  EXPECT_EQ(bad.status, 2);
  auto none = run_vunify({});
  EXPECT_EQ(none.status, 2);
  EXPECT_NE(none.err.find("vunify: error:"), std::string::npos);
  auto missing = run_vunify({"--confdir=/nonexistent-vunify-conf", "nosuchguest", "other"});
  EXPECT_EQ(missing.status, 2);
  EXPECT_NE(missing.err.find("nosuchguest"), std::string::npos);
}

TEST_F(Cli, NamedGuestsWithDefaultExcludes) {
  auto before = content_snapshot(t.path("guests"));
  auto r = run_vunify({conf(), "--json", "web1", "web2", "db1"});
  ASSERT_EQ(r.status, 0) << r.err;
  auto j = json_of(r);
  EXPECT_EQ(j["guests"].size(), 3u);
  EXPECT_EQ(j["files_linked"], 8); // tool, libx.so, xterm, data.bin in web2 and db1
  EXPECT_EQ(j["bytes_saved"], 2 * (9000 + 20000 + 3000 + 5000));
  EXPECT_EQ(j["error_count"], 0);
  for (const char* k : {"files_scanned", "bytes_scanned", "files_hashed", "bytes_hashed",
                        "files_linked", "bytes_saved", "errors", "dry_run"})
    EXPECT_TRUE(j.contains(k)) << k;
  EXPECT_TRUE(same("guests/web1/usr/bin/tool", "guests/db1/usr/bin/tool"));
  EXPECT_TRUE(same("guests/web1/etc/terminfo/x/xterm", "guests/web2/etc/terminfo/x/xterm"));
  EXPECT_FALSE(same("guests/web1/etc/hostname", "guests/web2/etc/hostname"));
  EXPECT_FALSE(same("guests/web1/var/lib/state", "guests/web2/var/lib/state"));
  EXPECT_TRUE(is_immutable_path(t.path("guests/web2/usr/lib/libx.so")));
  EXPECT_EQ(content_snapshot(t.path("guests")), before);
}

TEST_F(Cli, AllAndEnvironmentConfdirAndTextReport) {
  auto r = run_vunify({"--all"}, {"VSERVER_CONFDIR=" + t.path("conf")});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("3 guests"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("8 files linked"), std::string::npos) << r.out;
  auto again = run_vunify({"--all", "-q"}, {"VSERVER_CONFDIR=" + t.path("conf")});
  EXPECT_EQ(again.status, 0);
  EXPECT_EQ(again.out, "");
}

TEST_F(Cli, DryRunReportsAndChangesNothing) {
  auto before = snapshot(t.path("guests"));
  auto ino = inode_of(t.path("guests/web2/usr/bin/tool"));
  auto r = run_vunify({conf(), "-n", "--json", "web1", "web2"});
  ASSERT_EQ(r.status, 0) << r.err;
  auto j = json_of(r);
  EXPECT_EQ(j["dry_run"], true);
  EXPECT_EQ(j["files_linked"], 4);
  EXPECT_EQ(inode_of(t.path("guests/web2/usr/bin/tool")), ino);
  EXPECT_EQ(snapshot(t.path("guests")), before);
}

TEST_F(Cli, VerboseListsEveryLinkedName) {
  auto r = run_vunify({conf(), "-vv", "web1", "web2"});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("linked web2:/usr/bin/tool -> web1:/usr/bin/tool"), std::string::npos)
      << r.out;
}

TEST_F(Cli, GuestAndDefaultsExcludeFiles) {
  t.file("conf/web1/apps/vunify/exclude", "/opt/app\n");
  t.file("conf/.defaults/apps/vunify/exclude", "# shared by all guests\n/usr/lib\n");
  auto r = run_vunify({conf(), "--json", "web1", "web2", "db1"});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_FALSE(same("guests/web1/usr/lib/libx.so", "guests/web2/usr/lib/libx.so"));
  EXPECT_FALSE(same("guests/web1/opt/app/data.bin", "guests/web2/opt/app/data.bin"));
  EXPECT_TRUE(same("guests/web2/opt/app/data.bin", "guests/db1/opt/app/data.bin"));
  EXPECT_TRUE(same("guests/web1/usr/bin/tool", "guests/web2/usr/bin/tool"));
}

TEST_F(Cli, ExcludeFromReplacesTheDefaultList) {
  t.file("list", "/usr\n");
  auto r = run_vunify({conf(), "--exclude-from=" + t.path("list"), "web1", "web2"});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_FALSE(same("guests/web1/usr/bin/tool", "guests/web2/usr/bin/tool"));
  EXPECT_TRUE(same("guests/web1/var/lib/state", "guests/web2/var/lib/state"));
  auto none = run_vunify({conf(), "--no-default-excludes", "web1", "db1"});
  ASSERT_EQ(none.status, 0) << none.err;
  EXPECT_TRUE(same("guests/web1/etc/hostname", "guests/db1/etc/hostname"));
  t.file("bad", "relative/pattern\n");
  auto bad = run_vunify({conf(), "--exclude-from=" + t.path("bad"), "web1", "web2"});
  EXPECT_EQ(bad.status, 2);
  EXPECT_NE(bad.err.find(":1"), std::string::npos) << bad.err;
}

TEST_F(Cli, ClassicFormLinksAGuestToItsReferenceGuests) {
  t.mkdirs("conf/db1/apps/vunify");
  ASSERT_EQ(
      ::symlink(t.path("conf/web1").c_str(), t.path("conf/db1/apps/vunify/refserver.1").c_str()),
      0);
  auto ref = inode_of(t.path("guests/web1/usr/bin/tool"));
  auto dry = run_vunify({conf(), "-nv", "db1"});
  ASSERT_EQ(dry.status, 0) << dry.err;
  EXPECT_NE(dry.out.find("4 files would be linked"), std::string::npos) << dry.out;
  auto r = run_vunify({conf(), "db1"});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(inode_of(t.path("guests/db1/usr/bin/tool")), ref);
  EXPECT_EQ(inode_of(t.path("guests/web1/usr/bin/tool")), ref);
  EXPECT_FALSE(same("guests/web2/usr/bin/tool", "guests/db1/usr/bin/tool"));
  auto alone = run_vunify({conf(), "web2"});
  EXPECT_EQ(alone.status, 2);
  EXPECT_NE(alone.err.find("refserver"), std::string::npos);
}

TEST_F(Cli, ManualFormWithExcludeListsPerPath) {
  t.file("excl-dst", "/usr/lib\n");
  t.file("excl-src", "");
  auto ref = inode_of(t.path("guests/web1/usr/bin/tool"));
  auto r = run_vunify({"--manually", t.path("guests/db1"), t.path("excl-dst"),
                       t.path("guests/web1"), t.path("excl-src")});
  ASSERT_EQ(r.status, 0) << r.err << r.out;
  EXPECT_EQ(inode_of(t.path("guests/db1/usr/bin/tool")), ref);
  EXPECT_FALSE(same("guests/db1/usr/lib/libx.so", "guests/web1/usr/lib/libx.so"));
  EXPECT_TRUE(same("guests/db1/var/lib/state", "guests/web1/var/lib/state"))
      << "manual mode uses only the lists given";
  auto odd =
      run_vunify({"--manually", t.path("guests/db1"), t.path("excl-dst"), t.path("guests/web1")});
  EXPECT_EQ(odd.status, 2);
}

TEST_F(Cli, SameGuestTwiceIsAnError) {
  auto r = run_vunify({conf(), "web1", t.path("guests/web1")});
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.err.find("twice"), std::string::npos);
}

TEST_F(Cli, ExitStatusOneWhenFilesFailButTheRestIsDone) {
  // ramfs has no inode flags: protecting shared inodes fails there.
  t.mkdirs("ram");
  ScopedMount ram("ramfs", t.path("ram"));
  if (!ram.ok()) GTEST_SKIP() << "cannot mount ramfs here";
  std::string a = random_bytes(6000, 1);
  t.file("ram/g1/usr/a", a);
  t.file("ram/g2/usr/a", a);
  t.file("ram/g1/usr/b", a + "b");
  t.file("ram/g2/usr/b", a + "b");
  auto r = run_vunify({"--json", t.path("ram/g1"), t.path("ram/g2")});
  EXPECT_EQ(r.status, 1) << r.out << r.err;
  auto j = json_of(r);
  EXPECT_GE(j["errors"]["attr"]["count"].get<int>(), 1);
  EXPECT_NE(r.err.find("failed"), std::string::npos);
  t.file("ram/g1/usr/c", a + "c");
  t.file("ram/g2/usr/c", a + "c");
  auto ok = run_vunify({"--no-immutable", t.path("ram/g1"), t.path("ram/g2")});
  EXPECT_EQ(ok.status, 0) << ok.out << ok.err;
  EXPECT_TRUE(same("ram/g1/usr/c", "ram/g2/usr/c"));
}

TEST_F(Cli, ThreadsOptionIsValidated) {
  EXPECT_EQ(run_vunify({conf(), "--threads=0", "web1", "web2"}).status, 2);
  auto r = run_vunify({conf(), "--threads=1", "--stats", "web1", "web2"});
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("scan:"), std::string::npos);
}

TEST_F(Cli, ProgressLineOnATerminalOnly) {
  // script(1) gives vunify a pseudo-terminal; run_vunify gives it pipes.
  std::string log = t.path("pty.log");
  int rc = sh("script -qec '" + std::string(VUNIFY_BIN) + " " + conf() + " web1 web2' " + log +
              " >/dev/null 2>&1");
  if (rc == 127) GTEST_SKIP() << "script(1) not available";
  ASSERT_EQ(rc, 0);
  // The stage shown depends on timing; the line's shape does not.
  std::string pty = t.read("pty.log");
  EXPECT_NE(pty.find("\033[Kvunify: "), std::string::npos) << pty;
  EXPECT_NE(pty.find(" files scanned, "), std::string::npos) << pty;
  auto piped = run_vunify({conf(), "-n", "web1", "db1"});
  EXPECT_EQ(piped.err.find(" files scanned, "), std::string::npos);
  EXPECT_EQ(piped.err.find("\033"), std::string::npos);
}
