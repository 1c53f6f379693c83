#include "kernel/fs.h"
#include "kernel/mapped_vector.h"
#include "tests/support/build_kind.h"
#include "tests/support/temp_tree.h"

#include <gtest/gtest.h>

#include <dirent.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <string>
#include <thread>
#include <vector>

using namespace vu;
using vu::test::TempTree;

namespace {

Result<int> half(int x) {
  if (x % 2) return make_error(EINVAL, "odd");
  return x / 2;
}

Result<int> quarter(int x) {
  VU_TRY_ASSIGN(h, half(x));
  VU_TRY_ASSIGN(q, half(h));
  return q;
}

Status check_even(int x) {
  VU_TRY(half(x));
  return {};
}

} // namespace

TEST(KernelResult, ValueAndErrorPropagate) {
  EXPECT_EQ(*quarter(8), 2);
  auto r = quarter(6);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.code(), EINVAL);
  EXPECT_EQ(r.error().message(), "odd: " + std::string(std::strerror(EINVAL)));
  EXPECT_TRUE(check_even(4).ok());
  EXPECT_EQ(check_even(3).code(), EINVAL);
}

TEST(KernelFs, StatDistinguishesTypesWithoutFollowing) {
  TempTree t;
  t.build("f a/file hello-world-content\nl a/link file\nd a/dir\n");
  auto dir = open_directory(t.path("a"));
  ASSERT_TRUE(dir.ok());
  auto f = stat_at(dir->get(), "file");
  ASSERT_TRUE(f.ok());
  EXPECT_TRUE(f->is_regular());
  EXPECT_EQ(f->size, 19u);
  EXPECT_EQ(f->nlink, 1u);
  auto l = stat_at(dir->get(), "link");
  ASSERT_TRUE(l.ok());
  EXPECT_TRUE(l->is_symlink());
  EXPECT_TRUE(stat_at(dir->get(), "dir")->is_directory());
  EXPECT_EQ(stat_at(dir->get(), "missing").code(), ENOENT);
  auto self = stat_fd(dir->get());
  ASSERT_TRUE(self.ok());
  EXPECT_TRUE(self->is_directory());
  EXPECT_TRUE(f->same_version(*stat_at(dir->get(), "file")));
}

TEST(KernelFs, OpenBeneathRefusesSymlinksAndEscapes) {
  TempTree t;
  t.build("f outside/secret topsecret\nd g/usr\nf g/usr/ok fine-file\n"
          "l g/evil ../outside\nl g/usr/abs /etc\nl g/filelink usr/ok\n");
  auto root = open_directory(t.path("g"));
  ASSERT_TRUE(root.ok());
  EXPECT_TRUE(open_beneath(root->get(), "usr/ok", O_RDONLY).ok());
  EXPECT_EQ(open_beneath(root->get(), "evil/secret", O_RDONLY).code(), ELOOP);
  EXPECT_EQ(open_beneath(root->get(), "usr/abs/passwd", O_RDONLY).code(), ELOOP);
  EXPECT_EQ(open_beneath(root->get(), "filelink", O_RDONLY).code(), ELOOP);
  EXPECT_EQ(open_beneath(root->get(), "../outside/secret", O_RDONLY).code(), EXDEV);
  EXPECT_EQ(open_beneath(root->get(), "/etc/passwd", O_RDONLY).code(), EXDEV);
  auto d = open_beneath(root->get(), "", O_RDONLY | O_DIRECTORY);
  EXPECT_TRUE(d.ok());
}

TEST(KernelFs, LinkAndExchangeKeepTheNameAlive) {
  TempTree t;
  t.build("f d/a first-content\nf d/b second-content\n");
  auto dir = open_directory(t.path("d"));
  ASSERT_TRUE(dir.ok());
  auto a = open_beneath(dir->get(), "a", O_RDONLY);
  ASSERT_TRUE(a.ok());
  ASSERT_TRUE(link_fd(a->get(), dir->get(), "tmp").ok());
  EXPECT_EQ(link_fd(a->get(), dir->get(), "tmp").code(), EEXIST);
  ASSERT_TRUE(rename_at(dir->get(), "tmp", dir->get(), "b", RENAME_EXCHANGE).ok());
  EXPECT_EQ(t.read("d/b"), "first-content");
  EXPECT_EQ(t.read("d/tmp"), "second-content");
  EXPECT_EQ(rename_at(dir->get(), "a", dir->get(), "b", RENAME_NOREPLACE).code(), EEXIST);
  ASSERT_TRUE(unlink_at(dir->get(), "tmp").ok());
  EXPECT_EQ(stat_at(dir->get(), "a")->nlink, 2u);
}

