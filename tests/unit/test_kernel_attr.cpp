#include "kernel/attr.h"
#include "tests/support/temp_tree.h"

#include <gtest/gtest.h>

#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

using namespace vu;
using vu::test::TempTree;

TEST(VServerAbi, CommandEncodingsAndStructLayout) {
  // Documented values (util-vserver, kernel include/linux/vserver/*.h).
  EXPECT_EQ(vserver_abi::k_get_version, 0x00000000u);
  EXPECT_EQ(vserver_abi::k_get_iattr, 0x26010001u);
  EXPECT_EQ(vserver_abi::k_set_iattr, 0x26020001u);
  EXPECT_EQ(vserver_abi::vc_cmd(63, 255, 0xFFF), 0x3FFF0FFFu);
  EXPECT_EQ(vserver_abi::vc_cmd(64, 256, 0x1000), 0u) << "fields are masked";
  EXPECT_EQ(k_attr_barrier, 0x10000u);
  EXPECT_EQ(k_attr_iunlink, 0x20000u);
  EXPECT_EQ(k_attr_immutable, 0x40000u);
  EXPECT_EQ(k_attr_admin | k_attr_watch | k_attr_hide, 0x7u);
  EXPECT_EQ(k_attr_xid, 0x01000000u);
#if defined(__x86_64__)
  EXPECT_EQ(vserver_abi::syscall_number(), 236);
  EXPECT_EQ(sizeof(vserver_abi::IattrV1), 24u);
#endif
}

TEST(VServerAbi, MainlineIsDetectedHere) {
  // This machine runs a mainline kernel: the probe must not pick VServer.
  EXPECT_STREQ(detect_attr_backend()->name(), "mainline");
}

TEST(Attr, RenderColumns) {
  EXPECT_EQ(render_attrs({}), "---------");
  EXPECT_EQ(render_attrs({k_attr_immutable, k_attr_immutable}), "------I--");
  EXPECT_EQ(render_attrs({k_attr_barrier | k_attr_iunlink | k_attr_immutable,
                          k_attr_barrier | k_attr_iunlink | k_attr_immutable | k_attr_admin}),
            "a---BUI--");
  EXPECT_EQ(render_attrs({0, 0x010F000F}), "awhmbuicx");
}

namespace {

void round_trip(const std::string& dir) {
  auto be = make_mainline_attr_backend();
  auto d = open_directory(dir);
  ASSERT_TRUE(d.ok());
  std::string path = dir + "/f";
  ASSERT_EQ(vu::test::sh("echo content-of-file > " + path + " && mkdir " + dir + "/sub"), 0);
  auto st = stat_at(d->get(), "f");
  auto s = be->get(d->get(), "f", *st);
  ASSERT_TRUE(s.ok()) << s.error().message();
  if (!(s->supported & k_attr_immutable)) GTEST_SKIP() << "no inode flags on " << dir;
  EXPECT_EQ(render_attrs(*s), "------i--");
  ASSERT_TRUE(be->set(d->get(), "f", *st, k_attr_immutable, 0).ok());
  EXPECT_EQ(render_attrs(*be->get(d->get(), "f", *st)), "------I--");
  EXPECT_NE(vu::test::sh("echo more >> " + path + " 2>/dev/null"), 0);
  ASSERT_TRUE(be->set(d->get(), "f", *st, 0, k_attr_immutable).ok());
  EXPECT_EQ(vu::test::sh("echo more >> " + path), 0);
  auto dst = stat_at(d->get(), "sub");
  ASSERT_TRUE(be->set(d->get(), "sub", *dst, k_attr_barrier, 0).ok());
  dst = stat_at(d->get(), "sub");
  EXPECT_EQ(dst->mode & 07777, 0u);
  EXPECT_EQ(render_attrs(*be->get(d->get(), "sub", *dst)), "----B-i--");
  ASSERT_TRUE(be->set(d->get(), "sub", *dst, 0, k_attr_barrier).ok());
  EXPECT_EQ(stat_at(d->get(), "sub")->mode & 07777, 0755u);
}

} // namespace

TEST(Attr, MainlineRoundTripOnExt4) {
  TempTree t;
  round_trip(t.root());
}

TEST(Attr, MainlineRoundTripOnTmpfs) {
  TempTree t;
  t.mkdirs("mnt");
  vu::test::ScopedMount mnt("tmpfs", t.path("mnt"), "size=4m");
  if (!mnt.ok()) GTEST_SKIP() << "cannot mount tmpfs";
  round_trip(t.path("mnt"));
  vu::test::sh("chattr -R -f -i " + t.path("mnt"));
}

TEST(Attr, MainlineRoundTripOnLoopXfsAndBtrfs) {
  int ran = 0;
  for (const char* fs : {"xfs", "btrfs"}) {
    if (vu::test::sh(std::string("command -v mkfs.") + fs + " >/dev/null") != 0) continue;
    TempTree t;
    t.mkdirs("mnt");
    std::string img = t.path("img");
    // xfs needs at least 300 MiB; the image is sparse.
    ASSERT_EQ(vu::test::sh("truncate -s 320M " + img + " && mkfs." + fs + " -q " + img +
                           " >/dev/null 2>&1"),
              0)
        << fs;
    auto mnt = vu::test::ScopedMount::loop_image(img, t.path("mnt"));
    if (!mnt.ok()) continue; // no loop devices here
    round_trip(t.path("mnt"));
    vu::test::sh("chattr -R -f -i " + t.path("mnt"));
    mnt.unmount(); // autoclear frees the loop device
    ++ran;
  }
  if (ran == 0) GTEST_SKIP() << "no mkfs.xfs/mkfs.btrfs or no loop devices";
}

TEST(Attr, SymlinksAndSpecialFilesAreNeverOpened) {
  TempTree t;
  t.build("f outside/target precious-content-here\nd g\np g/fifo\n");
  ASSERT_EQ(::symlink(t.path("outside/target").c_str(), t.path("g/link").c_str()), 0);
  auto be = make_mainline_attr_backend();
  auto d = open_directory(t.path("g"));
  for (const char* n : {"link", "fifo"}) {
    auto st = stat_at(d->get(), n);
    auto s = be->get(d->get(), n, *st); // a FIFO open would block
    ASSERT_TRUE(s.ok());
    EXPECT_EQ(s->supported, 0u) << n;
    auto r = be->set(d->get(), n, *st, k_attr_immutable, 0);
    EXPECT_EQ(r.code(), EOPNOTSUPP) << n;
  }
  EXPECT_FALSE(vu::test::is_immutable_path(t.path("outside/target")));
}

TEST(Attr, UnsupportedFlagsChangeNothing) {
  TempTree t;
  t.file("f", "some file content");
  auto be = make_mainline_attr_backend();
  auto d = open_directory(t.root());
  auto st = stat_at(d->get(), "f");
  auto r = be->set(d->get(), "f", *st, k_attr_immutable | k_attr_iunlink, 0);
  ASSERT_EQ(r.code(), EOPNOTSUPP);
  EXPECT_NE(r.error().message().find("iunlink"), std::string::npos);
  EXPECT_FALSE(vu::test::is_immutable_path(t.path("f")));
}
