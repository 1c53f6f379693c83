// Configuration files known to the package manager stay private: real RPM
// databases made with rpmbuild and rpm, external database locations, and
// hostile package databases.
#include "kernel/fs.h"
#include "pkgmgmt/config_files.h"
#include "tests/support/fixtures.h"
#include "tests/support/run_program.h"
#include "tests/support/temp_tree.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <set>
#include <sstream>

using namespace vu::test;
namespace fs = std::filesystem;

namespace {

bool same(const TempTree& t, const std::string& a, const std::string& b) {
  return same_inode(t.path(a), t.path(b));
}

const char* k_config_paths[] = {"etc/vu-a.conf", "usr/share/vu-a/settings.ini", "etc/vu-b.conf",
                                "usr/lib/vu-b/defaults.cfg"};

} // namespace

TEST(Rpm, ConfigAndNoreplaceFilesStayPrivate) {
  std::string why;
  auto rpms = cached_test_rpms(why);
  if (rpms.empty()) GTEST_SKIP() << why;
  TempTree t;
  for (const char* g : {"g1", "g2"}) ASSERT_TRUE(install_rpms(t.path(g), rpms)) << g;
  ASSERT_TRUE(fs::exists(t.path("g1/var/lib/rpm/rpmdb.sqlite")));
  ASSERT_TRUE(fs::exists(t.path("g1/usr/share/vu-a/settings.ini")));
  auto before = content_snapshot(t.root());
  auto r = run_vunify({"--json", "--no-default-excludes", t.path("g1"), t.path("g2")});
  ASSERT_EQ(r.status, 0) << r.err << r.out;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["guests"][0]["config_files"], 4);
  EXPECT_NE(
      j["guests"][0]["config_sources"][0].get<std::string>().find("rpm /var/lib/rpm/rpmdb.sqlite"),
      std::string::npos)
      << j["guests"][0]["config_sources"];
  for (const char* c : k_config_paths)
    EXPECT_FALSE(same(t, std::string("g1/") + c, std::string("g2/") + c)) << c;
  EXPECT_TRUE(same(t, "g1/usr/share/vu-a/data.bin", "g2/usr/share/vu-a/data.bin"));
  EXPECT_TRUE(same(t, "g1/usr/lib/vu-b/lib.bin", "g2/usr/lib/vu-b/lib.bin"));
  EXPECT_EQ(content_snapshot(t.root()), before);
}

TEST(Rpm, DatabaseInSysimageWithVarLibRpmALinkToIt) {
  // RPM 4.17's layout: usr/lib/sysimage/rpm, var/lib/rpm -> ../../usr/lib/sysimage/rpm.
  std::string why;
  auto rpms = cached_test_rpms(why);
  if (rpms.empty()) GTEST_SKIP() << why;
  TempTree t;
  for (const char* g : {"g1", "g2"}) {
    ASSERT_TRUE(install_rpms(t.path(g), rpms)) << g;
    ASSERT_EQ(sh("cd " + t.path(g) +
                 " && mkdir -p usr/lib/sysimage && mv var/lib/rpm usr/lib/sysimage/rpm"
                 " && ln -s ../../usr/lib/sysimage/rpm var/lib/rpm"),
              0);
  }
  // g2 has no var/lib/rpm at all: the new place is found by itself.
  ASSERT_EQ(::unlink(t.path("g2/var/lib/rpm").c_str()), 0);
  auto r = run_vunify({"--json", "--no-default-excludes", t.path("g1"), t.path("g2")});
  ASSERT_EQ(r.status, 0) << r.err << r.out;
  auto j = json_of(r);
  for (int g : {0, 1}) {
    EXPECT_EQ(j["guests"][g]["pkgmgmt"], "used");
    EXPECT_EQ(j["guests"][g]["config_files"], 4) << j["guests"][g]["config_sources"];
  }
  for (const char* c : k_config_paths)
    EXPECT_FALSE(same(t, std::string("g1/") + c, std::string("g2/") + c)) << c;
  EXPECT_TRUE(same(t, "g1/usr/share/vu-a/data.bin", "g2/usr/share/vu-a/data.bin"));
}

