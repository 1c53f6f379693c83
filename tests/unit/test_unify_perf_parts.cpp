// The parts added for speed: the reaper that frees replaced inodes off the
// linking threads, the one-read comparison against a small canonical's
// bytes, the worker counts, and the opener that re-uses parent directories.
#include "tests/support/temp_tree.h"
#include "unify/hash.h"
#include "unify/passes.h"
#include "unify/reaper.h"
#include "unify/unify.h"
#include "unify/workers.h"

#include <gtest/gtest.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <functional>
#include <mutex>
#include <numeric>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

using namespace vu;
using vu::test::TempTree;

namespace {

bool is_open(int fd) {
  return ::fcntl(fd, F_GETFD) != -1;
}

// An unlinked file of `size` bytes held open only by the returned fd.
UniqueFd orphan(TempTree& t, const std::string& name, size_t size) {
  t.file(name, vu::test::random_bytes(size, 9));
  UniqueFd fd(::open(t.path(name).c_str(), O_RDONLY | O_CLOEXEC));
  EXPECT_GE(fd.get(), 0);
  EXPECT_EQ(::unlink(t.path(name).c_str()), 0);
  return fd;
}

} // namespace

TEST(Reaper, ClosesEverythingGivenBeforeFinishReturns) {
  TempTree t;
  std::vector<int> raw;
  {
    Reaper r(2, 3); // tiny queue: givers block and resume
    std::vector<std::thread> givers;
    std::mutex m;
    for (int k = 0; k < 4; ++k)
      givers.emplace_back([&, k] {
        for (int i = 0; i < 25; ++i) {
          UniqueFd fd = orphan(t, "f" + std::to_string(k) + "-" + std::to_string(i), 8192);
          {
            std::lock_guard lock(m);
            raw.push_back(fd.get());
          }
          r.give(std::move(fd));
        }
      });
    for (auto& g : givers) g.join();
    r.finish();
    // Every descriptor given is closed (numbers are not reused meanwhile:
    // nothing else opens files in this test after the givers are done).
    for (int fd : raw) EXPECT_FALSE(is_open(fd)) << fd;
    // After finish, give() closes at once.
    UniqueFd late = orphan(t, "late", 100);
    int n = late.get();
    r.give(std::move(late));
    EXPECT_FALSE(is_open(n));
  }
}

TEST(Reaper, TakesTheLastReferenceOfAnUnlinkedInode) {
  TempTree t;
  UniqueFd fd = orphan(t, "big", 4 << 20);
  struct stat st {};
  ASSERT_EQ(::fstat(fd.get(), &st), 0);
  EXPECT_EQ(st.st_nlink, 0u);
  EXPECT_GT(st.st_blocks, 0);
  Reaper r;
  int n = fd.get();
  r.give(std::move(fd));
  r.finish();
  EXPECT_FALSE(is_open(n)); // the last reference: the kernel frees the inode now
}

// The link pass hands replaced inodes to the reaper only on a file system
// mounted to trim on freeing; elsewhere it closes them itself. Either way
// every replaced inode is freed before the run returns, and a mount's
// options are read from mountinfo (ext4 here: "discard" or none).
TEST(Reaper, OnlyWhereTheMountTrimsAndEitherWayEveryReplacedInodeIsFreed) {
  if (vu::test::sh("command -v mkfs.ext4 >/dev/null") != 0) GTEST_SKIP() << "no mkfs.ext4";
  TempTree t;
  for (const std::string options : {"discard", "nodiscard"}) {
    const std::string img = t.path(options + ".img"), root = t.path(options);
    t.mkdirs(options);
    ASSERT_EQ(
        vu::test::sh("truncate -s 32M " + img + " && mkfs.ext4 -q -F " + img + " >/dev/null 2>&1"),
        0);
    auto mnt = vu::test::ScopedMount::loop_image(img, root, options);
    if (!mnt.ok()) GTEST_SKIP() << "no loop devices";
    std::vector<UnifyGuest> gs;
    for (const char* g : {"g1", "g2", "g3"}) {
      for (int i = 0; i < 20; ++i)
        t.file(options + "/" + g + "/f" + std::to_string(i),
               vu::test::random_bytes(40000, static_cast<uint64_t>(i)));
      UnifyGuest u;
      u.guest = Guest{g, root + "/" + g, {}};
      gs.push_back(std::move(u));
    }
    struct stat st {};
    ASSERT_EQ(::stat(root.c_str(), &st), 0);
    EXPECT_EQ(trims_when_freeing(st.st_dev), options == "discard") << options;
    const uint64_t before = vu::test::used_bytes(root);
    UnifyOptions o;
    o.threads = 2;
    auto r = run_unify(gs, o);
    ASSERT_TRUE(r.ok()) << r.error().message();
    EXPECT_EQ(r->files_linked, 40u) << options;
    EXPECT_EQ(r->bytes_saved, 40u * vu::test::allocated_of(root + "/g1/f0")) << options;
    // Freed before the run returned: the blocks are free now.
    EXPECT_GE(before - vu::test::used_bytes(root), r->bytes_saved) << options;
    vu::test::sh("chattr -R -f -i " + root);
    mnt.unmount();
  }
  EXPECT_FALSE(trims_when_freeing(0)) << "a device no mount has";
}