TEST(KernelFs, ImmutableFlagRoundTrip) {
  TempTree t;
  t.build("f d/a some-content-here\n");
  auto dir = open_directory(t.path("d"));
  auto fd = open_beneath(dir->get(), "a", O_RDONLY);
  ASSERT_TRUE(fd.ok());
  auto flags = get_inode_flags(fd->get());
  if (!flags.ok())
    GTEST_SKIP() << "no inode flags on this file system: " << flags.error().message();
  ASSERT_TRUE(set_immutable(fd->get(), Protection::on).ok());
  EXPECT_TRUE(*is_immutable(fd->get()));
  EXPECT_TRUE(stat_fd(fd->get())->immutable);
  // Even root cannot add a name to, or remove a name of, an immutable inode.
  EXPECT_EQ(link_fd(fd->get(), dir->get(), "b").code(), EPERM);
  EXPECT_EQ(unlink_at(dir->get(), "a").code(), EPERM);
  ASSERT_TRUE(set_immutable(fd->get(), Protection::off).ok());
  EXPECT_FALSE(*is_immutable(fd->get()));
  EXPECT_TRUE(link_fd(fd->get(), dir->get(), "b").ok());
}

TEST(KernelFs, XattrsAreListedSortedAndRead) {
  TempTree t;
  t.build("f d/a content-with-xattrs x:user.zeta=1 x:user.alpha=two\n");
  auto dir = open_directory(t.path("d"));
  auto fd = open_beneath(dir->get(), "a", O_RDONLY);
  ASSERT_TRUE(fd.ok());
  auto names = list_xattrs(fd->get());
  ASSERT_TRUE(names.ok());
  ASSERT_EQ(names->size(), 2u);
  EXPECT_EQ((*names)[0], "user.alpha");
  EXPECT_EQ(*get_xattr(fd->get(), "user.alpha"), "two");
  std::string big(3000, 'x'); // ext4 keeps values within one block
  ASSERT_TRUE(set_xattr(fd->get(), "user.big", big).ok());
  EXPECT_EQ(*get_xattr(fd->get(), "user.big"), big);
  EXPECT_EQ(get_xattr(fd->get(), "user.none").code(), ENODATA);
}

TEST(KernelFs, ReadDirectoryReportsTypes) {
  TempTree t;
  t.build("f d/file regular-file\nl d/link file\nd d/sub\np d/fifo\n");
  auto dir = open_directory(t.path("d"));
  auto entries = read_directory(dir->get());
  ASSERT_TRUE(entries.ok());
  std::map<std::string, unsigned char> types;
  for (auto& e : *entries) types[e.name] = e.type;
  ASSERT_EQ(types.size(), 4u);
  EXPECT_EQ(types["file"], DT_REG);
  EXPECT_EQ(types["link"], DT_LNK);
  EXPECT_EQ(types["sub"], DT_DIR);
  EXPECT_EQ(types["fifo"], DT_FIFO);
}

TEST(KernelFs, ReadAtStopsAtEndOfFile) {
  TempTree t;
  t.build("f a 0123456789\n");
  auto dir = open_directory(t.root());
  auto fd = open_file_for_read(dir->get(), "a");
  ASSERT_TRUE(fd.ok());
  char buf[32];
  EXPECT_EQ(*read_at(fd->get(), buf, sizeof buf, 4), 6u);
  EXPECT_EQ(std::string(buf, 6), "456789");
}

TEST(KernelFs, PlainNames) {
  EXPECT_TRUE(is_plain_name("ls"));
  EXPECT_FALSE(is_plain_name(""));
  EXPECT_FALSE(is_plain_name(".."));
  EXPECT_FALSE(is_plain_name("a/b"));
}

// mountinfo's lines as fields, and mount options as whole comma-separated
// words: "discard=async" and "nodiscard" are not "discard".
TEST(KernelFs, MountinfoAndWholeMountOptions) {
  EXPECT_TRUE(has_mount_option("rw,relatime,discard", "discard"));
  EXPECT_TRUE(has_mount_option("discard", "discard"));
  EXPECT_FALSE(has_mount_option("rw,discard=async", "discard"));
  EXPECT_FALSE(has_mount_option("rw,nodiscard", "discard"));
  EXPECT_FALSE(has_mount_option("", "discard"));
  EXPECT_TRUE(has_mount_option("rw,memory", "memory"));
  struct stat st {};
  ASSERT_EQ(::stat("/proc", &st), 0);
  const std::string id = std::to_string(major(st.st_dev)) + ":" + std::to_string(minor(st.st_dev));
  bool found = false;
  for (const auto& m : mountinfo())
    if (m.mount_point == "/proc" && m.device == id) {
      found = true;
      EXPECT_EQ(m.type, "proc");
      EXPECT_TRUE(has_mount_option(m.options, "rw") || has_mount_option(m.options, "ro"));
    }
  EXPECT_TRUE(found) << "no /proc line with device " << id;
}

