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
  EXPECT_EQ(bad.err, "vunify: error: unknown option --no-such-option (see vunify --help)\n");
  // A typo gets the nearest option, on the same one line.
  for (const char* typo : {"--dry-rn", "--dryrun", "--ignore-mtim"}) {
    auto near = run_vunify({typo, "a", "b"});
    EXPECT_EQ(near.status, 2);
    EXPECT_EQ(std::count(near.err.begin(), near.err.end(), '\n'), 1) << near.err;
    EXPECT_NE(
        near.err.find(std::string("vunify: error: unknown option ") + typo + "; did you mean --"),
        std::string::npos)
        << near.err;
  }
  EXPECT_NE(run_vunify({"--dry-rn"}).err.find("did you mean --dry-run?"), std::string::npos);
  auto none = run_vunify({});
  EXPECT_EQ(none.status, 2);
  EXPECT_NE(none.err.find("vunify: error:"), std::string::npos);
  auto missing = run_vunify({"--confdir=/nonexistent-vunify-conf", "nosuchguest", "other"});
  EXPECT_EQ(missing.status, 2);
  EXPECT_EQ(missing.err,
            "vunify: error: configuration base /nonexistent-vunify-conf does not exist\n");
}

// --confdir mixed up with a file or a guest's root: one line that says so,
// in every program that reads the configuration base; a guest that does
// not exist is named without a doubled errno text.
TEST_F(Cli, AConfigurationBaseThatCannotBeOneIsNamed) {
  const std::string file = "--confdir=" + t.path("guests/web1/usr/bin/tool");
  const std::string root = "--confdir=" + t.path("guests/web1");
  t.file("guests/web1/etc/passwd", "root:x:0:0::/root:/bin/sh\n");
  for (const auto& argv : std::vector<std::vector<std::string>>{
           {VUNIFY_BIN, file, "-n", "web1", "web2"},
           {VHASHIFY_BIN, file, "-n", "web1"},
           {VDU_BIN, file, "web1"},
           {VBARRIER_BIN, file, "check"},
           {VSERVER_BIN, file, "web1", "status"},
           {START_VSERVERS_BIN, "-c", t.path("guests/web1/usr/bin/tool"), "--all", "--start"},
           {VAPT_GET_BIN, file, "web1", "--", "update"}}) {
    auto r = run_program(argv);
    EXPECT_EQ(r.status, 2) << argv[0];
    EXPECT_NE(r.err.find("error: configuration base " + t.path("guests/web1/usr/bin/tool") +
                         " is not a directory\n"),
              std::string::npos)
        << argv[0] << ": " << r.err;
  }
  auto guest = run_vunify({root, "-n", "--all"});
  EXPECT_EQ(guest.status, 2);
  EXPECT_NE(guest.err.find("looks like a guest root (etc/passwd, usr/)"), std::string::npos)
      << guest.err;
  t.mkdirs("conf/ghost"); // no vdir, nothing at vdirbase/ghost
  auto ghost = run_vunify({conf(), "-n", "ghost", "web1"});
  EXPECT_EQ(ghost.status, 2);
  EXPECT_EQ(ghost.err.find("No such file or directory"), std::string::npos) << ghost.err;
  EXPECT_NE(ghost.err.find("guest 'ghost': root "), std::string::npos) << ghost.err;
  EXPECT_NE(ghost.err.find(" does not exist (no vdir in "), std::string::npos) << ghost.err;
}

// Without the capabilities a run that changes files needs, it is refused
// before anything is read: one line saying what to do, exit 2, nothing
// changed (vhashify creates no store). A dry run needs none of them.
TEST_F(Cli, ARunWithoutTheCapabilitiesItNeedsIsRefusedFirst) {
  const std::string setpriv = "/usr/bin/setpriv";
  if (::access(setpriv.c_str(), X_OK) != 0) GTEST_SKIP() << "setpriv (util-linux) is missing";
  auto before = content_snapshot(t.path("guests"));
  auto r =
      run_program({setpriv, "--bounding-set=-linux_immutable", VUNIFY_BIN, conf(), "web1", "web2"});
  EXPECT_EQ(r.status, 2);
  EXPECT_EQ(r.err,
            "vunify: error: run it as root: linking guests' files needs CAP_LINUX_IMMUTABLE; "
            "-n (a dry run) works without\n");
  auto h = run_program({setpriv, "--bounding-set=-fowner", VHASHIFY_BIN, conf(), "--destination",
                        t.path("store"), "web1", "web2"});
  EXPECT_EQ(h.status, 2);
  EXPECT_NE(h.err.find("vhashify: error: run it as root: linking guests' files to the store needs "
                       "CAP_FOWNER"),
            std::string::npos)
      << h.err;
  EXPECT_NE(::access(t.path("store").c_str(), F_OK), 0) << "a store was created";
  EXPECT_EQ(content_snapshot(t.path("guests")), before);
  EXPECT_FALSE(same("guests/web1/usr/bin/tool", "guests/web2/usr/bin/tool"));
  auto dry = run_program(
      {setpriv, "--bounding-set=-linux_immutable", VUNIFY_BIN, conf(), "-n", "web1", "web2"});
  EXPECT_EQ(dry.status, 0) << dry.err;
}

