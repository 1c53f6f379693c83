#include "kernel/fs.h"
#include "pkgmgmt/config_files.h"
#include "tests/support/temp_tree.h"

#include <gtest/gtest.h>

#include <fcntl.h>
#include <unistd.h>

using namespace vu;
using vu::test::TempTree;

namespace {

const char* k_status = "Package: base-files\n"
                       "Status: install ok installed\n"
                       "Version: 12.4\n"
                       "Conffiles:\n"
                       " /etc/debian_version 8c5f4ebcd4fc41ffa5be1e6a8a0b1ea4\n"
                       " /etc/host.conf 4eb63731c9f5e30903ac4fc07a7fe3d6\n"
                       " /etc/old.conf 0123456789abcdef0123456789abcdef obsolete\n"
                       "Description: base\n"
                       " more description\n"
                       "\n"
                       "Package: adduser\n"
                       "Status: install ok installed\n"
                       "Conffiles:\n"
                       " /etc/with space/a.conf 1f2e3d4c5b6a79881f2e3d4c5b6a7988\n"
                       " /etc/adduser.conf newconffile\n"
                       "\n"
                       "Package: no-conffiles\n"
                       "Status: deinstall ok config-files\n"
                       "\n";

Result<std::vector<std::string>> parse_status(std::string_view text) {
  PackageDbSource src;
  std::vector<std::string> paths;
  VU_TRY(parse_dpkg_status(text, "status", {}, src, paths));
  return paths;
}

} // namespace

TEST(PathList, ParsesSortsAndDropsFlagWords) {
  auto r = parse_path_list("/etc/b\n/etc/a obsolete\n\n/etc/b\n/etc/c remove-on-upgrade\r\n", "x");
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_EQ(*r, (std::vector<std::string>{"/etc/a", "/etc/b", "/etc/c"}));
}

TEST(PathList, FlagsBeforeThePathAsDebian12DpkgWritesThem) {
  // pkgconf's and pkg-config's info/*.conffiles on Debian 12.
  auto r = parse_path_list("remove-on-upgrade /etc/dpkg/dpkg.cfg.d/pkgconf-hook-config\n"
                           "/etc/plain\n"
                           "remove-on-upgrade  some-future-flag /etc/two flags\n",
                           "x");
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_EQ(*r, (std::vector<std::string>{"/etc/dpkg/dpkg.cfg.d/pkgconf-hook-config", "/etc/plain",
                                          "/etc/two flags"}));
  EXPECT_FALSE(parse_path_list("Remove-On-Upgrade /etc/x\n", "x").ok());
  EXPECT_FALSE(parse_path_list("remove-on-upgrade\n", "x").ok());
  // The status file's form of the same entry: hash "newconffile", flag last.
  auto f = parse_conffiles_field(
      "\n /etc/dpkg/dpkg.cfg.d/pkgconf-hook-config newconffile remove-on-upgrade\n", "x");
  ASSERT_TRUE(f.ok()) << f.error().message();
  EXPECT_EQ(*f, (std::vector<std::string>{"/etc/dpkg/dpkg.cfg.d/pkgconf-hook-config"}));
}

TEST(PathList, RejectsHostileInput) {
  EXPECT_FALSE(parse_path_list("etc/relative\n", "x").ok());
  EXPECT_FALSE(parse_path_list(std::string("/etc/a\0b\n", 9), "x").ok());
  EXPECT_FALSE(parse_path_list("/" + std::string(5000, 'a') + "\n", "x").ok());
  auto many = parse_path_list("/a\n/b\n/c\n", "x", 2);
  ASSERT_FALSE(many.ok());
  EXPECT_EQ(many.code(), E2BIG);
  EXPECT_NE(many.error().message().find("x:3"), std::string::npos);
}

TEST(ConffilesField, PathsWithBlanksHashesAndFlags) {
  auto r = parse_conffiles_field("\n /etc/a b/c 0123abcd\n /etc/d 99ff obsolete\n"
                                 " /etc/e newconffile\n /etc/f 00 remove-on-upgrade\n",
                                 "f");
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_EQ(*r, (std::vector<std::string>{"/etc/a b/c", "/etc/d", "/etc/e", "/etc/f"}));
  EXPECT_FALSE(parse_conffiles_field(" /etc/nohash\n", "f").ok());
  EXPECT_FALSE(parse_conffiles_field(" /etc/x NOTHEX\n", "f").ok());
  EXPECT_FALSE(parse_conffiles_field(" relative 00\n", "f").ok());
}

