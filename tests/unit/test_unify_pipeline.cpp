// The unify pipeline on small trees built by TempTree: one test per case
// that separates groups, plus the safety rules.
#include "kernel/attr.h"
#include "kernel/bpf_lsm.h"
#include "kernel/proc.h"
#include "tests/support/attr_backends.h"
#include "tests/support/temp_tree.h"
#include "unify/state.h"
#include "unify/unify.h"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <fcntl.h>
#include <fstream>
#include <linux/capability.h>
#include <linux/fs.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <set>
#include <sys/wait.h>

using namespace vu;
using vu::test::allocated_of;
using vu::test::inode_of;
using vu::test::is_immutable_path;
using vu::test::TempTree;

namespace {

class Pipeline : public ::testing::Test {
protected:
  Report run(const std::vector<std::string>& names, UnifyOptions o = {},
             const ExcludeList& excludes = {}, std::vector<GuestRole> roles = {}) {
    std::vector<UnifyGuest> gs;
    for (size_t i = 0; i < names.size(); ++i) {
      UnifyGuest u;
      u.guest = Guest{names[i], t.path(names[i]), {}};
      u.role = i < roles.size() ? roles[i] : GuestRole::member;
      u.excludes = excludes;
      if (auto c = config_files.find(names[i]); c != config_files.end()) u.config_files = c->second;
      gs.push_back(std::move(u));
    }
    if (o.threads == 0) o.threads = 2;
    auto r = run_unify(gs, o);
    EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().message());
    return r.ok() ? std::move(r).value() : Report{};
  }
  bool same_inode(const std::string& a, const std::string& b) {
    return inode_of(t.path(a)) == inode_of(t.path(b));
  }
  std::map<std::string, std::string> contents() { return vu::test::content_snapshot(t.root()); }
  static UnifyOptions o_default() { return {}; }

  TempTree t;
  std::map<std::string, std::vector<std::string>> config_files; // per guest name
};

} // namespace

TEST_F(Pipeline, IdenticalFilesBecomeOneImmutableInode) {
  t.build("f g1/usr/a @5000:1\nf g2/usr/a @5000:1\nf g3/opt/other-name @5000:1\n"
          "f g1/usr/b @300:2\nf g2/usr/b @300:3\n");
  auto before = contents();
  // Saved: the blocks of the two inodes that go (what du sees freed).
  const uint64_t freed =
      allocated_of(t.path("g2/usr/a")) + allocated_of(t.path("g3/opt/other-name"));
  ASSERT_GE(freed, 10000u);
  Report r = run({"g1", "g2", "g3"});
  EXPECT_EQ(contents(), before);
  EXPECT_TRUE(same_inode("g1/usr/a", "g2/usr/a"));
  EXPECT_TRUE(same_inode("g1/usr/a", "g3/opt/other-name"));
  EXPECT_FALSE(same_inode("g1/usr/b", "g2/usr/b"));
  EXPECT_TRUE(is_immutable_path(t.path("g2/usr/a")));
  EXPECT_FALSE(is_immutable_path(t.path("g1/usr/b")));
  EXPECT_EQ(r.files_scanned, 5u);
  EXPECT_EQ(r.duplicate_groups, 1u);
  EXPECT_EQ(r.files_linked, 2u);
  EXPECT_EQ(r.bytes_saved, freed);
  EXPECT_EQ(r.inodes_protected, 1u);
  EXPECT_FALSE(r.failed());

  Report again = run({"g1", "g2", "g3"});
  EXPECT_EQ(again.files_linked, 0u);
  EXPECT_EQ(again.files_already_shared, 3u);
  // The shared inode is not read again; the two different b files are
  // (persistent hash caching belongs to vhashify).
  EXPECT_EQ(again.bytes_hashed, 600u);
  EXPECT_EQ(contents(), before);
}

TEST_F(Pipeline, NeverLinksFilesThatDifferInOwnerModeOrXattrs) {
  t.build("f g1/owner @2000:7\nf g2/owner @2000:7 uid=1000\n"
          "f g1/group @2000:8\nf g2/group @2000:8 gid=1000\n"
          "f g1/mode @2000:9\nf g2/mode @2000:9 mode=0755\n"
          "f g1/xattr @2000:10 x:user.tag=a\nf g2/xattr @2000:10 x:user.tag=b\n"
          "f g1/xattr-missing @2000:11 x:user.tag=a\nf g2/xattr-missing @2000:11\n"
          "f g1/cap @2000:12\nf g2/cap @2000:12\n"
          "f g1/acl @2000:13\nf g2/acl @2000:13\n"
          "f g1/same @2000:14 x:user.tag=a\nf g2/same @2000:14 x:user.tag=a\n");
  // A file capability (cap_net_raw+ep) on one copy only.
  struct vfs_cap_data cap {};
  cap.magic_etc = VFS_CAP_REVISION_2 | VFS_CAP_FLAGS_EFFECTIVE;
  cap.data[0].permitted = 1u << CAP_NET_RAW;
  ASSERT_EQ(::setxattr(t.path("g2/cap").c_str(), "security.capability", &cap, sizeof cap, 0), 0);
  bool have_acl = vu::test::sh("setfacl -m u:1234:r " + t.path("g2/acl") + " 2>/dev/null") == 0;
  auto before = vu::test::snapshot(t.root());
  Report r = run({"g1", "g2"});
  for (const char* f : {"owner", "group", "mode", "xattr", "xattr-missing", "cap", "acl"})
    EXPECT_FALSE(same_inode(std::string("g1/") + f, std::string("g2/") + f)) << f;
  EXPECT_TRUE(same_inode("g1/same", "g2/same"));
  EXPECT_EQ(r.files_linked, 1u);
  // Metadata of every name is exactly as before (the linked pair was equal).
  EXPECT_EQ(vu::test::snapshot(t.root()), before);
  if (!have_acl) GTEST_SKIP() << "setfacl not available: the ACL case was not exercised";
}