TEST(Rpm, ExternalDatabaseUnderAppsPkgmgmtBase) {
  std::string why;
  auto rpms = cached_test_rpms(why);
  if (rpms.empty()) GTEST_SKIP() << why;
  TempTree t;
  t.build("d conf/.defaults\nd conf/g1\nd conf/g2/apps/pkgmgmt\nd pkg/g2/rpm\n");
  ASSERT_EQ(::symlink(t.path("guests").c_str(), t.path("conf/.defaults/vdirbase").c_str()), 0);
  for (const char* g : {"g1", "g2"})
    ASSERT_TRUE(install_rpms(t.path(std::string("guests/") + g), rpms)) << g;
  // g2's database leaves the guest (util-vserver: /vservers/.pkg/<name>/rpm/state).
  ASSERT_EQ(sh("mv " + t.path("guests/g2/var/lib/rpm") + " " + t.path("pkg/g2/rpm/state")), 0);
  ASSERT_EQ(::symlink(t.path("pkg/g2").c_str(), t.path("conf/g2/apps/pkgmgmt/base").c_str()), 0);
  auto r =
      run_vunify({"--json", "--no-default-excludes", "--confdir=" + t.path("conf"), "g1", "g2"});
  ASSERT_EQ(r.status, 0) << r.err << r.out;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["guests"][1]["config_files"], 4);
  EXPECT_NE(j["guests"][1]["config_sources"][0].get<std::string>().find(t.path("pkg/g2/rpm/state")),
            std::string::npos);
  for (const char* c : k_config_paths)
    EXPECT_FALSE(same(t, std::string("guests/g1/") + c, std::string("guests/g2/") + c)) << c;
  EXPECT_TRUE(same(t, "guests/g1/usr/lib/vu-b/lib.bin", "guests/g2/usr/lib/vu-b/lib.bin"));
}

TEST(Dpkg, TheStatusReaderFindsWhatDpkgQueryFindsInARealGuest) {
  std::string why;
  std::string minbase = cached_minbase(why);
  if (minbase.empty()) GTEST_SKIP() << why;
  const std::string admin = minbase + "/var/lib/dpkg";
  const std::string query = "/usr/bin/dpkg-query";
  if (::access(query.c_str(), X_OK) != 0) GTEST_SKIP() << "no dpkg-query";
  auto q = run_program({query, "--admindir=" + admin, "-W", "-f", "${Conffiles}\n"});
  ASSERT_EQ(q.status, 0) << q.err;
  std::set<std::string> expected; // " /path hash [flag]" lines
  std::istringstream lines(q.out);
  for (std::string line; std::getline(lines, line);) {
    while (!line.empty() && line.front() == ' ') line.erase(0, 1);
    if (line.empty()) continue;
    auto sp = line.rfind(' ');
    if (line.substr(sp + 1) == "obsolete" || line.substr(sp + 1) == "remove-on-upgrade")
      sp = line.rfind(' ', sp - 1);
    expected.insert(line.substr(0, sp));
  }
  ASSERT_GT(expected.size(), 30u);

  auto fd = vu::open_directory(admin);
  ASSERT_TRUE(fd.ok());
  auto text = vu::read_file_beneath(fd->get(), "status", 64 << 20);
  ASSERT_TRUE(text.ok()) << text.error().message();
  vu::PackageDbSource src;
  std::vector<std::string> paths;
  auto st = vu::parse_dpkg_status(*text, admin + "/status", {}, src, paths);
  ASSERT_TRUE(st.ok()) << st.error().message();
  EXPECT_EQ(std::set<std::string>(paths.begin(), paths.end()), expected);
  auto listed = run_program({query, "--admindir=" + admin, "-W", "-f", ".\n"});
  EXPECT_EQ(src.packages,
            static_cast<uint64_t>(std::count(listed.out.begin(), listed.out.end(), '\n')));
}

