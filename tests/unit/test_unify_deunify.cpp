#include "tests/support/temp_tree.h"
#include "unify/deunify.h"
#include "unify/unify.h"

#include <gtest/gtest.h>

#include <fcntl.h>
#include <linux/capability.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

using namespace vu;
using vu::test::inode_of;
using vu::test::is_immutable_path;
using vu::test::TempTree;

namespace {

class Deunify : public ::testing::Test {
protected:
  void unify(const std::vector<std::string>& names) {
    std::vector<UnifyGuest> gs;
    for (const auto& n : names) {
      UnifyGuest u;
      u.guest = Guest{n, t.path(n), {}};
      gs.push_back(std::move(u));
    }
    auto r = run_unify(gs, {});
    ASSERT_TRUE(r.ok());
    ASSERT_FALSE(r->failed());
  }
  Report deunify(const std::string& name, std::vector<std::string> paths = {},
                 const DeunifyOptions& o = {}) {
    UnifyGuest u;
    u.guest = Guest{name, t.path(name), {}};
    auto r = run_deunify(u, paths, o);
    EXPECT_TRUE(r.ok());
    return r.ok() ? *r : Report{};
  }
  TempTree t;
};

} // namespace

TEST_F(Deunify, PrivateCopiesKeepContentMetadataHolesAndInternalLinks) {
  for (const char* g : {"g1", "g2", "g3"}) {
    std::string p = std::string(g) + "/usr/";
    t.file(p + "bin/tool", vu::test::random_bytes(50000, 1), 0750);
    ASSERT_EQ(vu::test::sh("truncate -s 2M " + t.path(p + "sparse") + " && printf end >> " +
                           t.path(p + "sparse") + " && touch -d @1577836800 " +
                           t.path(p + "sparse") + " && chown 12:34 " + t.path(p + "bin/tool")),
              0);
    struct vfs_cap_data cap {};
    cap.magic_etc = VFS_CAP_REVISION_2 | VFS_CAP_FLAGS_EFFECTIVE;
    cap.data[0].permitted = 1u << CAP_NET_RAW;
    ASSERT_EQ(
        ::setxattr(t.path(p + "bin/tool").c_str(), "security.capability", &cap, sizeof cap, 0), 0);
    ASSERT_EQ(::setxattr(t.path(p + "bin/tool").c_str(), "user.tag", "v", 1, 0), 0);
  }
  ASSERT_EQ(::link(t.path("g2/usr/bin/tool").c_str(), t.path("g2/usr/bin/tool-alias").c_str()), 0);
  ASSERT_EQ(::link(t.path("g1/usr/bin/tool").c_str(), t.path("g1/usr/bin/tool-alias").c_str()), 0);
  ASSERT_EQ(::link(t.path("g3/usr/bin/tool").c_str(), t.path("g3/usr/bin/tool-alias").c_str()), 0);
  unify({"g1", "g2", "g3"});
  auto shared = inode_of(t.path("g1/usr/bin/tool"));
  ASSERT_EQ(inode_of(t.path("g2/usr/bin/tool")), shared);
  auto before = vu::test::snapshot(t.path("g2"));

  Report r = deunify("g2");
  EXPECT_FALSE(r.failed());
  EXPECT_EQ(r.files_deunified, 3u); // tool, tool-alias, sparse
  EXPECT_NE(inode_of(t.path("g2/usr/bin/tool")), shared);
  EXPECT_EQ(inode_of(t.path("g2/usr/bin/tool")), inode_of(t.path("g2/usr/bin/tool-alias")))
      << "the guest's own hard link stays one inode";
  EXPECT_FALSE(is_immutable_path(t.path("g2/usr/bin/tool")));
  EXPECT_EQ(vu::test::snapshot(t.path("g2")), before)
      << "content, mode, owner, xattrs incl. capability";
  struct stat a {
  }, b{};
  ::stat(t.path("g1/usr/bin/tool").c_str(), &a);
  ::stat(t.path("g2/usr/bin/tool").c_str(), &b);
  EXPECT_EQ(a.st_mtim.tv_sec, b.st_mtim.tv_sec);
  EXPECT_EQ(a.st_mtim.tv_nsec, b.st_mtim.tv_nsec);
  ::stat(t.path("g2/usr/sparse").c_str(), &b);
  EXPECT_LT(b.st_blocks * 512, 64 * 1024) << "holes are kept";
  // The others still share, protected.
  EXPECT_EQ(inode_of(t.path("g3/usr/bin/tool")), shared);
  EXPECT_TRUE(is_immutable_path(t.path("g1/usr/bin/tool")));
  EXPECT_TRUE(is_immutable_path(t.path("g3/usr/sparse")));

  // Once g3 leaves too, g1's inode has no other link and loses the flag.
  deunify("g3");
  EXPECT_FALSE(is_immutable_path(t.path("g1/usr/sparse")));
  // Known limit: an inode left with several links keeps the flag, even when
  // (as here) all of them are g1's own names; de-unifying g2/g3 cannot see
  // where the other links are. vunify -R g1 gives g1 a private copy.
  EXPECT_TRUE(is_immutable_path(t.path("g1/usr/bin/tool")));
  EXPECT_EQ(deunify("g1").files_deunified, 2u);
  EXPECT_FALSE(is_immutable_path(t.path("g1/usr/bin/tool")));
  EXPECT_EQ(deunify("g2").files_deunified, 0u) << "nothing left to do";
}