TEST(KernelFs, AnAtomicFileReplacesItsNameOnlyWhenCommitted) {
  TempTree t;
  t.file("d/x", "old");
  int dir = ::open(t.path("d").c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  ASSERT_GE(dir, 0);
  auto names = [&] {
    std::vector<std::string> out;
    for (auto& e : std::filesystem::directory_iterator(t.path("d")))
      out.push_back(e.path().filename().string());
    return out;
  };
  {
    auto f = AtomicFile::create(dir, "x", 0600);
    ASSERT_TRUE(f.ok());
    ASSERT_TRUE(f->append("new, never committed").ok());
  } // dropped: nothing replaced, no temporary left
  EXPECT_EQ(t.read("d/x"), "old");
  EXPECT_EQ(names(), std::vector<std::string>{"x"});
  {
    auto f = AtomicFile::create(dir, "x", 0640);
    ASSERT_TRUE(f.ok());
    ASSERT_TRUE(f->append("new, ").ok());
    ASSERT_TRUE(f->append("in two pieces").ok());
    ASSERT_TRUE(f->commit().ok());
  }
  EXPECT_EQ(t.read("d/x"), "new, in two pieces");
  EXPECT_EQ(names(), std::vector<std::string>{"x"});
  struct stat st {};
  ASSERT_EQ(::stat(t.path("d/x").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0640u);
  EXPECT_FALSE(AtomicFile::create(dir, "../y", 0600).ok()) << "a name, not a path";
  ::close(dir);
}

namespace {
struct Rec { // the shape of a scan record: sizes that do not divide a page
  uint64_t a;
  uint32_t b;
  char pad[84];
};
} // namespace

TEST(MappedVector, GrowsInPlaceAndAbsorbsWithoutLosingARecord) {
  vu::MappedVector<Rec> v;
  EXPECT_TRUE(v.empty());
  v.push_back(Rec{0, 0, {}});
  const Rec* first = &v[0];
  for (uint64_t i = 1; i < 100000; ++i) v.push_back(Rec{i, uint32_t(i * 3), {}});
  EXPECT_EQ(&v[0], first); // no record ever moved
  ASSERT_EQ(v.size(), 100000u);
  EXPECT_EQ(v.back().a, 99999u);

  vu::MappedVector<Rec> w; // absorbed piece by piece, across page boundaries
  for (uint64_t i = 0; i < 54321; ++i) w.push_back(Rec{100000 + i, uint32_t(i), {}});
  v.absorb(std::move(w));
  EXPECT_TRUE(w.empty());
  EXPECT_EQ(&v[0], first);
  ASSERT_EQ(v.size(), 154321u);
  for (uint64_t i = 0; i < v.size(); ++i) {
    ASSERT_EQ(v[i].a, i);
    ASSERT_EQ(v[i].b, uint32_t(i < 100000 ? i * 3 : i - 100000));
  }
  w.push_back(Rec{7, 7, {}}); // an emptied vector is usable again
  EXPECT_EQ(w.size(), 1u);

  vu::MappedVector<Rec> empty; // an empty one takes the other whole
  empty.absorb(std::move(v));
  EXPECT_EQ(empty.size(), 154321u);
  EXPECT_EQ(&empty[0], first);
  EXPECT_TRUE(v.empty());

  vu::MappedVector<Rec> moved = std::move(empty);
  EXPECT_EQ(moved.size(), 154321u);
  moved.clear();
  EXPECT_TRUE(moved.empty());
  moved.push_back(Rec{1, 2, {}});
  EXPECT_EQ(moved[0].b, 2u);
}

TEST(MappedVector, UnderAnAddressSpaceLimitItStillGrowsAndKeepsEveryRecord) {
  // ulimit -v 2 GiB: 64 GiB ranges cannot be had, so the first range is a
  // 64th of the limit and the records move to larger ones past it; the
  // vectors of 16 threads and their stacks still fit.
  if (vu::test::k_under_asan)
    GTEST_SKIP() << "AddressSanitizer's shadow memory does not fit an address-space limit";
  pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    struct rlimit r {
      size_t(2) << 30, size_t(2) << 30
    };
    if (::setrlimit(RLIMIT_AS, &r) != 0) ::_exit(10);
    std::vector<vu::MappedVector<Rec>> many(16);
    for (auto& v : many) v.push_back(Rec{1, 1, {}});
    vu::MappedVector<Rec> v;
    for (uint64_t i = 0; i < 1000000; ++i) v.push_back(Rec{i, 0, {}}); // 96 MB, past 32 MiB
    for (uint64_t i = 0; i < v.size(); ++i)
      if (v[i].a != i) ::_exit(11);
    v.reserve(2 * v.size());
    const Rec* first = &v[0];
    for (uint64_t i = 0; i < 1000000; ++i) v.push_back(Rec{i, 0, {}});
    if (&v[0] != first || v.size() != 2000000) ::_exit(12); // reserved: nothing moved
    std::vector<std::thread> threads;
    for (int t = 0; t < 16; ++t) threads.emplace_back([] {});
    for (auto& th : threads) th.join();
    ::_exit(0);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status)) << "the child was killed by signal " << WTERMSIG(status);
  EXPECT_EQ(WEXITSTATUS(status), 0);
}