TEST_F(Pipeline, NeverLinksFilesThatDifferInContent) {
  std::string big = vu::test::random_bytes(100000, 5);
  std::string first = big, middle = big, last = big;
  first[0] ^= 1;
  middle[50000] ^= 1;
  last[99999] ^= 1;
  t.file("g1/first", big);
  t.file("g2/first", first);
  t.file("g1/middle", big + "m");
  t.file("g2/middle", middle + "m");
  t.file("g1/last", big + "l");
  t.file("g2/last", last + "l");
  t.file("g1/size", big + "s");
  t.file("g2/size", big + "ss");
  t.file("g1/small-last", "0123456789abcdef0123");
  t.file("g2/small-last", "0123456789abcdef0124");
  t.file("g1/equal", big + "e");
  t.file("g2/equal", big + "e");
  auto before = contents();
  Report r = run({"g1", "g2"});
  for (const char* f : {"first", "middle", "last", "size", "small-last"})
    EXPECT_FALSE(same_inode(std::string("g1/") + f, std::string("g2/") + f)) << f;
  EXPECT_TRUE(same_inode("g1/equal", "g2/equal"));
  EXPECT_EQ(r.files_linked, 1u);
  EXPECT_EQ(contents(), before);
}

TEST_F(Pipeline, AlreadyLinkedInputIsRecognised) {
  t.build("f g1/a @3000:1\nd g2\nf g3/a @3000:1\n");
  ASSERT_EQ(::link(t.path("g1/a").c_str(), t.path("g2/a").c_str()), 0);
  auto shared = inode_of(t.path("g1/a"));
  Report r = run({"g1", "g2", "g3"});
  EXPECT_EQ(r.files_already_shared, 2u);
  EXPECT_EQ(r.files_linked, 1u);
  EXPECT_EQ(inode_of(t.path("g3/a")), shared) << "the inode with most names survives";
  EXPECT_EQ(inode_of(t.path("g2/a")), shared);
}

TEST_F(Pipeline, SurvivorIsDeterministicByGuestOrderThenPath) {
  t.build("f g1/z @3000:1\nf g1/b @3000:1\nf g2/a @3000:1\n");
  auto survivor = inode_of(t.path("g1/b"));
  run({"g1", "g2"});
  EXPECT_EQ(inode_of(t.path("g1/z")), survivor);
  EXPECT_EQ(inode_of(t.path("g2/a")), survivor);
}

TEST_F(Pipeline, FileChangedBetweenHashAndLinkIsNotLinked) {
  t.build("f g1/a @40000:1\nf g2/a @40000:1\nf g1/b @40000:2\nf g2/b @40000:2\n"
          "f g1/c @40000:3\nf g2/c @40000:3\n");
  std::string changed = vu::test::random_bytes(40000, 1);
  changed[20000] ^= 0x55;
  UnifyOptions o;
  o.hooks.before_link = [&] {
    // Same size, one byte in the middle: only the byte comparison can tell.
    int fd = ::open(t.path("g2/a").c_str(), O_WRONLY);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::pwrite(fd, changed.data() + 20000, 1, 20000), 1);
    ::close(fd);
    // Replaced by a new inode with the same content.
    t.file("g2/b.new", vu::test::random_bytes(40000, 2));
    ASSERT_EQ(::rename(t.path("g2/b.new").c_str(), t.path("g2/b").c_str()), 0);
  };
  Report r = run({"g1", "g2"}, o);
  EXPECT_FALSE(same_inode("g1/a", "g2/a"));
  EXPECT_EQ(t.read("g2/a"), changed);
  EXPECT_FALSE(same_inode("g1/b", "g2/b"));
  EXPECT_TRUE(same_inode("g1/c", "g2/c"));
  EXPECT_EQ(r.files_linked, 1u);
  EXPECT_GE(r.skipped[Skip::changed], 2u);
  EXPECT_FALSE(r.failed());
}

TEST_F(Pipeline, SmallTargetThatGrewOrShrankAfterHashingIsNotLinked) {
  // Small canonicals are read once and every target compared with those
  // bytes: a target with one byte more or less must still be told apart.
  t.build("f g1/a @9000:1\nf g2/a @9000:1\nf g1/b @9000:2\nf g2/b @9000:2\n"
          "f g1/c @9000:3\nf g2/c @9000:3\n");
  UnifyOptions o;
  o.hooks.before_link = [&] {
    int fd = ::open(t.path("g2/a").c_str(), O_WRONLY | O_APPEND);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::write(fd, "x", 1), 1);
    ::close(fd);
    ASSERT_EQ(::truncate(t.path("g2/b").c_str(), 8999), 0);
  };
  Report r = run({"g1", "g2"}, o);
  EXPECT_FALSE(same_inode("g1/a", "g2/a"));
  EXPECT_EQ(t.read("g2/a").size(), 9001u);
  EXPECT_FALSE(same_inode("g1/b", "g2/b"));
  EXPECT_EQ(t.read("g2/b").size(), 8999u);
  EXPECT_TRUE(same_inode("g1/c", "g2/c"));
  EXPECT_EQ(r.files_linked, 1u);
  EXPECT_FALSE(r.failed());
}