TEST(SameAsBytes, EqualShorterLongerAndDifferent) {
  TempTree t;
  for (size_t len : {size_t{0}, size_t{1}, size_t{4096}, size_t{100000}, size_t(k_small_file)}) {
    std::string bytes = vu::test::random_bytes(len, 3);
    t.file("same", bytes);
    t.file("longer", bytes + "x");
    t.file("shorter", len ? bytes.substr(0, len - 1) : std::string());
    std::string diff = bytes;
    if (len) diff[len / 2] ^= 1;
    t.file("diff", diff);
    auto check = [&](const char* name) {
      UniqueFd fd(::open(t.path(name).c_str(), O_RDONLY | O_CLOEXEC));
      auto r = same_as_bytes(fd.get(), bytes.data(), bytes.size());
      EXPECT_TRUE(r.ok());
      return r.ok() && *r;
    };
    EXPECT_TRUE(check("same")) << len;
    EXPECT_FALSE(check("longer")) << len;
    if (len) {
      EXPECT_FALSE(check("shorter")) << len;
      EXPECT_FALSE(check("diff")) << len;
    }
  }
  UniqueFd fd(::open(t.path("same").c_str(), O_RDONLY | O_CLOEXEC));
  std::string big(k_small_file + 1, 'a');
  EXPECT_FALSE(same_as_bytes(fd.get(), big.data(), big.size()).ok()); // refuses, never overflows
}

TEST(HashFdTwice, BothHashesAreThoseOfTwoSeparateReads) {
  TempTree t;
  for (size_t len : {size_t{0}, size_t{100}, size_t{65536}, size_t{1000003}}) {
    t.file("f", vu::test::random_bytes(len, 9));
    UniqueFd fd(::open(t.path("f").c_str(), O_RDONLY | O_CLOEXEC));
    uint64_t n = 0, n0 = 0, n1 = 0;
    auto two = hash_fd_twice(fd.get(), len, 0, 12345, &n);
    auto a = hash_fd(fd.get(), len, 0, &n0);
    auto b = hash_fd(fd.get(), len, 12345, &n1);
    ASSERT_TRUE(two.ok() && a.ok() && b.ok());
    EXPECT_EQ(two->a, *a) << len; // the store's names must not change
    EXPECT_EQ(two->b, *b) << len;
    EXPECT_EQ(n, len);
    EXPECT_NE(two->a, two->b);
  }
}

TEST(Workers, DefaultsKeepReadsInFlightAndLinkOnTheCores) {
  EXPECT_EQ(worker_threads(3), 3u);
  uint32_t w = worker_threads(0);
  EXPECT_GE(w, 8u);
  EXPECT_LE(w, 32u);
  EXPECT_EQ(cpu_threads(1), 1u);
  EXPECT_LE(cpu_threads(w), std::max(1u, std::thread::hardware_concurrency()));
  EXPECT_GE(cpu_threads(w), 1u);
  // with_workers returns what the function returns.
  EXPECT_EQ(with_workers(4, [] { return 42; }), 42);
}

// InodeOpener: files opened relative to a cached parent directory must be
// exactly the scanned inodes, and hostile changes after the scan refused.
namespace {

struct OpenerFixture {
  TempTree t;
  UnifyOptions options;
  std::unique_ptr<RunContext> rc;