TEST(DpkgStatus, ConffilesOfEveryPackage) {
  auto r = parse_status(k_status);
  ASSERT_TRUE(r.ok()) << r.error().message();
  // Per package in file order, each package's list sorted.
  EXPECT_EQ(*r, (std::vector<std::string>{"/etc/debian_version", "/etc/host.conf", "/etc/old.conf",
                                          "/etc/adduser.conf", "/etc/with space/a.conf"}));
  EXPECT_TRUE(parse_status("").ok());
}

TEST(DpkgStatus, MalformedInputIsAnError) {
  std::string good = k_status;
  auto truncated = parse_status(good.substr(0, good.size() / 2));
  ASSERT_FALSE(truncated.ok());
  EXPECT_NE(truncated.error().message().find("truncated"), std::string::npos);
  EXPECT_FALSE(parse_status(good.substr(0, good.size() - 1)).ok());
  EXPECT_FALSE(parse_status(std::string("Package: a\nStatus: x\n\0\n\n", 24)).ok());
  auto no_pkg = parse_status("Status: install ok installed\nVersion: 1\n\n");
  ASSERT_FALSE(no_pkg.ok());
  EXPECT_NE(no_pkg.error().message().find("stanza 1"), std::string::npos);
  EXPECT_FALSE(parse_status("Package: a\nStatus: x\nConffiles:\n etc/rel 00\n\n").ok());
  EXPECT_FALSE(parse_status("\x01\x02garbage without fields\n\n").ok());
  EXPECT_FALSE(parse_status("\n\n").ok()) << "no stanza at all";
}

TEST(DpkgStatus, TheFormatDpkgWrites) {
  // Field names in any case, a value on the field's own line and on
  // continuation lines, fields after Conffiles, several empty lines between
  // stanzas, a description line holding "Conffiles:" that is no field, a
  // package name with each of the signs dpkg allows.
  auto r = parse_status(
      "package: a\nSTATUS: install ok installed\n"
      "Conffiles: /etc/first 00\n /etc/second 11\n\t/etc/third 22\n"
      "Description: x\n Conffiles:\n  /etc/not-a-conffile 33\n\n\n\n"
      "Package: lib_b+x.y-z\nStatus: install ok installed\nconffiles:\n /etc/b 44 obsolete\n"
      "Version: 1\n\n");
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_EQ(*r, (std::vector<std::string>{"/etc/first", "/etc/second", "/etc/third", "/etc/b"}));
  PackageDbSource src;
  std::vector<std::string> paths;
  ASSERT_TRUE(
      parse_dpkg_status("Package: a\nStatus: x\n\nPackage: b\nStatus: y\n\n", "s", {}, src, paths)
          .ok());
  EXPECT_EQ(src.packages, 2u);
}