// vunify -R GUEST --path P in either order; a relative path, a path that
// names no file, and --path without -R are errors, not silent no-ops.
TEST_F(Cli, RevertPathsInEveryOrder) {
  ASSERT_EQ(run_vunify({conf(), "web1", "web2", "db1"}).status, 0);
  ASSERT_TRUE(same("guests/web1/usr/bin/tool", "guests/web2/usr/bin/tool"));
  auto r = run_vunify({conf(), "-R", "--path", "/usr/bin/tool", "web2"});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_FALSE(same("guests/web1/usr/bin/tool", "guests/web2/usr/bin/tool"));
  EXPECT_TRUE(same("guests/web1/usr/bin/tool", "guests/db1/usr/bin/tool"));
  EXPECT_TRUE(same("guests/web1/usr/lib/libx.so", "guests/web2/usr/lib/libx.so"))
      << "not asked for";
  auto after = run_vunify({conf(), "-R", "db1", "--path", "/usr/bin/tool"});
  ASSERT_EQ(after.status, 0) << after.err;
  EXPECT_FALSE(same("guests/web1/usr/bin/tool", "guests/db1/usr/bin/tool"));
  auto relative = run_vunify({conf(), "-R", "web1", "--path", "usr/lib/libx.so"});
  EXPECT_EQ(relative.status, 2);
  EXPECT_EQ(relative.err, "vunify: error: --path 'usr/lib/libx.so': not an absolute path inside "
                          "the guest (write /usr/lib/libx.so)\n");
  auto absent = run_vunify({conf(), "-R", "web1", "--path", "/usr/bin/no-such-tool"});
  EXPECT_EQ(absent.status, 1);
  EXPECT_NE(absent.out.find("web1:/usr/bin/no-such-tool: no regular file of the guest"),
            std::string::npos)
      << absent.out << absent.err;
  auto without = run_vunify({conf(), "--path", "/usr/bin/tool", "web1", "web2"});
  EXPECT_EQ(without.status, 2);
  EXPECT_NE(without.err.find("--path is for -R"), std::string::npos) << without.err;
  EXPECT_TRUE(same("guests/web1/usr/lib/libx.so", "guests/web2/usr/lib/libx.so"));
}

// Size options take du's units; --max-size; --exclude and --include on
// the command line come before every list, --include first.
TEST_F(Cli, SizeUnitsAndCommandLinePatterns) {
  auto sized =
      run_vunify({conf(), "--json", "--min-size", "4K", "--max-size", "10K", "web1", "web2"});
  ASSERT_EQ(sized.status, 0) << sized.err;
  auto j = json_of(sized);
  EXPECT_EQ(j["files_large"], 2) << "libx.so, 20000 bytes";
  EXPECT_TRUE(same("guests/web1/usr/bin/tool", "guests/web2/usr/bin/tool")) << "9000 bytes";
  EXPECT_FALSE(same("guests/web1/usr/lib/libx.so", "guests/web2/usr/lib/libx.so"));
  EXPECT_FALSE(same("guests/web1/etc/terminfo/x/xterm", "guests/web2/etc/terminfo/x/xterm"))
      << "3000 bytes, under 4 KiB";
  for (const char* option : {"--max-size", "--memory-limit"}) {
    auto negative = run_vunify({conf(), "-n", option, "-5", "web1", "web2"});
    EXPECT_EQ(negative.status, 2) << option << " -5 wrapped around: " << negative.err;
  }
  auto bad = run_vunify({conf(), "--min-size", "4Q", "web1", "web2"});
  EXPECT_EQ(bad.status, 2);
  EXPECT_EQ(std::count(bad.err.begin(), bad.err.end(), '\n'), 1) << bad.err;

  // /usr/lib left alone; /var (which the default list excludes) included;
  // an --include wins over an --exclude of the same file.
  auto pat =
      run_vunify({conf(), "--exclude", "/usr/lib/**", "--exclude", "/usr/bin/tool", "--include",
                  "/var", "--include", "/var/**", "--include", "/usr/bin/tool", "web1", "db1"});
  ASSERT_EQ(pat.status, 0) << pat.err;
  EXPECT_FALSE(same("guests/web1/usr/lib/libx.so", "guests/db1/usr/lib/libx.so"));
  EXPECT_TRUE(same("guests/web1/var/lib/state", "guests/db1/var/lib/state"));
  EXPECT_TRUE(same("guests/web1/usr/bin/tool", "guests/db1/usr/bin/tool"));
  EXPECT_TRUE(same("guests/web1/opt/app/data.bin", "guests/db1/opt/app/data.bin"));
  // A pattern cannot smuggle a second rule in on another line.
  auto two = run_vunify({conf(), "--exclude", "/usr/lib\n+/etc/**", "web1", "db1"});
  EXPECT_EQ(two.status, 2);
  EXPECT_NE(two.err.find("a pattern holds a line break"), std::string::npos) << two.err;
  auto relative = run_vunify({conf(), "--exclude", "usr/lib", "web1", "db1"});
  EXPECT_EQ(relative.status, 2);
  EXPECT_NE(relative.err.find("must be an absolute guest path"), std::string::npos) << relative.err;
}

