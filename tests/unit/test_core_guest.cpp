#include "core/guest.h"
#include "tests/support/temp_tree.h"

#include <gtest/gtest.h>

#include <unistd.h>

using namespace vu;
using vu::test::TempTree;

namespace {
// conf/ is a configuration base, guests/ its vdirbase.
void make_base(TempTree& t) {
  t.build("d conf/.defaults\nd guests/web1/usr\nd guests/db1\nd elsewhere/mail1\n"
          "d conf/web1\nd conf/db1\nd conf/mail1/apps/vunify\nd conf/.hidden\n");
  ASSERT_EQ(::symlink(t.path("guests").c_str(), t.path("conf/.defaults/vdirbase").c_str()), 0);
  ASSERT_EQ(::symlink(t.path("elsewhere/mail1").c_str(), t.path("conf/mail1/vdir").c_str()), 0);
  ASSERT_EQ(
      ::symlink(t.path("conf/web1").c_str(), t.path("conf/mail1/apps/vunify/refserver.1").c_str()),
      0);
  t.file("conf/mail1/apps/vunify/refserver.2", "# reference by name\ndb1\n");
}
} // namespace

TEST(ConfigBase, ResolvesNamesVdirAndPaths) {
  TempTree t;
  make_base(t);
  ConfigBase base(t.path("conf"));
  EXPECT_EQ(base.vdirbase(), t.path("guests"));
  auto web = base.resolve("web1");
  ASSERT_TRUE(web.ok()) << web.error().message();
  EXPECT_EQ(web->root, t.path("guests/web1"));
  EXPECT_EQ(web->confdir, t.path("conf/web1"));
  auto mail = base.resolve("mail1");
  ASSERT_TRUE(mail.ok());
  EXPECT_EQ(mail->root, t.path("elsewhere/mail1"));
  auto by_conf_path = base.resolve(t.path("conf/mail1"));
  ASSERT_TRUE(by_conf_path.ok());
  EXPECT_EQ(by_conf_path->root, t.path("elsewhere/mail1"));
  auto bare = base.resolve(t.path("guests/db1"));
  ASSERT_TRUE(bare.ok());
  EXPECT_EQ(bare->root, t.path("guests/db1"));
  EXPECT_TRUE(bare->confdir.empty());
  EXPECT_EQ(base.resolve("nosuch").code(), ENOENT);
  EXPECT_FALSE(base.resolve("..").ok());
  EXPECT_FALSE(base.resolve(t.path("nosuch/dir")).ok());
}

TEST(ConfigBase, AllSkipsDotEntriesAndSorts) {
  TempTree t;
  make_base(t);
  ConfigBase base(t.path("conf"));
  auto all = base.all();
  ASSERT_TRUE(all.ok()) << all.error().message();
  ASSERT_EQ(all->guests.size(), 3u);
  EXPECT_EQ(all->guests[0].name, "db1");
  EXPECT_EQ(all->guests[1].name, "mail1");
  EXPECT_EQ(all->guests[2].name, "web1");
  EXPECT_TRUE(all->skipped.empty());
}

TEST(ConfigBase, AllSkipsAndNamesGuestsWhoseRootIsMissingOrTheHost) {
  TempTree t;
  make_base(t);
  t.mkdirs("conf/gone");
  ASSERT_EQ(::symlink(t.path("nowhere").c_str(), t.path("conf/gone/vdir").c_str()), 0);
  t.mkdirs("conf/host");
  ASSERT_EQ(::symlink("/", t.path("conf/host/vdir").c_str()), 0);
  auto all = ConfigBase(t.path("conf")).all();
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(all->guests.size(), 3u);
  ASSERT_EQ(all->skipped.size(), 2u);
  EXPECT_EQ(all->skipped[0].name, "gone");
  EXPECT_EQ(all->skipped[1].name, "host");
  EXPECT_NE(all->skipped[1].reason.find("is / (the host)"), std::string::npos);
  EXPECT_FALSE(ConfigBase(t.path("conf")).resolve("host").ok());
  EXPECT_FALSE(ConfigBase(t.path("conf")).resolve("/").ok());
  EXPECT_FALSE(ConfigBase(t.path("conf")).resolve(t.path("conf/host/vdir") + "/").ok());
}

TEST(GuestRoots, TheHostNestedAndRepeatedRootsAreRefused) {
  auto g = [](const char* name, const char* root) { return Guest{name, root, {}}; };
  EXPECT_TRUE(check_guest_roots({g("a", "/vs/a"), g("b", "/vs/b"), g("ab", "/vs/ab")}).ok());
  EXPECT_FALSE(check_guest_roots({g("a", "/vs/a"), g("host", "/")}).ok());
  EXPECT_FALSE(check_guest_roots({g("a", "/vs/a"), g("a2", "/vs/a")}).ok());
  auto nested = check_guest_roots({g("a", "/vs/a"), g("usr", "/vs/a/usr")});
  ASSERT_FALSE(nested.ok());
  EXPECT_NE(nested.error().message().find("/vs/a/usr ('usr') lies inside guest root /vs/a"),
            std::string::npos)
      << nested.error().message();
  EXPECT_FALSE(check_guest_roots({g("usr", "/vs/a/usr"), g("a", "/vs/a")}).ok());
  EXPECT_TRUE(path_within("/vs/a/b", "/vs/a"));
  EXPECT_FALSE(path_within("/vs/ab", "/vs/a"));
}

TEST(ConfigBase, RefserversBySymlinkAndByName) {
  TempTree t;
  make_base(t);
  ConfigBase base(t.path("conf"));
  auto refs = base.refservers(*base.resolve("mail1"));
  ASSERT_TRUE(refs.ok()) << refs.error().message();
  ASSERT_EQ(refs->size(), 2u);
  EXPECT_EQ((*refs)[0].root, t.path("guests/web1"));
  EXPECT_EQ((*refs)[1].root, t.path("guests/db1"));
  EXPECT_TRUE(base.refservers(*base.resolve("web1"))->empty());
}

TEST(ConfigBase, EnvironmentOverride) {
  TempTree t;
  make_base(t);
  ::setenv("VSERVER_CONFDIR", t.path("conf").c_str(), 1);
  ConfigBase base;
  ::unsetenv("VSERVER_CONFDIR");
  EXPECT_EQ(base.dir(), t.path("conf"));
}

TEST(ConfigValue, FirstNonCommentLine) {
  TempTree t;
  t.file("v", "# comment\n\n  /srv/x  \nsecond\n");
  auto v = read_config_value(t.path("v"));
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(v.value().value(), "/srv/x");
  EXPECT_FALSE(read_config_value(t.path("missing")).value().has_value());
}