TEST(DpkgStatus, HostileStanzasAreRefusedWithTheirLine) {
  auto refused = [](const std::string& text, const std::string& what) {
    auto r = parse_status(text);
    if (r.ok()) return ::testing::AssertionFailure() << "accepted: " << text;
    if (r.error().message().find(what) == std::string::npos)
      return ::testing::AssertionFailure() << r.error().message() << " does not say " << what;
    return ::testing::AssertionSuccess();
  };
  EXPECT_TRUE(refused(" /etc/x 00\nPackage: a\nStatus: x\n\n", "status:1: continuation"));
  EXPECT_TRUE(refused("Package: a\nStatus: x\nno colon here\n\n", "status:3: not a"));
  EXPECT_TRUE(refused("Package: a\n: empty name\nStatus: x\n\n", "status:2: not a"));
  EXPECT_TRUE(refused("Package: a\nStatus: x\nConffiles:\n /etc/a 00\nConffiles:\n\n",
                      "status:5: field Conffiles twice"));
  EXPECT_TRUE(refused("Package: a\nPACKAGE: b\nStatus: x\n\n", "twice"));
  // A package name that dpkg would never write (it ends up in messages).
  EXPECT_TRUE(refused("Package: \x1b[2Jevil\nStatus: x\n\n", "not a package name"));
  EXPECT_TRUE(refused("Package: -a\nStatus: x\n\n", "not a package name"));
  EXPECT_TRUE(refused("Package:\nStatus: x\n\n", "not a package name"));
  EXPECT_TRUE(refused("Package: a\nStatus: x\n\nVersion: 1\n\n", "stanza 2"));
  // A hostile Conffiles value: the same checks as every other list.
  EXPECT_TRUE(refused("Package: a\nStatus: x\nConffiles:\n /" + std::string(5000, 'a') + " 00\n\n",
                      "too long"));
  ReadLimits few;
  few.max_entries = 2;
  PackageDbSource src;
  std::vector<std::string> paths;
  auto many = parse_dpkg_status("Package: a\nStatus: x\nConffiles:\n /etc/a 00\n /etc/b 00\n\n"
                                "Package: b\nStatus: x\nConffiles:\n /etc/c 00\n /etc/d 00\n\n",
                                "s", few, src, paths);
  EXPECT_EQ(many.code(), E2BIG);
}

TEST(Librpm, LoadedOnlyWhenAskedAndASayingWhatToInstallWhenMissing) {
  auto missing = check_librpm_loads("libvunify-no-such-library.so.0");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.code(), ELIBACC);
  EXPECT_NE(missing.error().message().find("librpm9"), std::string::npos)
      << missing.error().message();
  EXPECT_EQ(missing.error().message().find('\n'), std::string::npos);
  // A library without librpm's functions.
  auto wrong = check_librpm_loads("libz.so.1");
  ASSERT_FALSE(wrong.ok());
  EXPECT_NE(wrong.error().message().find("has no rpm"), std::string::npos)
      << wrong.error().message();
  auto real = check_librpm_loads();
  EXPECT_TRUE(real.ok()) << real.error().message();
}

TEST(DpkgReader, StatusAndInfoCrossCheckAndHostileFiles) {
  TempTree t;
  t.file("admin/status", k_status);
  t.file("admin/info/base-files.conffiles", "/etc/debian_version\n/etc/host.conf\n");
  t.file("admin/info/extra.conffiles", "/etc/only-in-info.conf\n");
  t.file("admin/info/base-files.list", "/not/a/conffile\n");
  auto admin = open_directory(t.path("admin"));
  std::vector<std::string> paths;
  auto src = read_dpkg_config_files(admin->get(), "/var/lib/dpkg", {}, paths);
  ASSERT_TRUE(src.ok()) << src.error().message();
  EXPECT_EQ(src->packages, 3u);
  EXPECT_EQ(src->config_files, 6u);
  EXPECT_EQ(src->cross_check_only, 1u);
  EXPECT_EQ(std::count(paths.begin(), paths.end(), "/etc/only-in-info.conf"), 1);
  EXPECT_EQ(std::count(paths.begin(), paths.end(), "/not/a/conffile"), 0);

  // A status that is a symlink to a file outside is never read.
  t.file("outside/status", k_status);
  t.mkdirs("evil/info");
  ASSERT_EQ(::symlink(t.path("outside/status").c_str(), t.path("evil/status").c_str()), 0);
  auto evil = open_directory(t.path("evil"));
  auto r = read_dpkg_config_files(evil->get(), "/var/lib/dpkg", {}, paths);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.code(), ELOOP);
  EXPECT_NE(r.error().message().find("status"), std::string::npos);

  // A huge (sparse) status is refused before it is read.
  t.mkdirs("huge");
  int fd = ::open(t.path("huge/status").c_str(), O_CREAT | O_WRONLY, 0644);
  ASSERT_EQ(::ftruncate(fd, 300ll << 20), 0);
  ::close(fd);
  auto huge = open_directory(t.path("huge"));
  EXPECT_EQ(read_dpkg_config_files(huge->get(), "/var/lib/dpkg", {}, paths).code(), EFBIG);

  // A hostile info/*.conffiles.
  t.file("bad/status", k_status);
  t.file("bad/info/x.conffiles", "relative/path\n");
  auto bad = open_directory(t.path("bad"));
  EXPECT_FALSE(read_dpkg_config_files(bad->get(), "/var/lib/dpkg", {}, paths).ok());
}