TEST_F(Cli, NamedGuestsWithDefaultExcludes) {
  auto before = content_snapshot(t.path("guests"));
  uint64_t freed = 0; // the blocks of the inodes that go: what du sees freed
  for (const char* g : {"web2", "db1"})
    for (const char* f :
         {"usr/bin/tool", "usr/lib/libx.so", "etc/terminfo/x/xterm", "opt/app/data.bin"})
      freed += allocated_of(t.path(std::string("guests/") + g + "/" + f));
  ASSERT_GE(freed, 2u * (9000 + 20000 + 3000 + 5000));
  auto r = run_vunify({conf(), "--json", "web1", "web2", "db1"});
  ASSERT_EQ(r.status, 0) << r.err;
  auto j = json_of(r);
  EXPECT_EQ(j["tool"], "vunify");
  EXPECT_NE(j["version"].get<std::string>().find('.'), std::string::npos);
  const std::string stamp = j["timestamp"].get<std::string>(); // 2026-11-30T16:54:29Z
  EXPECT_EQ(stamp.size(), 20u) << stamp;
  EXPECT_EQ(stamp.substr(10, 1) + stamp.substr(19), "TZ") << stamp;
  EXPECT_EQ(j["guests"].size(), 3u);
  EXPECT_EQ(j["files_linked"], 8); // tool, libx.so, xterm, data.bin in web2 and db1
  EXPECT_EQ(j["bytes_saved"], freed);
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

// -v lists what is (or would be) linked, as util-vserver's -n did; -vv
// adds every name left alone and why.
TEST_F(Cli, VerboseListsEveryLinkedName) {
  auto dry = run_vunify({conf(), "-n", "-v", "web1", "web2"});
  ASSERT_EQ(dry.status, 0) << dry.err;
  EXPECT_NE(dry.out.find("would link web2:/usr/bin/tool -> web1:/usr/bin/tool"), std::string::npos)
      << dry.out;
  EXPECT_EQ(dry.out.find("left alone"), std::string::npos) << dry.out;
  auto r = run_vunify({conf(), "-vv", "web1", "web2"});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("linked web2:/usr/bin/tool -> web1:/usr/bin/tool"), std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("left alone web2:/var: excluded by built-in default list:"),
            std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("left alone web1:/etc/hostname: excluded by built-in default list:"),
            std::string::npos)
      << r.out;
}

// A guest's own list comes first, then the base's .defaults list.
TEST_F(Cli, GuestAndDefaultsExcludeFiles) {
  t.file("conf/web1/apps/vunify/exclude", "/opt/app\n");
  t.file("conf/.defaults/apps/vunify/exclude", "# shared by all guests\n/usr/lib\n");
  auto r = run_vunify({conf(), "--json", "web1", "web2", "db1"});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_FALSE(same("guests/web1/usr/lib/libx.so", "guests/web2/usr/lib/libx.so"));
  EXPECT_FALSE(same("guests/web1/opt/app/data.bin", "guests/web2/opt/app/data.bin"));
  EXPECT_TRUE(same("guests/web2/opt/app/data.bin", "guests/db1/opt/app/data.bin"));
  EXPECT_TRUE(same("guests/web1/usr/bin/tool", "guests/web2/usr/bin/tool"));
  // The base's list replaces the built-in one, as in util-vserver (the
  // package installs the built-in list there): /var is no longer excluded.
  EXPECT_TRUE(same("guests/web1/var/lib/state", "guests/web2/var/lib/state"));
}

// A list written for util-vserver, whose '*' crossed '/': one warning per
// list, naming the line and the '**' that means what it meant; a trailing
// '*' (an excluded directory is not entered) and '**' are not warned about.
TEST_F(Cli, OldListsWhoseStarCrossedSlashAreWarnedAboutOnce) {
  t.file("conf/.defaults/apps/vunify/exclude", "/etc/*\n/var/**/x\n/usr/lib/*.so\n/usr/*/y\n");
  auto r = run_vunify({conf(), "-n", "web1", "web2", "db1"});
  ASSERT_EQ(r.status, 0) << r.err;
  const std::string w = "vunify: warning: " + t.path("conf/.defaults/apps/vunify/exclude") +
                        ":3: '/usr/lib/*.so': '*' stays within one directory (util-vserver's "
                        "crossed '/'); write '/usr/lib/**.so' if deeper paths were meant\n";
  EXPECT_NE(r.err.find(w), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("warning: " + t.path("conf/.defaults/apps/vunify/exclude"),
                       r.err.find(w) + w.size()),
            std::string::npos)
      << "once: " << r.err;
  t.file("conf/.defaults/apps/vunify/exclude", "/etc/*\n/var/**/x\n/usr/lib/**.so\n");
  auto quiet = run_vunify({conf(), "-n", "web1", "web2"});
  EXPECT_EQ(quiet.err.find("stays within one directory"), std::string::npos) << quiet.err;
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