  explicit OpenerFixture(const std::string& spec) {
    t.build(spec);
    UnifyGuest g;
    g.guest.name = "g";
    g.guest.root = t.root();
    options.min_size = 1;
    options.dry_run = true; // no locks: the test only opens
    auto opened = RunContext::open({g}, options);
    EXPECT_TRUE(opened.ok()) << opened.error().message();
    rc = std::move(*opened);
    ScanOptions so;
    so.min_size = 1;
    scan_pass(*rc, {}, so);
    inodes_pass(*rc, {});
  }
  const std::vector<InodeRec>& inodes() const { return rc->inodes; }
  // Index of the inode whose first name is `path`.
  uint32_t inode_of(const std::string& path) const {
    for (uint32_t i = 0; i < rc->inodes.size(); ++i)
      if (rc->scan.files[rc->names_of(rc->inodes[i]).front()].path.view() == path) return i;
    ADD_FAILURE() << "not scanned: " << path;
    return 0;
  }
  uint64_t changed() {
    Report r;
    rc->log.drain_into(r);
    return r.skipped.count(Skip::changed) ? r.skipped.at(Skip::changed) : 0;
  }
};

std::string read_all(int fd) {
  std::string s(4096, '\0');
  ssize_t n = ::pread(fd, s.data(), s.size(), 0);
  s.resize(n < 0 ? 0 : static_cast<size_t>(n));
  return s;
}

} // namespace

TEST(InodeOpener, OpensEveryScannedFileInPathOrder) {
  OpenerFixture f("f top one\nd a\nf a/x two\nf a/y three\nd a/b\nf a/b/z four\nd c\nf c/w five\n");
  std::vector<uint32_t> idx(f.inodes().size());
  std::iota(idx.begin(), idx.end(), 0);
  std::reverse(idx.begin(), idx.end());
  sort_by_path(*f.rc, idx);
  InodeOpener opener(*f.rc);
  std::vector<std::string> got;
  for (uint32_t i : idx) {
    auto fd = opener.open(f.inodes()[i]);
    ASSERT_TRUE(fd.ok()) << fd.error().message();
    auto st = stat_fd(fd->get());
    ASSERT_TRUE(st.ok());
    EXPECT_TRUE(st->same_version(*f.inodes()[i].st));
    got.push_back(read_all(fd->get()));
  }
  EXPECT_EQ(got, (std::vector<std::string>{"four", "two", "three", "five", "one"}));
  EXPECT_EQ(f.changed(), 0u);

  // An index listed twice keeps both (sorted the slow way).
  std::vector<uint32_t> twice{idx[3], idx[0], idx[3], idx[1]};
  sort_by_path(*f.rc, twice);
  EXPECT_EQ(twice, (std::vector<uint32_t>{idx[0], idx[1], idx[3], idx[3]}));
}

TEST(InodeOpener, RefusesWhatChangedAfterTheScan) {
  OpenerFixture f("d a\nf a/link-me secret\nf a/replace-me old\nd b\nf b/under-symlink x\n"
                  "d outside\nf outside/under-symlink x\n");
  uint32_t link_me = f.inode_of("a/link-me");
  uint32_t replace_me = f.inode_of("a/replace-me");
  uint32_t under = f.inode_of("b/under-symlink");
  // A guest swaps in a symlink to a host file, a new file under the same
  // name, and turns a directory into a symlink to another directory.
  ASSERT_EQ(::unlink(f.t.path("a/link-me").c_str()), 0);
  ASSERT_EQ(::symlink("/etc/hostname", f.t.path("a/link-me").c_str()), 0);
  ASSERT_EQ(::unlink(f.t.path("a/replace-me").c_str()), 0);
  f.t.file("a/replace-me", "new");
  ASSERT_EQ(::rename(f.t.path("b").c_str(), f.t.path("b-moved").c_str()), 0);
  ASSERT_EQ(::symlink("outside", f.t.path("b").c_str()), 0);

  InodeOpener opener(*f.rc);
  auto a = opener.open(f.inodes()[link_me]);
  EXPECT_FALSE(a.ok());
  EXPECT_EQ(a.code(), ELOOP);
  auto b = opener.open(f.inodes()[replace_me]);
  EXPECT_FALSE(b.ok());
  EXPECT_EQ(b.code(), ESTALE);
  auto c = opener.open(f.inodes()[under]);
  EXPECT_FALSE(c.ok());
  EXPECT_TRUE(c.code() == ELOOP || c.code() == ENOTDIR) << c.error().message();
  EXPECT_EQ(f.changed(), 3u);
}