TEST(PackageDbLocation, InternalExternalAndDefaults) {
  TempTree t;
  t.build("d conf/.defaults/apps/pkgmgmt\nd guests/a\nd guests/b\nd guests/c\nd guests/d\n"
          "d conf/a\nd conf/b/apps/pkgmgmt\nd conf/c/apps/pkgmgmt\nd conf/d/apps/pkgmgmt\n"
          "d pkg/b/dpkg/state\nd pkg/b/rpm/state\nd pkg/c/rpm/state\nd own/rpm\n"
          "d defaults-base/a/dpkg/state\n");
  ASSERT_EQ(::symlink(t.path("guests").c_str(), t.path("conf/.defaults/vdirbase").c_str()), 0);
  ASSERT_EQ(::symlink(t.path("defaults-base").c_str(),
                      t.path("conf/.defaults/apps/pkgmgmt/base").c_str()),
            0);
  ASSERT_EQ(::symlink(t.path("pkg/b").c_str(), t.path("conf/b/apps/pkgmgmt/base").c_str()), 0);
  ASSERT_EQ(::symlink(t.path("pkg/c").c_str(), t.path("conf/c/apps/pkgmgmt/base").c_str()), 0);
  t.file("conf/c/apps/pkgmgmt/internal", "");
  ASSERT_EQ(::symlink(t.path("own/rpm").c_str(), t.path("conf/d/apps/pkgmgmt/rpmstate").c_str()),
            0);
  ConfigBase base(t.path("conf"));
  auto a = locate_package_dbs(*base.resolve("a"), base);
  EXPECT_EQ(a.dpkg_admin_dir, t.path("defaults-base/a/dpkg/state"));
  EXPECT_EQ(a.rpm_db_dir, "");
  auto b = locate_package_dbs(*base.resolve("b"), base);
  EXPECT_EQ(b.dpkg_admin_dir, t.path("pkg/b/dpkg/state"));
  EXPECT_EQ(b.rpm_db_dir, t.path("pkg/b/rpm/state"));
  auto c = locate_package_dbs(*base.resolve("c"), base);
  EXPECT_EQ(c.rpm_db_dir, "") << "apps/pkgmgmt/internal wins";
  auto d = locate_package_dbs(*base.resolve("d"), base);
  EXPECT_EQ(d.rpm_db_dir, t.path("own/rpm"));
  EXPECT_EQ(locate_package_dbs(Guest{"x", t.path("guests/a"), {}}, base).dpkg_admin_dir, "");
}

TEST(GuestConfigFiles, NoDatabaseIsNotAnError) {
  TempTree t;
  t.mkdirs("root/usr");
  auto root = open_directory(t.path("root"));
  auto r = read_guest_config_files(root->get(), {});
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_TRUE(r->paths.empty());
  EXPECT_TRUE(r->sources.empty());
  // var/lib/dpkg as a symlink out of the guest leads to the guest's own
  // path of that name (absent here), never the host's.
  t.file("outside/dpkg/status", k_status);
  t.mkdirs("root/var/lib");
  ASSERT_EQ(::symlink(t.path("outside/dpkg").c_str(), t.path("root/var/lib/dpkg").c_str()), 0);
  auto evil = read_guest_config_files(root->get(), {});
  ASSERT_TRUE(evil.ok()) << evil.error().message();
  EXPECT_TRUE(evil->sources.empty());
  // The same link target inside the guest is the guest's database.
  t.file("root" + t.path("outside/dpkg/status"), k_status);
  auto inside = read_guest_config_files(root->get(), {});
  ASSERT_TRUE(inside.ok()) << inside.error().message();
  EXPECT_EQ(inside->sources.size(), 1u);
  // A symlinked status file is still refused.
  t.mkdirs("root2/var/lib/dpkg");
  ASSERT_EQ(
      ::symlink(t.path("outside/dpkg/status").c_str(), t.path("root2/var/lib/dpkg/status").c_str()),
      0);
  auto root2 = open_directory(t.path("root2"));
  EXPECT_FALSE(read_guest_config_files(root2->get(), {}).ok());
}
