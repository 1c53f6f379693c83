// vapt-get's and vrpm's parsers of what a guest says: apt-get --simulate and
// --print-uris output, dpkg's file lists, tar streams (real ones made with
// GNU tar in its three formats, fed in odd pieces), rpm command lines and
// rpm's query output.
#include "kernel/fd.h"
#include "pkgmgmt/apt_plan.h"
#include "pkgmgmt/rpm_plan.h"
#include "pkgmgmt/tar_names.h"
#include "tests/support/guest_fixture.h"
#include "tests/support/temp_tree.h"

#include <gtest/gtest.h>

#include <fcntl.h>
#include <unistd.h>

#include <filesystem>

using namespace vu;
using vu::test::sh;
using vu::test::TempTree;

namespace {

const char* k_simulation =
    "NOTE: This is only a simulation!\n"
    "Reading package lists...\n"
    "The following NEW packages will be installed:\n"
    "  hello\n"
    "Inst libc6 [2.36-9+deb12u3] (2.36-9+deb12u4 Debian:12.8/stable [amd64]) []\n"
    "Inst hello (2.10-3 Debian:12.8/stable [amd64])\n"
    "Inst libfoo:i386 [1:1.0-1] (1:1.1-1 Debian:12.8/stable [i386])\n"
    "Remv webfs [1.21+ds1-12]\n"
    "Purg old-thing [0.1]\n"
    "Conf libc6 (2.36-9+deb12u4 Debian:12.8/stable [amd64])\n"
    "Conf hello (2.10-3 Debian:12.8/stable [amd64])\n";

TEST(AptPlan, ParsesTheStepsOfASimulation) {
  auto steps = parse_apt_simulation(k_simulation);
  ASSERT_TRUE(steps.ok()) << steps.error().message();
  ASSERT_EQ(steps->size(), 7u);
  const auto& libc = (*steps)[0];
  EXPECT_EQ(libc.action, AptAction::install);
  EXPECT_EQ(libc.package, "libc6");
  EXPECT_EQ(libc.old_version, "2.36-9+deb12u3");
  EXPECT_EQ(libc.new_version, "2.36-9+deb12u4");
  EXPECT_EQ(libc.arch, "amd64");
  EXPECT_TRUE((*steps)[1].old_version.empty());
  EXPECT_EQ((*steps)[2].package, "libfoo:i386");
  EXPECT_EQ(apt_archive_name((*steps)[2]), "libfoo_1%3a1.1-1_i386.deb");
  EXPECT_EQ((*steps)[3].action, AptAction::remove);
  EXPECT_EQ((*steps)[3].old_version, "1.21+ds1-12");
  EXPECT_EQ((*steps)[4].action, AptAction::purge);
  EXPECT_EQ((*steps)[6].action, AptAction::configure);
}

TEST(AptPlan, RefusesStepsDebianWouldNotPrint) {
  for (const char* bad :
       {"Inst ../../etc (1.0 x [amd64])\n", "Inst Hello (1.0 x [amd64])\n",
        "Inst hello (1.0;rm x [amd64])\n", "Inst hello (1.0 x)\n", "Inst hello\n",
        "Remv hello [1.0\n", "Inst hello (1.0 x [amd/64])\n", "Inst h (1.0 x [amd64])\n"}) {
    auto steps = parse_apt_simulation(bad);
    EXPECT_FALSE(steps.ok()) << bad;
    if (!steps.ok()) {
      EXPECT_NE(steps.error().message().find("line 1"), std::string::npos);
    }
  }
  std::string many;
  for (int i = 0; i < 11; ++i) many += "Remv hello [1.0]\n";
  EXPECT_FALSE(parse_apt_simulation(many, 10).ok());
  EXPECT_TRUE(parse_apt_simulation(many, 11).ok());
}

TEST(AptPlan, KnowsWhichCommandsChangePackages) {
  using V = std::vector<std::string>;
  for (const V& yes : {V{"install", "hello"}, V{"-y", "upgrade"}, V{"-o", "update", "remove", "x"},
                       V{"--option", "A=b", "dist-upgrade"}, V{"-f", "install"}, V{"purge", "x"},
                       V{"autoremove"}, V{"reinstall", "x"}, V{"full-upgrade"}})
    EXPECT_TRUE(apt_command_changes_packages(yes)) << yes.back();
  for (const V& no : {V{"update"}, V{"-q", "clean"}, V{"download", "hello"}, V{"-o", "install"},
                      V{"source", "hello"}, V{}, V{"install", "-s", "hello"}, V{"-ys", "upgrade"},
                      V{"--download-only", "install", "x"}, V{"remove", "--dry-run", "x"},
                      V{"-d", "dist-upgrade"}})
    EXPECT_FALSE(apt_command_changes_packages(no));
}

TEST(AptPlan, PrintUrisGiveArchivePathsInTheGuest) {
  auto paths = parse_apt_print_uris(
      "Reading package lists...\n"
      "'http://deb.debian.org/debian/pool/main/h/hello/hello_2.10-3_amd64.deb' "
      "hello_2.10-3_amd64.deb 53080 SHA256:00\n"
      "'file:/srv/my%20repo/./libfoo_1%3a1.0_all.deb' libfoo_1%3a1.0_all.deb 10 MD5Sum:00\n");
  ASSERT_TRUE(paths.ok()) << paths.error().message();
  EXPECT_EQ(*paths, (std::vector<std::string>{"/var/cache/apt/archives/hello_2.10-3_amd64.deb",
                                              "/srv/my repo/./libfoo_1:1.0_all.deb"}));
  for (const char* bad : {"'http://x/y.deb' ../../etc/shadow 1 x\n", "'file:relative.deb' a 1 x\n",
                          "'file:/a%2", "'file:/a%00b' a 1 x\n", "'http://unterminated a 1\n"})
    EXPECT_FALSE(parse_apt_print_uris(bad).ok()) << bad;
}

TEST(AptPlan, ReadsTheFileListsOfAPackageInEveryArchitecture) {
  TempTree t;
  t.file("dpkg/info/hello.list", "/.\n/usr\n/usr/bin/hello\n");
  t.file("dpkg/info/libc6:amd64.list", "/usr/lib/x86_64-linux-gnu/libc.so.6\n");
  t.file("dpkg/info/libc6:i386.list", "/usr/lib/i386-linux-gnu/libc.so.6\n");
  t.file("dpkg/info/libc6-dev:amd64.list", "/usr/include/stdio.h\n");
  t.file("dpkg/info/libc6.md5sums", "not a list\n");
  std::filesystem::create_symlink("/etc/shadow", t.path("dpkg/info/evil.list"));
  vu::UniqueFd admin(::open(t.path("dpkg").c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  auto hello = read_dpkg_file_lists(admin.get(), "hello");
  ASSERT_TRUE(hello.ok()) << hello.error().message();
  EXPECT_EQ(*hello, (std::vector<std::string>{"/.", "/usr", "/usr/bin/hello"}));
  auto libc = read_dpkg_file_lists(admin.get(), "libc6");
  ASSERT_TRUE(libc.ok());
  EXPECT_EQ(libc->size(), 2u);
  auto i386 = read_dpkg_file_lists(admin.get(), "libc6:i386");
  ASSERT_TRUE(i386.ok());
  EXPECT_EQ(*i386, std::vector<std::string>{"/usr/lib/i386-linux-gnu/libc.so.6"});
  EXPECT_FALSE(read_dpkg_file_lists(admin.get(), "evil").ok()); // a symlink is not followed
  EXPECT_TRUE(read_dpkg_file_lists(admin.get(), "absent")->empty());
  EXPECT_FALSE(read_dpkg_file_lists(admin.get(), "../x").ok());
  t.file("dpkg/info/big.list", std::string(100, 'x'));
  EXPECT_FALSE(read_dpkg_file_lists(admin.get(), "big", 50).ok());
  EXPECT_FALSE(parse_dpkg_file_list("/ok\nrelative\n", "list").ok());
  EXPECT_FALSE(parse_dpkg_file_list("/" + std::string(5000, 'a') + "\n", "list").ok());
}

// The names of a tar file fed to a reader `chunk` bytes at a time.
Result<std::vector<std::string>> names_of(const std::string& tar, size_t chunk,
                                          TarLimits limits = {}) {
  std::string data = vu::test::read_all(tar);
  TarNameReader r(limits);
  for (size_t i = 0; i < data.size(); i += chunk)
    VU_TRY(r.feed(std::string_view(data).substr(i, chunk)));
  VU_TRY(r.finish());
  return r.names();
}

TEST(TarNames, ReadsGnuPaxAndUstarArchivesInAnyPieces) {
  TempTree t;
  const std::string long_dir = "usr/share/" + std::string(95, 'd');
  t.file("src/" + long_dir + "/" + std::string(90, 'f'), "long\n");
  t.file("src/usr/bin/hello", "binary\n");
  t.file("src/usr/share/doc/with space.txt", "x\n");
  sh("ln -s hello " + t.path("src/usr/bin/hi"));
  std::vector<std::string> want{"/usr",
                                "/usr/bin",
                                "/usr/bin/hello",
                                "/usr/bin/hi",
                                "/usr/share",
                                "/usr/share/doc",
                                "/usr/share/doc/with space.txt",
                                "/" + long_dir,
                                "/" + long_dir + "/" + std::string(90, 'f')};
  std::sort(want.begin(), want.end());
  for (const char* format : {"gnu", "pax", "ustar"}) {
    const std::string tar = t.path(std::string(format) + ".tar");
    ASSERT_EQ(sh(std::string("tar --format=") + format + " --sort=name -C " + t.path("src") +
                 " -cf " + tar + " ."),
              0);
    for (size_t chunk : {1, 7, 512, 100000}) {
      auto names = names_of(tar, chunk);
      ASSERT_TRUE(names.ok()) << format << ": " << names.error().message();
      auto sorted = *names;
      std::sort(sorted.begin(), sorted.end());
      EXPECT_EQ(sorted, want) << format << " in pieces of " << chunk;
    }
  }
  // Two archives one after the other (vapt-get lists several at once).
  ASSERT_EQ(sh("cat " + t.path("gnu.tar") + " " + t.path("pax.tar") + " > " + t.path("two.tar")),
            0);
  auto two = names_of(t.path("two.tar"), 4096);
  ASSERT_TRUE(two.ok());
  EXPECT_EQ(two->size(), 2 * want.size());
  auto few = names_of(t.path("gnu.tar"), 4096, TarLimits{1ull << 30, 3, 1 << 16});
  EXPECT_FALSE(few.ok());
}

TEST(TarNames, RefusesStreamsThatAreNotTarOrEscape) {
  TempTree t;
  t.file("src/x", "data\n");
  ASSERT_EQ(
      sh("tar --format=gnu -P -C " + t.path("src") + " -cf " + t.path("up.tar") + " ../src/x"), 0);
  auto up = names_of(t.path("up.tar"), 512);
  ASSERT_FALSE(up.ok());
  EXPECT_NE(up.error().message().find(".."), std::string::npos);
  ASSERT_EQ(sh("tar --format=gnu -C " + t.path("src") + " -cf " + t.path("ok.tar") + " x"), 0);
  std::string data = vu::test::read_all(t.path("ok.tar"));
  std::string bad = data;
  bad[0] ^= 1; // name changed, checksum not
  TarNameReader r;
  EXPECT_FALSE(r.feed(bad).ok());
  EXPECT_FALSE(r.feed(data).ok()); // stays failed
  TarNameReader cut;
  ASSERT_TRUE(cut.feed(std::string_view(data).substr(0, 700)).ok()); // inside x's data
  EXPECT_FALSE(cut.finish().ok());
  TarNameReader small(TarLimits{1000, 10, 1 << 16});
  EXPECT_FALSE(small.feed(data).ok()); // larger than the stream may be
}

} // namespace

namespace {

TEST(RpmPlan, ReadsCommandLinesAsRpmDoes) {
  using V = std::vector<std::string>;
  auto u = read_rpm_command(V{"-Uvh", "--nodeps", "/srv/a-1.rpm", "b-2.noarch.rpm"});
  EXPECT_TRUE(u.changes);
  EXPECT_FALSE(u.erase);
  EXPECT_EQ(u.packages, (V{"/srv/a-1.rpm", "/b-2.noarch.rpm"}));
  auto e = read_rpm_command(V{"-e", "--allmatches", "vu-test-a", "vu-test-b"});
  EXPECT_TRUE(e.changes && e.erase);
  EXPECT_EQ(e.names, (V{"vu-test-a", "vu-test-b"}));
  EXPECT_TRUE(read_rpm_command(V{"--define", "-e x", "--upgrade", "/x.rpm"}).changes);
  EXPECT_EQ(read_rpm_command(V{"--root", "-e", "-i", "/x.rpm"}).erase, false);
  EXPECT_EQ(read_rpm_command(V{"-r", "/alt", "-F", "/x.rpm"}).packages, V{"/x.rpm"});
  for (const V& no : {V{"-qa"}, V{"-qi", "bash"}, V{"-V", "bash"}, V{"-Uvh", "--test", "/x.rpm"},
                      V{"--initdb"}, V{"--rebuilddb"}, V{"-qpl", "/x.rpm"}, V{}})
    EXPECT_FALSE(read_rpm_command(no).changes) << (no.empty() ? "" : no.front());
  // URLs are not package files here.
  EXPECT_TRUE(read_rpm_command(V{"-i", "http://h/x.rpm"}).packages.empty());
}

TEST(RpmPlan, ParsesQueryOutputAndSkipsRpmsMessages) {
  auto r = parse_rpm_query("@@name vu-test-a\n/etc/vu-a.conf\n/usr/share/vu-a/data bin\n"
                           "package nothere is not installed\nwarning: something\n"
                           "@@name python3.11-libs_x+\n");
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_EQ(r->names, (std::vector<std::string>{"vu-test-a", "python3.11-libs_x+"}));
  EXPECT_EQ(r->paths, (std::vector<std::string>{"/etc/vu-a.conf", "/usr/share/vu-a/data bin"}));
  for (const char* bad : {"@@name ../../x\n", "@@name -e\n", "@@name \n", "@@name a;b\n"})
    EXPECT_FALSE(parse_rpm_query(bad).ok()) << bad;
  EXPECT_FALSE(parse_rpm_query("/" + std::string(5000, 'x') + "\n").ok());
  EXPECT_FALSE(parse_rpm_query("/a\n/b\n/c\n", 2).ok());
}

} // namespace