TEST(PathInterner, KeepsOneCopyOfEachPathFromEveryThread) {
  EXPECT_EQ(vu::PathRef().view(), "");
  EXPECT_EQ(vu::PathRef().size(), 0u);
  vu::PathArena kept;
  std::vector<std::vector<vu::PathRef>> got(4);
  {
    vu::PathInterner interner;
    std::vector<std::thread> threads;
    for (size_t t = 0; t < got.size(); ++t) // four "guests" with the same 20,000 paths
      threads.emplace_back([&, t] {
        for (int i = 0; i < 20000; ++i)
          got[t].push_back(
              interner.add("usr/share/doc/package-" + std::to_string(i) + "/copyright"));
      });
    for (auto& th : threads) th.join();
    EXPECT_EQ(interner.add("").view(), "");
    kept = interner.take(); // the bytes outlive the interner
  }
  for (int i = 0; i < 20000; ++i) {
    const std::string want = "usr/share/doc/package-" + std::to_string(i) + "/copyright";
    for (size_t t = 0; t < got.size(); ++t) {
      ASSERT_EQ(got[t][i].view(), want);
      EXPECT_EQ(got[t][i].view().data(), got[0][i].view().data()); // one copy
    }
  }
  EXPECT_NE(got[0][0].view().data(), got[0][1].view().data());
}

TEST(FileRec, KeepsItsGuestInThePathsTagAndIs72Bytes) {
  static_assert(sizeof(FileRec) == 72);
  static_assert(sizeof(InodeRec) == 48);
  PathArena arena;
  PathRef p = arena.add("usr/bin/env");
  FileStat st;
  st.ino = 7;
  for (uint32_t g : {0u, 1u, 4242u, FileRec::k_max_guests}) {
    FileRec rec(g, p, st);
    EXPECT_EQ(rec.guest(), g);
    EXPECT_EQ(rec.path.view(), "usr/bin/env"); // the tag is no part of the path
    EXPECT_EQ(rec.path.size(), 11u);
    EXPECT_EQ(rec.path, p);
    EXPECT_EQ(rec.path.view().data(), p.view().data());
    EXPECT_EQ(rec.st.ino, 7u);
  }
  EXPECT_EQ(FileRec(3, PathRef(), st).path.view(), "");
  EXPECT_EQ(FileRec(3, PathRef(), st).guest(), 3u);
  // More guests than the tag holds (the store is one more) are refused
  // before anything is opened.
  std::vector<UnifyGuest> many(FileRec::k_max_guests);
  UnifyOptions options;
  options.dry_run = true;
  auto rc = RunContext::open(std::move(many), options);
  ASSERT_FALSE(rc.ok());
  EXPECT_EQ(rc.code(), E2BIG);
  EXPECT_NE(rc.error().message().find("at most 65534"), std::string::npos) << rc.error().message();
}

TEST(PathInterner, NamesCraftedToCollideAreKeptAgainNotSearchedForEver) {
  // A guest chooses its names: 40 that fall into one shard and one table
  // slot (found here by trying, as a guest could). The first 32 fill the
  // probe; the rest are stored again instead of probed further.
  std::vector<std::string> same;
  const auto h0 = std::hash<std::string_view>{}("usr/collide-0");
  for (uint64_t i = 0; same.size() < 40; ++i) {
    std::string name = "usr/collide-" + std::to_string(i);
    const auto h = std::hash<std::string_view>{}(name);
    if ((h >> 58) == (h0 >> 58) && (h & 1023) == (h0 & 1023)) same.push_back(name);
  }
  vu::PathInterner interner;
  std::vector<vu::PathRef> first;
  for (const auto& n : same) first.push_back(interner.add(n));
  for (size_t k = 0; k < same.size(); ++k) {
    vu::PathRef again = interner.add(same[k]);
    ASSERT_EQ(again.view(), same[k]);
    if (k < 32)
      EXPECT_EQ(again.view().data(), first[k].view().data()) << "found in the table";
    else
      EXPECT_NE(again.view().data(), first[k].view().data()) << "past the probe: kept again";
  }
}