TEST_F(Deunify, OnlyTheNamedPaths) {
  for (const char* g : {"g1", "g2"}) {
    t.file(std::string(g) + "/usr/a", vu::test::random_bytes(5000, 1));
    t.file(std::string(g) + "/usr/b", vu::test::random_bytes(5000, 2));
  }
  unify({"g1", "g2"});
  Report r = deunify("g2", {"/usr/a", "/usr/missing"});
  EXPECT_EQ(r.files_deunified, 1u);
  EXPECT_NE(inode_of(t.path("g1/usr/a")), inode_of(t.path("g2/usr/a")));
  EXPECT_EQ(inode_of(t.path("g1/usr/b")), inode_of(t.path("g2/usr/b")));
  EXPECT_EQ(vu::test::sh("echo local-change >> " + t.path("g2/usr/a")), 0);
  EXPECT_EQ(t.read("g1/usr/a"), vu::test::random_bytes(5000, 1));
}

TEST_F(Deunify, SymlinkedDirectoriesAreNotFollowed) {
  t.file("g1/usr/a", vu::test::random_bytes(5000, 1));
  t.file("g2/usr/a", vu::test::random_bytes(5000, 1));
  t.file("outside/a", vu::test::random_bytes(5000, 1));
  unify({"g1", "g2"});
  ASSERT_EQ(::symlink(t.path("outside").c_str(), t.path("g2/escape").c_str()), 0);
  auto outside = inode_of(t.path("outside/a"));
  Report r = deunify("g2", {"/escape/a"});
  EXPECT_EQ(r.files_deunified, 0u);
  EXPECT_EQ(inode_of(t.path("outside/a")), outside);
}

TEST_F(Deunify, AModeChangedWhileTheSharedInodeIsThawedIsTakenBackFromTheOthers) {
  // g1's own root makes the shared file setuid while it is thawed to give
  // g1 its copy (a lease keeps writers out, not chmod). g2 and g3, which
  // keep sharing it, must see it as it was.
  for (const char* g : {"g1", "g2", "g3"})
    t.file(std::string(g) + "/usr/bin/tool", vu::test::random_bytes(9000, 4), 0755);
  unify({"g1", "g2", "g3"});
  ASSERT_EQ(inode_of(t.path("g1/usr/bin/tool")), inode_of(t.path("g3/usr/bin/tool")));
  DeunifyOptions o;
  o.hooks.in_link_window = [&](const std::string& shared) {
    EXPECT_EQ(::chmod(shared.c_str(), 04755), 0);
  };
  Report r = deunify("g1", {}, o);
  struct stat st {};
  for (const char* g : {"g1", "g2", "g3"}) {
    ASSERT_EQ(::stat(t.path(std::string(g) + "/usr/bin/tool").c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 07777, 0755u) << g;
  }
  EXPECT_EQ(inode_of(t.path("g2/usr/bin/tool")), inode_of(t.path("g3/usr/bin/tool")));
  EXPECT_NE(inode_of(t.path("g1/usr/bin/tool")), inode_of(t.path("g2/usr/bin/tool")));
  EXPECT_TRUE(is_immutable_path(t.path("g2/usr/bin/tool")));
  EXPECT_EQ(r.failures[Failure::verify].count, 1u);
}
