#include "kernel/attr.h"
#include "kernel/bpf_lsm.h"
#include "tests/support/temp_tree.h"

#include <gtest/gtest.h>

#include <fcntl.h>
#include <linux/fs.h>
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

// The bpf back end's marks are plain inode flags: they can be set and read
// here, where no BPF LSM program can run (the kernel enforces them in the
// VM tests, tests/vm).
TEST(Attr, BpfMarksAreThreeInodeFlags) {
  TempTree t;
  t.file("f", "content of a shared file");
  t.mkdirs("base/guest");
  auto be = make_bpf_attr_backend();
  EXPECT_TRUE(be->names_while_protected());
  auto d = open_directory(t.root());
  auto st = stat_at(d->get(), "f");
  EXPECT_EQ(render_attrs(*be->get(d->get(), "f", *st)), "-----ui--");
  // util-vserver's --iunlink is immutable + iunlink: the mark alone.
  ASSERT_TRUE(be->set(d->get(), "f", *st, k_attr_immutable | k_attr_iunlink, 0).ok());
  EXPECT_EQ(render_attrs(*be->get(d->get(), "f", *st)), "-----UI--");
  // lsattr's S, A and d; never i (FS_IMMUTABLE_FL), so link and rename work.
  EXPECT_EQ(vu::test::inode_flags_of(t.path("f")) & (k_bpf_mark | FS_IMMUTABLE_FL), k_bpf_mark);
  EXPECT_TRUE(stat_at(d->get(), "f")->nodump) << "statx shows the mark";
  // Names change freely (no FS_IMMUTABLE_FL); the content is the program's
  // to protect (not loaded here).
  EXPECT_EQ(::link(t.path("f").c_str(), t.path("g").c_str()), 0);
  EXPECT_EQ(::rename(t.path("g").c_str(), t.path("h").c_str()), 0);
  EXPECT_EQ(::unlink(t.path("h").c_str()), 0);
  auto fd = open_beneath(d->get(), "f", O_RDONLY);
  EXPECT_TRUE(*be->is_protected(fd->get()));
  ASSERT_TRUE(be->set(d->get(), "f", *st, 0, k_attr_iunlink).ok());
  EXPECT_FALSE(*be->is_protected(fd->get()));
  EXPECT_EQ(render_attrs(*be->get(d->get(), "f", *st)), "-----ui--");
  // immutable alone is FS_IMMUTABLE_FL, as on mainline.
  ASSERT_TRUE(be->set(d->get(), "f", *st, k_attr_immutable, 0).ok());
  EXPECT_EQ(render_attrs(*be->get(d->get(), "f", *st)), "-----uI--");
  EXPECT_TRUE(vu::test::is_immutable_path(t.path("f")));
  ASSERT_TRUE(be->set(d->get(), "f", *st, 0, k_attr_immutable).ok());
  // A directory's mark is the barrier, with mode 000 for kernels without
  // the program.
  auto bst = stat_at(d->get(), "base");
  ASSERT_TRUE(be->set(d->get(), "base", *bst, k_attr_barrier, 0).ok());
  EXPECT_EQ(stat_at(d->get(), "base")->mode & 07777, 0u);
  EXPECT_EQ(render_attrs(*be->get(d->get(), "base", *bst)), "----B-i--");
  ASSERT_TRUE(be->set(d->get(), "base", *bst, 0, k_attr_barrier).ok());
  EXPECT_EQ(stat_at(d->get(), "base")->mode & 07777, 0755u);
  EXPECT_EQ(vu::test::inode_flags_of(t.path("base")) & k_bpf_mark, 0u);
}

TEST(Attr, BpfProtectReplacesAMainlineImmutableFlag) {
  // A shared inode a mainline run froze becomes a marked one.
  TempTree t;
  t.file("f", "content of a shared file");
  auto fd = open_beneath(open_directory(t.root())->get(), "f", O_RDONLY);
  ASSERT_TRUE(set_immutable(fd->get(), Protection::on).ok());
  auto be = make_bpf_attr_backend();
  ASSERT_TRUE(be->protect(fd->get(), -1, "", Protection::on).ok());
  EXPECT_TRUE(*be->is_protected(fd->get()));
  EXPECT_FALSE(vu::test::is_immutable_path(t.path("f")));
  ASSERT_TRUE(be->protect(fd->get(), -1, "", Protection::off).ok());
  EXPECT_FALSE(*be->is_protected(fd->get()));
  EXPECT_EQ(vu::test::inode_flags_of(t.path("f")) & (k_bpf_mark | FS_IMMUTABLE_FL), 0u);
}

TEST(Attr, BpfProgramIsNotLoadedHere) {
  // This machine's kernel is locked down: no pinned program, and asking
  // for the bpf back end by name still works (marks set, not enforced).
  ASSERT_FALSE(bpf_lsm_loaded());
  EXPECT_FALSE(bpf_lsm_state().why_not.empty());
  std::string notice;
  auto be = select_attr_backend("bpf", &notice);
  EXPECT_STREQ(be->name(), "bpf");
  EXPECT_NE(notice.find("not enforced"), std::string::npos) << notice;
  EXPECT_STREQ(select_attr_backend("auto", nullptr)->name(), "mainline");
  notice.clear();
  EXPECT_STREQ(select_attr_backend("linux-vserver", &notice)->name(), "mainline");
  EXPECT_FALSE(notice.empty());
}