namespace {

// A process that opens `path` for writing (from inside `chroot_to` when
// given, as a guest's process would), inverts the byte at 4000 and
// restores the mtime. Returns its pid; the caller reaps it.
pid_t writer_process(const std::string& chroot_to, const std::string& path) {
  pid_t pid = ::fork();
  if (pid != 0) return pid;
  // Only system calls between fork and _exit: the test is multi-threaded.
  if (!chroot_to.empty() && (::chroot(chroot_to.c_str()) != 0 || ::chdir("/") != 0)) ::_exit(2);
  struct stat st {};
  ::stat(path.c_str(), &st);
  int fd = ::open(path.c_str(), O_RDWR);
  if (fd < 0) ::_exit(3);
  char c = 0;
  if (::pread(fd, &c, 1, 4000) != 1) ::_exit(4);
  c = static_cast<char>(~c); // a write that changes the byte, whatever it was
  if (::pwrite(fd, &c, 1, 4000) != 1) ::_exit(4);
  struct timespec ts[2] = {st.st_atim, st.st_mtim};
  ::futimens(fd, ts);
  ::_exit(0);
}

// Waits (up to 10 s) until process `pid` waits for this process's lease on
// `path`: the writer is then inside open(2), blocked.
void wait_until_blocked(pid_t pid, const std::string& path) {
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  for (int i = 0; i < 1000; ++i) {
    auto w = lease_waiters(::getpid(), st.st_dev, st.st_ino);
    if (std::find(w.begin(), w.end(), pid) != w.end()) return;
    ::usleep(10000);
  }
  ADD_FAILURE() << "the writer never waited for the lease";
}

int reap(pid_t pid) {
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// A temporary name the suite itself would make in `dir` (signed with this
// host's key, the test state directory's).
std::string signed_temp(const std::string& dir) {
  struct stat st {};
  ::stat(dir.c_str(), &st);
  auto names = load_temp_names(Create::yes);
  EXPECT_TRUE(names.ok());
  return names->make(st.st_dev, st.st_ino);
}

} // namespace

TEST_F(Pipeline, GuestWriterOfTheSharedInodeKeepsItAndTheOthersMoveToACopy) {
  // g1's a is the canonical C; a process inside g1 opens it for writing
  // while it is thawed. It waits for the lease; g1 then keeps C, g2 and g3
  // get a copy of the unchanged content, so only g1 ever sees the write.
  t.build("f g1/a @8000:1\nf g2/a @8000:1\nf g3/a @8000:1\n");
  pid_t writer = -1;
  UnifyOptions o;
  o.hooks.in_link_window = [&](const std::string& canonical) {
    writer = writer_process(t.path("g1"), "/a");
    wait_until_blocked(writer, canonical);
  };
  Report r = run({"g1", "g2", "g3"}, o);
  ASSERT_GT(writer, 0);
  EXPECT_EQ(reap(writer), 0);
  std::string original = vu::test::random_bytes(8000, 1), written = original;
  written[4000] = static_cast<char>(~written[4000]);
  EXPECT_EQ(t.read("g1/a"), written) << "the writer's own guest sees its write";
  EXPECT_EQ(t.read("g2/a"), original);
  EXPECT_EQ(t.read("g3/a"), original);
  EXPECT_TRUE(same_inode("g2/a", "g3/a")) << "the others still share, on a copy";
  EXPECT_FALSE(same_inode("g1/a", "g2/a"));
  EXPECT_TRUE(is_immutable_path(t.path("g2/a")));
  EXPECT_FALSE(is_immutable_path(t.path("g1/a"))) << "g1's alone now";
  EXPECT_EQ(r.skipped[Skip::written], 1u);
  EXPECT_FALSE(r.failed()) << r.failures.begin()->second.first_message;
}

namespace {

mode_t mode_of(const std::string& path) {
  struct stat st {};
  return ::lstat(path.c_str(), &st) == 0 ? st.st_mode & 07777 : 0;
}

} // namespace

TEST_F(Pipeline, AModeChangedWhileTheSharedInodeIsThawedReachesNoOtherGuest) {
  // g1's root makes its a setuid while a is thawed to receive g2's and
  // g3's names (a lease keeps writers out, not chmod). Their a must not
  // become setuid: a shared inode's metadata is checked once it is frozen
  // again, and the links are undone.
  t.build("f g1/a @8000:1\nf g2/a @8000:1\nf g3/a @8000:1\n");
  for (const char* g : {"g1/a", "g2/a", "g3/a"}) ASSERT_EQ(::chmod(t.path(g).c_str(), 0755), 0);
  UnifyOptions o;
  o.hooks.in_link_window = [&](const std::string& canonical) {
    EXPECT_EQ(::chmod(canonical.c_str(), 04755), 0);
  };
  Report r = run({"g1", "g2", "g3"}, o);
  EXPECT_EQ(mode_of(t.path("g2/a")), 0755u);
  EXPECT_EQ(mode_of(t.path("g3/a")), 0755u);
  EXPECT_FALSE(same_inode("g1/a", "g2/a"));
  EXPECT_EQ(t.read("g2/a"), vu::test::random_bytes(8000, 1));
  EXPECT_EQ(mode_of(t.path("g1/a")), 04755u) << "g1's own file, as its root left it";
  EXPECT_FALSE(is_immutable_path(t.path("g1/a")));
  EXPECT_EQ(r.failures[Failure::verify].count, 1u);
  EXPECT_EQ(r.files_linked, 0u);
}

TEST_F(Pipeline, AnXattrSetOnASharedInodeWhileItIsThawedIsTakenBackFromEveryGuest) {
  // g1 and g2 share a from an earlier run; this run adds g3's. While a is
  // thawed for it, g1's root gives a a new xattr (as it could give a file
  // capability). g3 is not linked, and g2 - which shared a before - sees
  // a's xattrs as they were.
  t.build("f g1/a @8000:1\nf g2/a @8000:1\n");
  run({"g1", "g2"});
  ASSERT_TRUE(same_inode("g1/a", "g2/a"));
  t.build("f g3/a @8000:1\n");
  UnifyOptions o;
  o.hooks.in_link_window = [&](const std::string& canonical) {
    EXPECT_EQ(::setxattr(canonical.c_str(), "user.injected", "1", 1, 0), 0);
  };
  Report r = run({"g1", "g2", "g3"}, o);
  EXPECT_TRUE(same_inode("g1/a", "g2/a"));
  EXPECT_FALSE(same_inode("g1/a", "g3/a"));
  char v[8];
  EXPECT_LT(::getxattr(t.path("g2/a").c_str(), "user.injected", v, sizeof v), 0);
  EXPECT_TRUE(is_immutable_path(t.path("g2/a")));
  EXPECT_EQ(r.failures[Failure::verify].count, 1u);
}

TEST_F(Pipeline, AModeChangedOnTheCopyForTheOthersIsTakenBack) {
  // As above, g1's process writes a while it is thawed: g2 and g3 move to
  // a copy. The copy is unfrozen while it receives their names; the root
  // of the first guest to get it makes it setuid. Once frozen, the copy
  // has its mode back for both.
  t.build("f g1/a @8000:1\nf g2/a @8000:1\nf g3/a @8000:1\n");
  for (const char* g : {"g1/a", "g2/a", "g3/a"}) ASSERT_EQ(::chmod(t.path(g).c_str(), 0755), 0);
  pid_t writer = -1;
  bool changed = false;
  UnifyOptions o;
  o.hooks.in_link_window = [&](const std::string& canonical) {
    writer = writer_process(t.path("g1"), "/a");
    wait_until_blocked(writer, canonical);
  };
  o.hooks.in_relocation = [&](const std::string& moved) {
    changed = ::chmod(moved.c_str(), 04755) == 0;
  };
  Report r = run({"g1", "g2", "g3"}, o);
  ASSERT_GT(writer, 0);
  EXPECT_EQ(reap(writer), 0);
  ASSERT_TRUE(changed);
  EXPECT_TRUE(same_inode("g2/a", "g3/a")) << "the others still share, on a copy";
  EXPECT_EQ(mode_of(t.path("g2/a")), 0755u);
  EXPECT_EQ(mode_of(t.path("g3/a")), 0755u);
  EXPECT_TRUE(is_immutable_path(t.path("g2/a")));
  EXPECT_EQ(t.read("g2/a"), vu::test::random_bytes(8000, 1));
  EXPECT_EQ(r.failures[Failure::verify].count, 1u);
}

TEST_F(Pipeline, HostWriterDuringTheWindowIsReportedAndNoNewGuestIsExposed) {
  t.build("f g1/a @8000:1\nf g2/a @8000:1\nf g3/a @8000:1\n");
  auto a2 = inode_of(t.path("g2/a"));
  pid_t writer = -1;
  UnifyOptions o;
  o.hooks.in_link_window = [&](const std::string& canonical) {
    writer = writer_process("", canonical); // a host process: its root is no guest's
    wait_until_blocked(writer, canonical);
  };
  Report r = run({"g1", "g2", "g3"}, o);
  ASSERT_GT(writer, 0);
  EXPECT_EQ(reap(writer), 0);
  EXPECT_EQ(inode_of(t.path("g2/a")), a2) << "links were undone";
  EXPECT_FALSE(same_inode("g1/a", "g3/a"));
  EXPECT_EQ(t.read("g2/a"), vu::test::random_bytes(8000, 1));
  EXPECT_EQ(t.read("g3/a"), vu::test::random_bytes(8000, 1));
  EXPECT_TRUE(t.read("g1/a") != vu::test::random_bytes(8000, 1)) << "the writer changed C";
  EXPECT_FALSE(is_immutable_path(t.path("g1/a"))) << "nothing shared: C as it was";
  EXPECT_EQ(r.failures[Failure::verify].count, 1u);
  EXPECT_EQ(r.files_linked, 0u);
}

TEST_F(Pipeline, FilesOpenForWritingAreNeitherSharedNorReplaced) {
  // A descriptor opened for writing before the run must keep writing to
  // the file its name shows, canonical or target.
  t.build("f g1/a @8000:1\nf g2/a @8000:1\nf g3/a @8000:1\nf g1/b @9000:2\nf g2/b @9000:2\n");
  int canon = ::open(t.path("g1/a").c_str(), O_WRONLY);
  int target = ::open(t.path("g2/b").c_str(), O_WRONLY);
  ASSERT_GE(canon, 0);
  ASSERT_GE(target, 0);
  Report r = run({"g1", "g2", "g3"}, o_default());
  EXPECT_TRUE(same_inode("g2/a", "g3/a")) << "the next inode served as the canonical";
  EXPECT_FALSE(same_inode("g1/a", "g2/a"));
  EXPECT_FALSE(same_inode("g1/b", "g2/b"));
  EXPECT_EQ(r.skipped[Skip::busy], 2u);
  ASSERT_EQ(::pwrite(canon, "W", 1, 0), 1);
  ASSERT_EQ(::pwrite(target, "W", 1, 0), 1);
  ::close(canon);
  ::close(target);
  EXPECT_EQ(t.read("g1/a")[0], 'W') << "the write is not lost";
  EXPECT_EQ(t.read("g2/b")[0], 'W') << "the write is not lost";
  EXPECT_EQ(t.read("g3/a"), vu::test::random_bytes(8000, 1));
  EXPECT_FALSE(r.failed());
}

TEST_F(Pipeline, RunningOutOfLinksStartsASecondSharedInode) {
  std::vector<std::string> names;
  for (int i = 0; i < 7; ++i) {
    names.push_back("g" + std::to_string(i));
    t.file(names.back() + "/a", vu::test::random_bytes(5000, 9));
  }
  auto before = contents();
  UnifyOptions o;
  o.hooks.max_links = 3;
  Report r = run(names, o);
  std::set<std::pair<uint64_t, uint64_t>> inodes;
  for (auto& n : names) inodes.insert(inode_of(t.path(n + "/a")));
  EXPECT_EQ(inodes.size(), 3u); // 3 + 3 + 1 names
  EXPECT_EQ(r.files_linked, 4u);
  EXPECT_EQ(contents(), before);
  EXPECT_FALSE(r.failed());
}

TEST_F(Pipeline, LeavesExcludedSmallAndSpecialFilesAlone) {
  t.build("f g1/etc/conf @4000:1\nf g2/etc/conf @4000:1\n"
          "f g1/usr/tiny fifteen-bytes!!\nf g2/usr/tiny fifteen-bytes!!\n"
          "l g1/usr/link target\nl g2/usr/link target\np g1/usr/fifo\np g2/usr/fifo\n"
          "f g1/usr/keep @4000:2\nf g2/usr/keep @4000:2\n");
  auto excl = ExcludeList::parse("/etc\n", "t");
  auto before = vu::test::snapshot(t.root());
  auto conf = inode_of(t.path("g2/etc/conf"));
  Report r = run({"g1", "g2"}, {}, *excl);
  EXPECT_EQ(inode_of(t.path("g2/etc/conf")), conf);
  EXPECT_FALSE(same_inode("g1/usr/tiny", "g2/usr/tiny"));
  EXPECT_TRUE(same_inode("g1/usr/keep", "g2/usr/keep"));
  EXPECT_EQ(r.files_excluded, 2u);
  EXPECT_EQ(r.files_small, 2u);
  EXPECT_EQ(r.files_other, 4u);
  EXPECT_EQ(vu::test::snapshot(t.root()), before);
}

TEST_F(Pipeline, DryRunChangesNothing) {
  t.build("f g1/a @5000:1\nf g2/a @5000:1\nf g2/b @5000:1\n");
  auto inode_a = inode_of(t.path("g2/a"));
  auto before = vu::test::snapshot(t.root());
  UnifyOptions o;
  o.dry_run = true;
  Report r = run({"g1", "g2"}, o);
  EXPECT_EQ(r.files_linked, 2u);
  EXPECT_EQ(r.bytes_saved, allocated_of(t.path("g2/a")) + allocated_of(t.path("g2/b")));
  EXPECT_EQ(vu::test::snapshot(t.root()), before);
  EXPECT_EQ(inode_of(t.path("g2/a")), inode_a);
  EXPECT_FALSE(is_immutable_path(t.path("g1/a")));
}

TEST_F(Pipeline, NoImmutableOptionLinksWithoutTheFlag) {
  t.build("f g1/a @5000:1\nf g2/a @5000:1\n");
  UnifyOptions o;
  o.protect = Protect::none;
  Report r = run({"g1", "g2"}, o);
  EXPECT_TRUE(same_inode("g1/a", "g2/a"));
  EXPECT_FALSE(is_immutable_path(t.path("g1/a")));
  EXPECT_EQ(r.inodes_protected, 0u);
}

TEST_F(Pipeline, TemporariesOfAnInterruptedRunAreRemoved) {
  t.build("f g1/usr/a @5000:1\nf g2/usr/a @5000:1\nf g1/usr/s @6000:2\n");
  // A crash after link(): a second name of a private inode ...
  const std::string tmp_a = "g1/usr/" + signed_temp(t.path("g1/usr"));
  ASSERT_EQ(::link(t.path("g1/usr/a").c_str(), t.path(tmp_a).c_str()), 0);
  // ... and one of a shared, immutable inode.
  const std::string tmp_s = "g2/usr/" + signed_temp(t.path("g2/usr"));
  ASSERT_EQ(::link(t.path("g1/usr/s").c_str(), t.path("g2/usr/s").c_str()), 0);
  ASSERT_EQ(::link(t.path("g1/usr/s").c_str(), t.path(tmp_s).c_str()), 0);
  ASSERT_EQ(vu::test::sh("chattr +i " + t.path("g1/usr/s")), 0);
  Report r = run({"g1", "g2"});
  EXPECT_EQ(r.temporaries_removed, 2u);
  EXPECT_FALSE(path_exists(t.path(tmp_a)));
  EXPECT_FALSE(path_exists(t.path(tmp_s)));
  EXPECT_TRUE(is_immutable_path(t.path("g2/usr/s")));
  EXPECT_EQ(t.read("g2/usr/s"), vu::test::random_bytes(6000, 2));
  EXPECT_TRUE(same_inode("g1/usr/a", "g2/usr/a"));
  EXPECT_FALSE(r.failed());
}

TEST_F(Pipeline, NamesThatOnlyLookLikeTemporariesAreTheGuestsOwnFiles) {
  // Unsigned, forged, or signed for another directory: a guest's files.
  t.build("f g1/usr/a @5000:1\nf g2/usr/a @5000:1\nf g2/usr/.vunify-tmp.mine unique-content-of-g2\n"
          "f g2/usr/.vunify-tmp.0123456789abcdef.0123456789abcdef @5000:1\n"
          "d g2/other\n");
  const std::string elsewhere = signed_temp(t.path("g2/other")); // right key, wrong directory
  t.file("g2/usr/" + elsewhere, "also the guest's own file\n");
  Report r = run({"g1", "g2"});
  EXPECT_EQ(r.temporaries_removed, 0u);
  EXPECT_EQ(t.read("g2/usr/.vunify-tmp.mine"), "unique-content-of-g2");
  EXPECT_EQ(t.read("g2/usr/" + elsewhere), "also the guest's own file\n");
  EXPECT_TRUE(same_inode("g1/usr/a", "g2/usr/.vunify-tmp.0123456789abcdef.0123456789abcdef"))
      << "a guest file like any other";
}

TEST_F(Pipeline, InodeWithLinksOutsideTheScanIsNotReplaced) {
  t.build("f g1/usr/a @5000:1\nf g2/usr/a @5000:1\n");
  ASSERT_EQ(vu::test::sh("mkdir -p " + t.path("g2/etc")), 0);
  ASSERT_EQ(::link(t.path("g2/usr/a").c_str(), t.path("g2/etc/a").c_str()), 0);
  auto excl = ExcludeList::parse("/etc\n", "t");
  auto g2 = inode_of(t.path("g2/usr/a"));
  // g1 sorts first, so g1/usr/a is the survivor and g2's inode would have
  // to be replaced: it is not, because /etc/a would keep it alive.
  Report r = run({"g1", "g2"}, {}, *excl);
  EXPECT_EQ(inode_of(t.path("g2/usr/a")), g2);
  EXPECT_EQ(r.files_linked, 0u);
  EXPECT_EQ(r.skipped[Skip::partial], 1u);
}

TEST_F(Pipeline, ReferenceGuestsAreNeverChanged) {
  t.build("f ref1/a @5000:1\nf ref2/a @5000:1\nf tgt/a @5000:1\nf tgt/b @5000:2\n"
          "f ref2/b @5000:2\n");
  auto r1 = inode_of(t.path("ref1/a"));
  auto r2 = inode_of(t.path("ref2/a"));
  auto rb = inode_of(t.path("ref2/b"));
  Report r = run({"ref1", "ref2", "tgt"}, {}, {},
                 {GuestRole::reference, GuestRole::reference, GuestRole::member});
  EXPECT_EQ(inode_of(t.path("ref1/a")), r1);
  EXPECT_EQ(inode_of(t.path("ref2/a")), r2);
  EXPECT_EQ(inode_of(t.path("tgt/a")), r1);
  EXPECT_EQ(inode_of(t.path("tgt/b")), rb);
  EXPECT_EQ(r.files_linked, 2u);
}

TEST_F(Pipeline, SharedInodeWithoutTheFlagIsProtected) {
  t.build("f g1/a @5000:1\nd g2\n");
  ASSERT_EQ(::link(t.path("g1/a").c_str(), t.path("g2/a").c_str()), 0);
  Report r = run({"g1", "g2"});
  EXPECT_TRUE(is_immutable_path(t.path("g1/a")));
  EXPECT_EQ(r.inodes_protected, 1u);
}

TEST_F(Pipeline, NamesWithNewlinesAndInvalidUtf8) {
  std::string odd = "we\nird\xff\xfe name";
  t.file("g1/" + odd, vu::test::random_bytes(3000, 4));
  t.file("g2/" + odd, vu::test::random_bytes(3000, 4));
  UnifyOptions o;
  o.log_actions = true;
  Report r = run({"g1", "g2"}, o);
  EXPECT_TRUE(same_inode("g1/" + odd, "g2/" + odd));
  ASSERT_EQ(r.actions.size(), 1u);
  EXPECT_EQ(r.actions[0].find('\n'), std::string::npos);
  EXPECT_NE(r.actions[0].find("we\\x0aird\\xff\\xfe name"), std::string::npos);
}

TEST_F(Pipeline, ConfigFilesStayPrivateByPathAndByInode) {
  t.build("f g1/etc/app.conf @3000:1\nf g2/etc/app.conf @3000:1\n"
          "f g1/usr/lib/udev/rules @3000:2\nf g2/usr/lib/udev/rules @3000:2\n"
          "l g1/lib usr/lib\nl g2/lib usr/lib\n"
          "f g1/usr/share/a @3000:3\nf g2/usr/share/a @3000:3\n"
          "f g1/usr/share/b @3000:4\nf g2/usr/share/b @3000:4\n");
  // A config file with a second name elsewhere in the guest.
  ASSERT_EQ(::link(t.path("g2/usr/share/b").c_str(), t.path("g2/usr/share/b-conf").c_str()), 0);
  config_files["g1"] = {"/etc/app.conf", "/lib/udev/rules", "/missing"};
  config_files["g2"] = {"/etc/app.conf", "/lib/udev/rules", "/usr/share/b-conf"};
  Report r = run({"g1", "g2"});
  EXPECT_FALSE(same_inode("g1/etc/app.conf", "g2/etc/app.conf"));
  EXPECT_FALSE(same_inode("g1/usr/lib/udev/rules", "g2/usr/lib/udev/rules")) << "via /lib symlink";
  EXPECT_FALSE(same_inode("g1/usr/share/b", "g2/usr/share/b")) << "same inode as a config file";
  EXPECT_TRUE(same_inode("g1/usr/share/a", "g2/usr/share/a"));
  EXPECT_EQ(r.files_linked, 1u);
  EXPECT_GE(r.files_config, 6u);
}

namespace {
// Delegates to a real back end (mainline unless given) and records
// protect() calls; optionally asks for the file's directory and name, as
// the Linux-VServer back end does.
class RecordingBackend : public vu::test::DelegatingBackend {
public:
  explicit RecordingBackend(bool by_path,
                            std::unique_ptr<AttrBackend> real = make_mainline_attr_backend())
      : DelegatingBackend(std::move(real)), m_by_path(by_path) {}
  const char* name() const override { return "recording"; }
  Status protect(int fd, int dirfd, const std::string& name, Protection p) override {
    calls.push_back((p == Protection::on ? "+" : "-") + name);
    if (m_by_path) {
      EXPECT_GE(dirfd, 0);
    }
    return DelegatingBackend::protect(fd, dirfd, name, p);
  }
  bool protect_needs_path() const override { return m_by_path; }
  std::vector<std::string> calls;

private:
  bool m_by_path;
};

} // namespace

TEST_F(Pipeline, SharedInodesAreProtectedThroughTheAttributeBackend) {
  for (bool by_path : {false, true}) {
    std::string a = by_path ? "p1" : "f1", b = by_path ? "p2" : "f2";
    t.file(a + "/usr/tool", vu::test::random_bytes(5000, 3));
    t.file(b + "/usr/tool", vu::test::random_bytes(5000, 3));
    RecordingBackend backend(by_path);
    UnifyOptions o;
    o.attrs = &backend;
    Report r = run({a, b}, o);
    EXPECT_EQ(r.files_linked, 1u);
    EXPECT_TRUE(is_immutable_path(t.path(b + "/usr/tool")));
    // freeze, thaw for the link, freeze again: all on the canonical
    // (the path-addressed back end gets its name in its directory).
    std::string n = by_path ? "tool" : "usr/tool";
    EXPECT_EQ(backend.calls, (std::vector<std::string>{"+" + n, "-" + n, "+" + n})) << by_path;
  }
}

TEST_F(Pipeline, AModeChangedJustBeforeTheFirstFreezeKeepsTheInodeFromServing) {
  t.build("f g1/a @8000:1\nf g2/a @8000:1\n");
  for (const char* g : {"g1/a", "g2/a"}) ASSERT_EQ(::chmod(t.path(g).c_str(), 0755), 0);
  vu::test::ChmodBeforeFreeze backend;
  UnifyOptions o;
  o.attrs = &backend;
  Report r = run({"g1", "g2"}, o);
  ASSERT_TRUE(backend.done);
  EXPECT_FALSE(same_inode("g1/a", "g2/a"));
  EXPECT_EQ(mode_of(t.path("g2/a")), 0755u);
  EXPECT_EQ(mode_of(t.path("g1/a")), 04755u);
  EXPECT_FALSE(is_immutable_path(t.path("g1/a")));
  EXPECT_EQ(r.files_linked, 0u);
  EXPECT_FALSE(r.failed());
}

TEST_F(Pipeline, UnderTheBpfBackEndNamesAreAddedWithoutAThaw) {
  // The mark (bpf_lsm.h) never refuses link or rename: the canonical is
  // marked once and stays marked while names are swapped to it.
  for (const char* g : {"b1", "b2", "b3"})
    t.file(std::string(g) + "/usr/tool", vu::test::random_bytes(7000, 9));
  RecordingBackend backend(false, make_bpf_attr_backend());
  UnifyOptions o;
  o.attrs = &backend;
  int windows = 0;
  o.hooks.in_link_window = [&](const std::string& canonical) {
    ++windows;
    EXPECT_EQ(vu::test::inode_flags_of(canonical) & (k_bpf_mark | FS_IMMUTABLE_FL), k_bpf_mark)
        << canonical;
  };
  Report r = run({"b1", "b2", "b3"}, o);
  EXPECT_EQ(r.files_linked, 2u);
  EXPECT_GT(windows, 0);
  EXPECT_EQ(backend.calls, (std::vector<std::string>{"+usr/tool"}));
  EXPECT_EQ(inode_of(t.path("b1/usr/tool")), inode_of(t.path("b3/usr/tool")));
  EXPECT_EQ(vu::test::inode_flags_of(t.path("b1/usr/tool")) & (k_bpf_mark | FS_IMMUTABLE_FL),
            k_bpf_mark);
  // A fourth guest joins: no protection call at all.
  t.file("b4/usr/tool", vu::test::random_bytes(7000, 9));
  RecordingBackend again(false, make_bpf_attr_backend());
  o.attrs = &again;
  r = run({"b1", "b2", "b3", "b4"}, o);
  EXPECT_EQ(r.files_linked, 1u);
  EXPECT_TRUE(again.calls.empty()) << again.calls.front();
  EXPECT_EQ(inode_of(t.path("b4/usr/tool")), inode_of(t.path("b1/usr/tool")));
}

TEST_F(Pipeline, TheBpfBackEndTakesOverInodesAMainlineRunFroze) {
  for (const char* g : {"m1", "m2"})
    t.file(std::string(g) + "/usr/tool", vu::test::random_bytes(6000, 4));
  Report r = run({"m1", "m2"}, UnifyOptions{});
  ASSERT_EQ(r.files_linked, 1u);
  ASSERT_TRUE(is_immutable_path(t.path("m1/usr/tool")));
  t.file("m3/usr/tool", vu::test::random_bytes(6000, 4));
  auto bpf = make_bpf_attr_backend();
  UnifyOptions o;
  o.attrs = bpf.get();
  r = run({"m1", "m2", "m3"}, o);
  EXPECT_EQ(r.files_linked, 1u);
  EXPECT_EQ(inode_of(t.path("m3/usr/tool")), inode_of(t.path("m1/usr/tool")));
  EXPECT_EQ(vu::test::inode_flags_of(t.path("m1/usr/tool")) & (k_bpf_mark | FS_IMMUTABLE_FL),
            k_bpf_mark);
}

TEST(SizeRanges, EqualSizesStayTogetherAndRangesCoverEverySize) {
  SizeHistogram h;
  for (uint64_t size : {0ull, 5ull, 16ull, 17ull, 4096ull, 4097ull, 5000ull, 1ull << 20})
    h.count[SizeHistogram::slot(size)] += 3;
  h.count[SizeHistogram::slot(100000)] += 50; // more than a range may hold
  auto r = size_ranges(h, 6);
  ASSERT_GE(r.size(), 4u);
  EXPECT_EQ(r.front().first, 0u);
  EXPECT_EQ(r.back().second, UINT64_MAX);
  for (size_t i = 1; i < r.size(); ++i) EXPECT_EQ(r[i].first, r[i - 1].second + 1);
  for (uint64_t size :
       {0ull, 5ull, 16ull, 17ull, 4096ull, 4097ull, 5000ull, 100000ull, 1ull << 20}) {
    const size_t slot = SizeHistogram::slot(size);
    EXPECT_LE(SizeHistogram::lowest(slot), size);
    if (slot + 1 < 64 * SizeHistogram::k_parts) {
      EXPECT_GT(SizeHistogram::lowest(slot + 1), size);
    }
  }
  EXPECT_EQ(size_ranges(h, 1000).size(), 1u);
}

TEST_F(Pipeline, ARunInSizeRangesLinksExactlyWhatOneRunLinks) {
  // Two copies of three guests: files of many sizes, most shared, some not.
  for (const char* copy : {"a", "b"})
    for (int g = 1; g <= 3; ++g)
      for (int i = 0; i < 120; ++i) {
        const size_t size = 16 + (i * 7919) % 300000;
        const uint64_t seed = (g == 3 && i % 9 == 0) ? 5000 + i : i;
        t.file(fmt::format("{}/g{}/usr/f{}", copy, g, i), vu::test::random_bytes(size, seed));
      }
  auto guests = [&](const char* copy) {
    std::vector<std::string> n;
    for (int g = 1; g <= 3; ++g) n.push_back(fmt::format("{}/g{}", copy, g));
    return n;
  };
  Report one = run(guests("a"));
  UnifyOptions o;
  o.memory_limit = 20 * k_bytes_per_file; // 20 files a range
  Report parts = run(guests("b"), o);
  EXPECT_GT(parts.parts, 5u);
  EXPECT_EQ(one.parts, 1u);
  EXPECT_FALSE(parts.failed());
  EXPECT_EQ(parts.files_scanned, one.files_scanned);
  EXPECT_EQ(parts.bytes_scanned, one.bytes_scanned);
  EXPECT_EQ(parts.files_linked, one.files_linked);
  EXPECT_EQ(parts.bytes_saved, one.bytes_saved);
  EXPECT_EQ(parts.duplicate_groups, one.duplicate_groups);
  EXPECT_EQ(parts.files_small, one.files_small);
  // The same names share an inode either way.
  for (int i = 0; i < 120; ++i)
    for (int g = 2; g <= 3; ++g) {
      const std::string f = fmt::format("/g{}/usr/f{}", g, i),
                        first = fmt::format("/g1/usr/f{}", i);
      EXPECT_EQ(same_inode("a" + f, "a" + first), same_inode("b" + f, "b" + first)) << f;
    }
}

TEST_F(Pipeline, OneFileSystemWalksTheGuestButNotAMountInsideIt) {
  t.file("g1/usr/lib/a", vu::test::random_bytes(5000, 1));
  t.file("g2/usr/lib/a", vu::test::random_bytes(5000, 1));
  t.mkdirs("g1/mnt");
  t.mkdirs("g2/mnt");
  if (::mount("vunify-test", t.path("g1/mnt").c_str(), "tmpfs", 0, "size=1m") != 0)
    GTEST_SKIP() << "cannot mount a tmpfs: " << std::strerror(errno);
  t.file("g1/mnt/b", vu::test::random_bytes(5000, 2));
  t.file("g2/mnt/b", vu::test::random_bytes(5000, 2));
  UnifyOptions o;
  o.one_file_system = true;
  Report r = run({"g1", "g2"}, o);
  ::umount2(t.path("g1/mnt").c_str(), MNT_DETACH);
  EXPECT_FALSE(r.failed());
  EXPECT_EQ(r.files_scanned, 3u) << "both a (nested directories) and g2's b; not g1's mount";
  EXPECT_EQ(r.files_linked, 1u);
  EXPECT_EQ(inode_of(t.path("g1/usr/lib/a")), inode_of(t.path("g2/usr/lib/a")));
}