TEST(PackageLibraries, VunifyAndVhashifyLinkNeitherLibrpmNorLibaptPkg) {
  // librpm is loaded when a guest has an rpm database (the Rpm tests above
  // read real ones); libapt-pkg is not used. Linked, the two cost every run
  // 3.6 MB of memory and about 1 ms (ARCHITECTURE.md, "Package libraries").
  if (::access("/usr/bin/readelf", X_OK) != 0) GTEST_SKIP() << "no readelf (binutils)";
  for (const char* bin : {VUNIFY_BIN, VHASHIFY_BIN}) {
    auto r = run_program({"/usr/bin/readelf", "-d", bin});
    ASSERT_EQ(r.status, 0) << r.err;
    for (const char* lib : {"librpm", "libapt-pkg"})
      EXPECT_EQ(r.out.find(lib), std::string::npos) << lib << " is a NEEDED library of " << bin;
  }
}

TEST(Dpkg, ExternalAdminDirectoryFromTheDefaultsBase) {
  std::string why;
  std::string minbase = cached_minbase(why);
  if (minbase.empty()) GTEST_SKIP() << why;
  TempTree t;
  t.build("d conf/.defaults/apps\nd conf/g1\nd conf/g2\nd guests\nd pkg/g2/dpkg\n");
  ASSERT_EQ(::symlink(t.path("guests").c_str(), t.path("conf/.defaults/vdirbase").c_str()), 0);
  t.mkdirs("conf/.defaults/apps/pkgmgmt");
  ASSERT_EQ(::symlink(t.path("pkg").c_str(), t.path("conf/.defaults/apps/pkgmgmt/base").c_str()),
            0);
  ASSERT_EQ(sh("cp -a " + minbase + " " + t.path("guests/g1")), 0);
  ASSERT_EQ(sh("cp -a " + minbase + " " + t.path("guests/g2")), 0);
  // g2 keeps an empty decoy inside; its real database is external.
  ASSERT_EQ(sh("mv " + t.path("guests/g2/var/lib/dpkg") + " " + t.path("pkg/g2/dpkg/state") +
               " && mkdir " + t.path("guests/g2/var/lib/dpkg")),
            0);
  // g1 says: internal, even though the defaults name an external base.
  t.mkdirs("conf/g1/apps/pkgmgmt");
  t.file("conf/g1/apps/pkgmgmt/internal", "");
  auto r =
      run_vunify({"--json", "--no-default-excludes", "--confdir=" + t.path("conf"), "g1", "g2"});
  ASSERT_EQ(r.status, 0) << r.err << r.out;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_GT(j["guests"][0]["config_files"].get<int>(), 30);
  EXPECT_EQ(j["guests"][1]["config_files"], j["guests"][0]["config_files"]);
  EXPECT_NE(
      j["guests"][1]["config_sources"][0].get<std::string>().find(t.path("pkg/g2/dpkg/state")),
      std::string::npos);
  for (const char* c : {"etc/debian_version", "etc/adduser.conf", "etc/login.defs"}) {
    if (!fs::exists(t.path(std::string("guests/g1/") + c))) continue;
    EXPECT_FALSE(same(t, std::string("guests/g1/") + c, std::string("guests/g2/") + c)) << c;
  }
  EXPECT_TRUE(same(t, "guests/g1/usr/bin/dpkg", "guests/g2/usr/bin/dpkg"));
}

namespace {

// Three small guests with identical /usr files under a configuration base;
// guest c gets a hostile package database.
class HostileDb : public ::testing::Test {
protected:
  void SetUp() override {
    t.build("d conf/.defaults/apps/vunify\nd conf/a\nd conf/b\nd conf/c/apps/vunify\n");
    ASSERT_EQ(::symlink(t.path("guests").c_str(), t.path("conf/.defaults/vdirbase").c_str()), 0);
    for (const char* g : {"a", "b", "c"}) {
      std::string p = std::string("guests/") + g;
      t.file(p + "/usr/share/data", random_bytes(8000, 1));
      t.file(p + "/usr/bin/prog", random_bytes(9000, 2), 0755);
      t.file(p + "/var/lib/dpkg/status", "Package: x\nStatus: install ok installed\n\n");
    }
    // What a guest would like the host to read instead of its own database:
    // a status that lists /usr/share/data (had it been read, that file would
    // have stayed private), and a real-looking directory.
    t.file("outside/status", "Package: y\nStatus: install ok installed\nConffiles:\n"
                             " /usr/share/data 0123456789abcdef\n\n");
    t.file("outside/dpkg/status", "Package: y\nStatus: install ok installed\n\n");
  }
  ProgramResult run(std::vector<std::string> extra = {}) {
    std::vector<std::string> args{"--json", "--confdir=" + t.path("conf"), "--all"};
    args.insert(args.end(), extra.begin(), extra.end());
    return run_vunify(args);
  }
  // c was left out with a pkgmgmt error; a and b were unified.
  void expect_c_rejected(const ProgramResult& r, const std::string& why) {
    EXPECT_EQ(r.status, 1) << r.err;
    EXPECT_NE(r.err.find("guest 'c' left out"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find(why), std::string::npos) << r.err;
    auto j = nlohmann::json::parse(r.out);
    EXPECT_EQ(j["errors"]["pkgmgmt"]["count"], 1);
    EXPECT_EQ(j["guests"].size(), 2u);
    EXPECT_TRUE(same(t, "guests/a/usr/share/data", "guests/b/usr/share/data"));
    EXPECT_FALSE(same(t, "guests/a/usr/share/data", "guests/c/usr/share/data"));
  }
  TempTree t;
};

} // namespace

TEST_F(HostileDb, StatusSymlinkOutOfTheGuest) {
  ::unlink(t.path("guests/c/var/lib/dpkg/status").c_str());
  ASSERT_EQ(
      ::symlink(t.path("outside/status").c_str(), t.path("guests/c/var/lib/dpkg/status").c_str()),
      0);
  expect_c_rejected(run(), "status");
}

TEST_F(HostileDb, AdminDirectorySymlinkIsResolvedInsideTheGuestOnly) {
  // The database directory is resolved as the guest would resolve it: an
  // absolute or climbing link leads to the guest's own paths, never the
  // host's. outside/status (listing /usr/share/data) is never read: had it
  // been, c's data would have stayed private.
  for (const std::string& target : {t.path("outside"), std::string("../../../../outside")}) {
    ASSERT_EQ(sh("rm -rf " + t.path("guests/c/var/lib/dpkg")), 0);
    ASSERT_EQ(::symlink(target.c_str(), t.path("guests/c/var/lib/dpkg").c_str()), 0);
    auto r = run();
    EXPECT_EQ(r.status, 0) << target << ": " << r.err;
    EXPECT_TRUE(same(t, "guests/a/usr/share/data", "guests/c/usr/share/data")) << target;
    auto j = json_of(r);
    EXPECT_EQ(j["guests"][2]["config_files"], 0) << target;
    // Give c private files again for the next case.
    ASSERT_EQ(sh("chattr -R -i " + t.path("guests/c/usr") + " && rm -rf " + t.path("guests/c/usr") +
                 " && cp -a " + t.path("guests/b/usr") + " " + t.path("guests/c/usr") +
                 " && chattr -R -i " + t.path("guests/c/usr")),
              0);
  }
  // Inside the guest, a link to its real database is followed.
  ASSERT_EQ(sh("rm -f " + t.path("guests/c/var/lib/dpkg")), 0);
  t.file("guests/c/srv/dpkg/status", "Package: y\nStatus: install ok installed\nConffiles:\n"
                                     " /usr/share/data 0123456789abcdef\n\n");
  ASSERT_EQ(::symlink("/srv/dpkg", t.path("guests/c/var/lib/dpkg").c_str()), 0);
  auto r = run();
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_FALSE(same(t, "guests/a/usr/share/data", "guests/c/usr/share/data"));
  EXPECT_EQ(json_of(r)["guests"][2]["config_files"], 1);
}

TEST_F(HostileDb, TruncatedGarbageAndHugeStatusFiles) {
  t.file("guests/c/var/lib/dpkg/status", "Package: x\nStatus: install ok inst");
  expect_c_rejected(run(), "truncated");
  t.file("guests/c/var/lib/dpkg/status", random_bytes(5000, 7) + "\n\n");
  expect_c_rejected(run(), "dpkg status");
  t.file("guests/c/var/lib/dpkg/status", "no fields at all, just text\n\n");
  expect_c_rejected(run(), "dpkg status");
  int fd = ::open(t.path("guests/c/var/lib/dpkg/status").c_str(), O_WRONLY | O_TRUNC);
  ASSERT_EQ(::ftruncate(fd, 400ll << 20), 0);
  ::close(fd);
  expect_c_rejected(run(), "larger than");
}

TEST_F(HostileDb, RpmDatabasesThatAreNotOne) {
  ASSERT_EQ(sh("rm -rf " + t.path("guests/c/var/lib/dpkg")), 0);
  t.file("guests/c/var/lib/rpm/rpmdb.sqlite", random_bytes(100000, 3));
  expect_c_rejected(run(), "not a valid sqlite database");
  ASSERT_EQ(sh("rm -rf " + t.path("guests/c/var/lib/rpm")), 0);
  t.file("guests/c/var/lib/rpm/Packages", random_bytes(100000, 4));
  expect_c_rejected(run(), "not a valid bdb_ro database");
  ASSERT_EQ(sh("rm -rf " + t.path("guests/c/var/lib/rpm")), 0);
  t.file("guests/c/var/lib/rpm/Packages.db", random_bytes(100000, 5));
  expect_c_rejected(run(), "not a valid ndb database");
  // Right magic, garbage after it: librpm itself must refuse it cleanly.
  ASSERT_EQ(sh("rm -rf " + t.path("guests/c/var/lib/rpm")), 0);
  t.file("guests/c/var/lib/rpm/rpmdb.sqlite",
         std::string("SQLite format 3", 16) + random_bytes(100000, 6));
  expect_c_rejected(run(), "rpm database");
}

TEST_F(HostileDb, RpmDatabaseSymlinkedOutOfTheGuest) {
  std::string why;
  auto rpms = cached_test_rpms(why);
  if (rpms.empty()) GTEST_SKIP() << why;
  ASSERT_TRUE(install_rpms(t.path("outside/root"), rpms));
  ASSERT_EQ(sh("rm -rf " + t.path("guests/c/var/lib/dpkg")), 0);
  t.mkdirs("guests/c/var/lib/rpm");
  ASSERT_EQ(::symlink(t.path("outside/root/var/lib/rpm/rpmdb.sqlite").c_str(),
                      t.path("guests/c/var/lib/rpm/rpmdb.sqlite").c_str()),
            0);
  expect_c_rejected(run(), "rpmdb.sqlite");
}

TEST_F(HostileDb, OptOutsUnifyTheGuestAnyway) {
  t.file("guests/c/var/lib/dpkg/status", "garbage\n\n");
  auto no_pkgmgmt = run({"--no-pkgmgmt"});
  EXPECT_EQ(no_pkgmgmt.status, 0) << no_pkgmgmt.err;
  EXPECT_TRUE(same(t, "guests/a/usr/share/data", "guests/c/usr/share/data"));
  auto j = nlohmann::json::parse(no_pkgmgmt.out);
  EXPECT_EQ(j["guests"][2]["pkgmgmt"], "ignored");

  // util-vserver's per-guest and default switches.
  t.file("guests/c/usr/share/other", random_bytes(7000, 9));
  t.file("guests/a/usr/share/other", random_bytes(7000, 9));
  t.file("conf/c/apps/vunify/pkgmgmt-ignore", "");
  EXPECT_EQ(run().status, 0);
  EXPECT_TRUE(same(t, "guests/a/usr/share/other", "guests/c/usr/share/other"));
  ::unlink(t.path("conf/c/apps/vunify/pkgmgmt-ignore").c_str());
  t.file("conf/.defaults/apps/vunify/pkgmgmt-ignore", "");
  t.file("guests/c/usr/share/third", random_bytes(7000, 10));
  t.file("guests/a/usr/share/third", random_bytes(7000, 10));
  EXPECT_EQ(run().status, 0) << "the defaults switch the package manager off for all";
  EXPECT_TRUE(same(t, "guests/a/usr/share/third", "guests/c/usr/share/third"));
  t.file("conf/c/apps/vunify/pkgmgmt-force", "");
  t.file("guests/c/usr/share/fourth", random_bytes(7000, 11));
  t.file("guests/a/usr/share/fourth", random_bytes(7000, 11));
  auto forced = run();
  EXPECT_EQ(forced.status, 1) << "pkgmgmt-force on c overrides the defaults";
  EXPECT_FALSE(same(t, "guests/a/usr/share/fourth", "guests/c/usr/share/fourth"));
}
