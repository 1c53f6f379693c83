// The store run at library level: collisions, the cache, garbage.
#include "kernel/fs.h"
#include "tests/support/attr_backends.h"
#include "tests/support/temp_tree.h"
#include "unify/hashify.h"
#include "unify/store.h"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <fcntl.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <thread>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <functional>
#include <memory>

using namespace vu;
using vu::test::inode_of;
using vu::test::TempTree;

namespace {

class Hashify : public ::testing::Test {
protected:
  Report run(const std::vector<std::string>& names, HashifyOptions o = {}) {
    std::vector<UnifyGuest> gs;
    for (const auto& n : names) {
      UnifyGuest u;
      u.guest = Guest{n, t.path(n), {}};
      gs.push_back(std::move(u));
    }
    o.store = t.path(".hash");
    if (o.threads == 0) o.threads = 2;
    auto r = run_hashify(gs, o);
    EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().message());
    return r.ok() ? *r : Report{};
  }
  std::vector<std::string> entries() {
    std::vector<std::string> out;
    for (auto& e : std::filesystem::recursive_directory_iterator(t.path(".hash")))
      if (e.is_regular_file() && e.path().filename().string()[0] != '.')
        out.push_back(e.path().lexically_relative(t.path(".hash")).string());
    std::sort(out.begin(), out.end());
    return out;
  }
  TempTree t;
};

} // namespace

TEST_F(Hashify, CollisionsGetTheirOwnEntryDecidedByBytes) {
  // Same size and metadata, different content; all hashes forced equal.
  for (const char* g : {"g1", "g2"}) {
    t.file(std::string(g) + "/usr/a", vu::test::random_bytes(5000, 1));
    t.file(std::string(g) + "/usr/b", vu::test::random_bytes(5000, 2));
  }
  HashifyOptions o;
  o.hash_hook = [](const Hash128&) { return Hash128{42, 42}; };
  Report r = run({"g1", "g2"}, o);
  EXPECT_FALSE(r.failed());
  auto es = entries();
  ASSERT_EQ(es.size(), 2u);
  EXPECT_NE(es[0].find("-0"), std::string::npos);
  EXPECT_EQ(es[0].substr(0, es[0].size() - 1), es[1].substr(0, es[1].size() - 1))
      << "same key, collision index 0 and 1";
  EXPECT_EQ(inode_of(t.path("g1/usr/a")), inode_of(t.path("g2/usr/a")));
  EXPECT_EQ(inode_of(t.path("g1/usr/b")), inode_of(t.path("g2/usr/b")));
  EXPECT_NE(inode_of(t.path("g1/usr/a")), inode_of(t.path("g1/usr/b")));
  EXPECT_EQ(t.read("g2/usr/b"), vu::test::random_bytes(5000, 2));
  // A third guest with b only: matched to the right colliding entry.
  t.file("g3/usr/b", vu::test::random_bytes(5000, 2));
  Report r3 = run({"g1", "g2", "g3"}, o);
  EXPECT_EQ(r3.store_entries_created, 0u);
  EXPECT_EQ(inode_of(t.path("g3/usr/b")), inode_of(t.path("g1/usr/b")));
}

TEST_F(Hashify, EditedInPlaceIsFoundThroughCtime) {
  for (int i = 0; i < 5; ++i)
    t.file("g1/usr/f" + std::to_string(i), vu::test::random_bytes(3000, i));
  t.mkdirs(".hash"); // a dry run never creates the store...
  HashifyOptions o;
  o.dry_run = true;       // ... nor its cache, but refreshes one that is there
  o.cache_min_age_ns = 0; // (the guard has its own test)
  EXPECT_EQ(run({"g1"}, o).files_hashed, 5u);
  EXPECT_NE(::access(t.path(".hash/.cache").c_str(), F_OK), 0) << "a dry run made the cache";
  EXPECT_NE(::access(t.path(".hash/.lock").c_str(), F_OK), 0) << "a dry run made the lock";
  t.file(".hash/.cache", ""); // damaged: replaced
  Report first = run({"g1"}, o);
  EXPECT_EQ(first.files_hashed, 5u);
  Report second = run({"g1"}, o);
  EXPECT_EQ(second.files_hashed, 0u);
  EXPECT_EQ(second.cache_hits, 5u);
  // Same size, same mtime afterwards: only ctime tells.
  struct stat before {};
  ::stat(t.path("g1/usr/f2").c_str(), &before);
  std::string edited = vu::test::random_bytes(3000, 99);
  t.write("g1/usr/f2", edited);
  struct timespec ts[2] = {before.st_atim, before.st_mtim};
  ASSERT_EQ(::utimensat(AT_FDCWD, t.path("g1/usr/f2").c_str(), ts, 0), 0);
  Report third = run({"g1"}, o);
  EXPECT_EQ(third.files_hashed, 1u);
  EXPECT_EQ(third.bytes_hashed, 3000u);
  EXPECT_EQ(third.cache_hits, 4u);
}

TEST_F(Hashify, YoungFilesAreHashedAgain) {
  t.file("g1/usr/f", vu::test::random_bytes(3000, 1));
  HashifyOptions o;
  o.dry_run = true; // default age guard: 2 s
  EXPECT_EQ(run({"g1"}, o).files_hashed, 1u);
  EXPECT_EQ(run({"g1"}, o).files_hashed, 1u) << "changed less than 2 s before it was hashed";
}

TEST_F(Hashify, GarbageCollectionKeepsWhatGuestsLink) {
  for (const char* g : {"g1", "g2"}) {
    t.file(std::string(g) + "/usr/shared", vu::test::random_bytes(4000, 1));
  }
  t.file("g1/usr/only", vu::test::random_bytes(4000, 2));
  run({"g1", "g2"});
  ASSERT_EQ(entries().size(), 2u);
  // The guest's last link goes (de-unify, then delete).
  ASSERT_EQ(vu::test::sh("chattr -i " + t.path("g1/usr/only") + " && rm " + t.path("g1/usr/only")),
            0);
  HashifyOptions o;
  o.store = t.path(".hash");
  auto gc = run_store_gc(o);
  ASSERT_TRUE(gc.ok());
  EXPECT_EQ(gc->store_entries_removed, 1u);
  auto es = entries();
  ASSERT_EQ(es.size(), 1u);
  EXPECT_EQ(inode_of(t.path(".hash/" + es[0])), inode_of(t.path("g2/usr/shared")));
}

TEST_F(Hashify, StoreLockIsExclusive) {
  t.file("g1/usr/f", vu::test::random_bytes(3000, 1));
  run({"g1"});
  int fd = ::open(t.path(".hash/.lock").c_str(), O_RDWR);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::flock(fd, LOCK_EX), 0);
  std::vector<UnifyGuest> gs(1);
  gs[0].guest = Guest{"g1", t.path("g1"), {}};
  HashifyOptions o;
  o.store = t.path(".hash");
  o.wait_for_lock = false;
  auto busy = run_hashify(gs, o);
  ASSERT_FALSE(busy.ok());
  EXPECT_EQ(busy.code(), EWOULDBLOCK);
  bool waited = false;
  o.wait_for_lock = true;
  o.on_lock_wait = [&](const std::string&, const std::string&) { waited = true; };
  std::thread release([&] {
    ::usleep(300000);
    ::close(fd);
  });
  auto later = run_hashify(gs, o);
  release.join();
  EXPECT_TRUE(later.ok());
  EXPECT_TRUE(waited);
}

namespace {

// Every store entry's content hashes (seed 0) to the hash in its name.
bool entries_match_names(TempTree& t, const std::vector<std::string>& es) {
  for (const auto& e : es) {
    auto key = parse_store_entry(e);
    if (!key) return false;
    int fd = ::open(t.path(".hash/" + e).c_str(), O_RDONLY | O_CLOEXEC);
    struct stat st {};
    ::fstat(fd, &st);
    uint64_t n = 0;
    auto h = hash_fd(fd, st.st_size, 0, &n);
    ::close(fd);
    if (!h.ok() || *h != key->first.hash) return false;
  }
  return true;
}

} // namespace

TEST_F(Hashify, AFirstRunMakesGuestInodesTheEntriesWithoutCopies) {
  t.file("g1/usr/a", vu::test::random_bytes(300000, 1));
  t.file("g2/usr/a", vu::test::random_bytes(300000, 1));
  t.file("g2/usr/own", vu::test::random_bytes(7000, 2));
  const auto a1 = inode_of(t.path("g1/usr/a"));
  const auto own = inode_of(t.path("g2/usr/own"));
  const uint64_t g2a = vu::test::allocated_of(t.path("g2/usr/a"));
  Report r = run({"g1", "g2"});
  EXPECT_FALSE(r.failed());
  EXPECT_EQ(r.store_entries_created, 2u);
  EXPECT_EQ(r.files_linked, 3u);
  auto es = entries();
  ASSERT_EQ(es.size(), 2u);
  EXPECT_TRUE(entries_match_names(t, es));
  // The first guest's inodes are the entries: no copy was made.
  EXPECT_EQ(inode_of(t.path("g1/usr/a")), a1);
  EXPECT_EQ(inode_of(t.path("g2/usr/a")), a1);
  EXPECT_EQ(inode_of(t.path("g2/usr/own")), own);
  EXPECT_TRUE(vu::test::is_immutable_path(t.path("g2/usr/own")));
  EXPECT_TRUE(vu::test::is_immutable_path(t.path("g1/usr/a")));
  EXPECT_EQ(r.bytes_saved, g2a) << "nothing copied: the saving is g2's copy of a";
  // Every byte read once to hash it, and the entries once more (the proof
  // they did not change), plus the comparison before the link.
  EXPECT_LE(r.bytes_hashed + r.bytes_compared, 2u * (600000 + 7000) + 2u * 300000);
  EXPECT_EQ(t.read("g2/usr/own"), vu::test::random_bytes(7000, 2));
}

TEST_F(Hashify, AFirstRunJoinsOnlyFilesWhoseXattrsAndMtimeAreTheEntrysToo) {
  // One content in five guests: g1 and g3 alike, g2 with another value of
  // the same xattr, g4 without it, g5 alike but another mtime. Joining an
  // entry adopted in the same run opens nothing (the secret-seed hashes of
  // content and xattrs decide), so this is what keeps the others apart.
  t.build("f g1/usr/f @4000:3 x:user.tag=a\nf g2/usr/f @4000:3 x:user.tag=b\n"
          "f g3/usr/f @4000:3 x:user.tag=a\nf g4/usr/f @4000:3\n"
          "f g5/usr/f @4000:3 x:user.tag=a\n");
  struct timespec later[2] = {{0, UTIME_OMIT}, {1700000000, 0}};
  ASSERT_EQ(::utimensat(AT_FDCWD, t.path("g5/usr/f").c_str(), later, 0), 0);
  Report r = run({"g1", "g2", "g3", "g4", "g5"});
  EXPECT_FALSE(r.failed());
  EXPECT_EQ(inode_of(t.path("g3/usr/f")), inode_of(t.path("g1/usr/f")));
  for (const char* g : {"g2", "g4", "g5"})
    EXPECT_NE(inode_of(t.path(std::string(g) + "/usr/f")), inode_of(t.path("g1/usr/f"))) << g;
  EXPECT_EQ(r.store_entries_created, 4u); // a (g1, g3), b, none, a with g5's mtime
  EXPECT_EQ(r.files_linked, 5u);
  EXPECT_TRUE(entries_match_names(t, entries()));
}

TEST_F(Hashify, XattrListsWhoseNameHashesCollideStayApart) {
  // The entry names' xattr hash is XXH3 without a seed, which a guest can
  // make collide: forced here. The secret-seed hash of the lists still
  // tells them apart.
  t.build("f g1/usr/f @4000:3 x:user.tag=a\nf g2/usr/f @4000:3 x:user.tag=b\n"
          "f g3/usr/f @4000:3 x:user.tag=a\n");
  HashifyOptions o;
  o.xattrs_hook = [](uint64_t) { return uint64_t(7); };
  Report r = run({"g1", "g2", "g3"}, o);
  EXPECT_FALSE(r.failed());
  EXPECT_EQ(inode_of(t.path("g3/usr/f")), inode_of(t.path("g1/usr/f")));
  EXPECT_NE(inode_of(t.path("g2/usr/f")), inode_of(t.path("g1/usr/f")));
  EXPECT_EQ(r.store_entries_created, 2u); // one key, collision indices 0 and 1
}

TEST_F(Hashify, AFileOpenForWritingIsNeverTheEntry) {
  t.file("g1/usr/w", vu::test::random_bytes(9000, 3));
  t.file("g2/usr/w", vu::test::random_bytes(9000, 3));
  const auto w1 = inode_of(t.path("g1/usr/w"));
  int writer = ::open(t.path("g1/usr/w").c_str(), O_WRONLY | O_CLOEXEC);
  ASSERT_GE(writer, 0);
  Report r = run({"g1", "g2"});
  // g1's file stays its own and writable; g2's goes to a copy in the store.
  EXPECT_EQ(inode_of(t.path("g1/usr/w")), w1);
  EXPECT_FALSE(vu::test::is_immutable_path(t.path("g1/usr/w")));
  EXPECT_EQ(::pwrite(writer, "written", 7, 0), 7);
  ::close(writer);
  EXPECT_EQ(t.read("g1/usr/w").substr(0, 7), "written");
  EXPECT_EQ(t.read("g2/usr/w"), vu::test::random_bytes(9000, 3));
  EXPECT_NE(inode_of(t.path("g2/usr/w")), w1);
  EXPECT_TRUE(entries_match_names(t, entries()));
  EXPECT_EQ(r.skipped[Skip::busy], 1u);
}

TEST_F(Hashify, AFileChangedAfterItsHashIsNeverTheEntry) {
  t.file("g1/usr/c", vu::test::random_bytes(9000, 4));
  t.file("g2/usr/c", vu::test::random_bytes(9000, 4));
  const std::string changed = vu::test::random_bytes(9000, 5);
  // A guest rewrites g1's file (same size) after both were hashed.
  std::atomic<int> calls{0};
  HashifyOptions o;
  o.threads = 1;
  o.hash_hook = [&](const Hash128& h) {
    if (calls.fetch_add(1) == 1) t.write("g1/usr/c", changed);
    return h;
  };
  Report r = run({"g1", "g2"}, o);
  EXPECT_EQ(t.read("g1/usr/c"), changed);
  EXPECT_EQ(t.read("g2/usr/c"), vu::test::random_bytes(9000, 4));
  EXPECT_FALSE(vu::test::is_immutable_path(t.path("g1/usr/c")));
  EXPECT_NE(inode_of(t.path("g1/usr/c")), inode_of(t.path("g2/usr/c")));
  EXPECT_TRUE(entries_match_names(t, entries()));
}

namespace {

// Whether the file system the tests run on gives every write a new ctime
// (ext4, XFS, btrfs): only there does a hash read prove an entry's content.
bool ctime_tells_writes(TempTree& t) {
  int fd = ::open(t.path("").c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  const bool yes = fd >= 0 && writes_always_change_ctime(fd);
  if (fd >= 0) ::close(fd);
  return yes;
}

// Writes `byte` at `offset` of `path` through a new shared mapping, then
// unmaps and closes it.
void write_through_mapping(const std::string& path, size_t offset, char byte) {
  int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  auto* m =
      static_cast<char*>(::mmap(nullptr, offset + 1, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0));
  ASSERT_NE(m, MAP_FAILED);
  m[offset] = byte;
  ::munmap(m, offset + 1);
  ::close(fd);
}

// Options for a run on one worker whose files count as old (their hash
// read may prove them), with `act` run once both files were hashed.
HashifyOptions after_both_reads(std::function<void()> act) {
  HashifyOptions o;
  o.threads = 1;
  o.proof_min_age_ns = 0;
  auto calls = std::make_shared<std::atomic<int>>(0);
  o.hash_hook = [calls, act = std::move(act)](const Hash128& h) {
    if (calls->fetch_add(1) == 1) act();
    return h;
  };
  return o;
}

} // namespace

TEST_F(Hashify, AnOldFilesHashReadIsItsProofAndItIsNotReadAgain) {
  if (!ctime_tells_writes(t)) GTEST_SKIP() << "the test directory is not on ext4, XFS or btrfs";
  t.file("g1/usr/a", vu::test::random_bytes(300000, 1));
  t.file("g2/usr/a", vu::test::random_bytes(300000, 1));
  t.file("g2/usr/own", vu::test::random_bytes(7000, 2));
  const auto a1 = inode_of(t.path("g1/usr/a"));
  HashifyOptions o;
  o.proof_min_age_ns = 0; // the files count as old
  Report r = run({"g1", "g2"}, o);
  EXPECT_FALSE(r.failed());
  EXPECT_EQ(r.store_entries_created, 2u);
  EXPECT_TRUE(entries_match_names(t, entries()));
  EXPECT_EQ(inode_of(t.path("g2/usr/a")), a1);
  EXPECT_TRUE(vu::test::is_immutable_path(t.path("g2/usr/own")));
  // Each byte hashed once; compared only for the link of g2's a.
  EXPECT_EQ(r.bytes_hashed, 607000u);
  EXPECT_EQ(r.bytes_compared, 600000u) << "no entry was read a second time";
}

TEST_F(Hashify, AWriteThroughANewMappingAfterTheHashKeepsTheFileFromBeingTheEntry) {
  if (!ctime_tells_writes(t)) GTEST_SKIP() << "the test directory is not on ext4, XFS or btrfs";
  t.file("g1/usr/m", vu::test::random_bytes(9000, 8));
  t.file("g2/usr/m", vu::test::random_bytes(9000, 8));
  // After both reads (each proved its content): a guest process maps g1's
  // file and writes one byte, past the clock's granularity.
  Report r = run({"g1", "g2"}, after_both_reads([&] {
                   std::this_thread::sleep_for(std::chrono::milliseconds(50));
                   write_through_mapping(t.path("g1/usr/m"), 10, 'X');
                 }));
  const std::string g1 = t.read("g1/usr/m");
  EXPECT_EQ(g1[10], 'X');
  EXPECT_EQ(g1.substr(11), vu::test::random_bytes(9000, 8).substr(11));
  EXPECT_FALSE(vu::test::is_immutable_path(t.path("g1/usr/m")));
  EXPECT_NE(inode_of(t.path("g1/usr/m")), inode_of(t.path("g2/usr/m")));
  EXPECT_EQ(t.read("g2/usr/m"), vu::test::random_bytes(9000, 8));
  EXPECT_TRUE(entries_match_names(t, entries()));
}

TEST_F(Hashify, AWriterThatOpensAfterTheHashAndStaysIsNeverTheEntry) {
  if (!ctime_tells_writes(t)) GTEST_SKIP() << "the test directory is not on ext4, XFS or btrfs";
  t.file("g1/usr/o", vu::test::random_bytes(9000, 10));
  t.file("g2/usr/o", vu::test::random_bytes(9000, 10));
  const auto o1 = inode_of(t.path("g1/usr/o"));
  // After both reads (each proved its content, no writer before it): a
  // guest process opens g1's file for writing and keeps it open, without
  // writing yet. No check follows the read; adopt_entry's lease sees it.
  int writer = -1;
  Report r = run({"g1", "g2"}, after_both_reads([&] {
                   writer = ::open(t.path("g1/usr/o").c_str(), O_RDWR | O_CLOEXEC);
                 }));
  ASSERT_GE(writer, 0);
  EXPECT_EQ(inode_of(t.path("g1/usr/o")), o1);
  EXPECT_FALSE(vu::test::is_immutable_path(t.path("g1/usr/o")));
  EXPECT_NE(inode_of(t.path("g2/usr/o")), o1);
  EXPECT_EQ(::pwrite(writer, "written", 7, 0), 7);
  ::close(writer);
  EXPECT_EQ(t.read("g1/usr/o").substr(0, 7), "written");
  EXPECT_EQ(t.read("g2/usr/o"), vu::test::random_bytes(9000, 10));
  EXPECT_TRUE(entries_match_names(t, entries()));
}

TEST_F(Hashify, AMappingWrittenAcrossTheHashKeepsTheFileFromBeingTheEntry) {
  t.file("g1/usr/w", vu::test::random_bytes(9000, 9));
  t.file("g2/usr/w", vu::test::random_bytes(9000, 9));
  // A guest process mapped g1's file for writing before the run and
  // writes through that mapping (no new ctime) while the run hashes, then
  // unmaps it before the run makes its entries.
  int fd = ::open(t.path("g1/usr/w").c_str(), O_RDWR | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  auto* m = static_cast<char*>(::mmap(nullptr, 9000, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0));
  ASSERT_NE(m, MAP_FAILED);
  ::close(fd);
  volatile char* page = m;
  page[0] = page[0]; // a real write: the page is writable from now on
  const std::string before = vu::test::random_bytes(9000, 9);
  Report r = run({"g1", "g2"}, after_both_reads([&] {
                   m[1] = static_cast<char>(m[1] ^ 0x55);
                   ::munmap(m, 9000);
                 }));
  const std::string g1 = t.read("g1/usr/w");
  EXPECT_EQ(g1[1], static_cast<char>(before[1] ^ 0x55));
  EXPECT_FALSE(vu::test::is_immutable_path(t.path("g1/usr/w")));
  EXPECT_NE(inode_of(t.path("g1/usr/w")), inode_of(t.path("g2/usr/w")));
  EXPECT_EQ(t.read("g2/usr/w"), before);
  EXPECT_TRUE(entries_match_names(t, entries()));
}

TEST_F(Hashify, AFileWhoseModeChangesAfterItsHashIsNeverTheEntry) {
  // A guest's root changes the mode of g1's file after it was hashed (a
  // lease keeps writers out, not chmod). The key holds the scanned mode:
  // g1's file is not that version any more and is left alone, and no
  // entry of the key gets the new mode - g2's file keeps its own.
  t.file("g1/usr/m", vu::test::random_bytes(9000, 12));
  t.file("g2/usr/m", vu::test::random_bytes(9000, 12));
  ASSERT_EQ(::chmod(t.path("g2/usr/m").c_str(), 0644), 0);
  ASSERT_EQ(::chmod(t.path("g1/usr/m").c_str(), 0644), 0);
  HashifyOptions o;
  o.threads = 1;
  auto calls = std::make_shared<std::atomic<int>>(0);
  o.hash_hook = [&, calls](const Hash128& h) {
    if (calls->fetch_add(1) == 1) {
      EXPECT_EQ(::chmod(t.path("g1/usr/m").c_str(), 0600), 0);
    }
    return h;
  };
  Report r = run({"g1", "g2"}, o);
  struct stat st {};
  ASSERT_EQ(::stat(t.path("g2/usr/m").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0644u);
  ASSERT_EQ(::stat(t.path("g1/usr/m").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  EXPECT_FALSE(vu::test::is_immutable_path(t.path("g1/usr/m")));
  EXPECT_NE(inode_of(t.path("g1/usr/m")), inode_of(t.path("g2/usr/m")));
  EXPECT_TRUE(entries_match_names(t, entries()));
  for (const auto& e : entries()) {
    ASSERT_EQ(::stat(t.path(".hash/" + e).c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 07777, 0644u) << e;
  }
}

TEST_F(Hashify, AModeChangedJustBeforeAnEntryIsFrozenKeepsItOutOfTheStore) {
  // g1's file is adopted as the entry; its root makes it setuid between
  // the last check and the freeze. Its key says mode 0755: g1's file is
  // left to g1 (as changed), g2's becomes the entry, and no name gets the
  // setuid bit it did not have.
  t.file("g1/usr/s", vu::test::random_bytes(9000, 13));
  t.file("g2/usr/s", vu::test::random_bytes(9000, 13));
  for (const char* g : {"g1/usr/s", "g2/usr/s"}) ASSERT_EQ(::chmod(t.path(g).c_str(), 0755), 0);
  vu::test::ChmodBeforeFreeze backend;
  HashifyOptions o;
  o.threads = 1;
  o.attrs = &backend;
  Report r = run({"g1", "g2"}, o);
  ASSERT_TRUE(backend.done);
  struct stat st {};
  ASSERT_EQ(::stat(t.path("g1/usr/s").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 04755u);
  EXPECT_FALSE(vu::test::is_immutable_path(t.path("g1/usr/s")));
  ASSERT_EQ(::stat(t.path("g2/usr/s").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0755u);
  EXPECT_NE(inode_of(t.path("g1/usr/s")), inode_of(t.path("g2/usr/s")));
  EXPECT_EQ(r.store_entries_created, 1u);
  EXPECT_TRUE(entries_match_names(t, entries()));
  for (const auto& e : entries()) {
    ASSERT_EQ(::stat(t.path(".hash/" + e).c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 07777, 0755u) << e;
  }
}

TEST_F(Hashify, ARunInSizeRangesMakesTheStoreAndCacheOfOneRun) {
  for (const char* copy : {"a", "b"})
    for (int g = 1; g <= 3; ++g)
      for (int i = 0; i < 60; ++i) {
        const size_t size = 16 + (i * 7919) % 200000;
        const uint64_t seed = (g == 3 && i % 7 == 0) ? 5000 + i : i;
        t.file(fmt::format("{}/g{}/usr/f{}", copy, g, i), vu::test::random_bytes(size, seed));
      }
  auto hashify = [&](const std::string& copy, uint64_t memory_limit) {
    std::vector<UnifyGuest> gs;
    for (int g = 1; g <= 3; ++g) {
      UnifyGuest u;
      u.guest = Guest{fmt::format("g{}", g), t.path(fmt::format("{}/g{}", copy, g)), {}};
      gs.push_back(std::move(u));
    }
    HashifyOptions o;
    o.store = t.path(copy + "/.hash");
    o.threads = 2;
    o.memory_limit = memory_limit;
    auto r = run_hashify(gs, o);
    EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().message());
    return r.ok() ? *r : Report{};
  };
  auto store_names = [&](const std::string& copy) {
    std::vector<std::string> out;
    for (auto& e : std::filesystem::recursive_directory_iterator(t.path(copy + "/.hash")))
      if (e.is_regular_file() && e.path().filename().string()[0] != '.')
        out.push_back(e.path().lexically_relative(t.path(copy + "/.hash")).string());
    std::sort(out.begin(), out.end());
    return out;
  };
  Report one = hashify("a", 0);
  Report parts = hashify("b", 20'000); // about twenty files a range
  EXPECT_EQ(one.parts, 1u);
  EXPECT_GT(parts.parts, 3u);
  EXPECT_FALSE(parts.failed());
  for (auto field : {&Report::files_scanned, &Report::bytes_scanned, &Report::files_hashed,
                     &Report::bytes_hashed, &Report::files_linked, &Report::bytes_saved,
                     &Report::store_entries_created})
    EXPECT_EQ(parts.*field, one.*field);
  const auto names = store_names("b");
  EXPECT_EQ(names, store_names("a"));
  for (const auto& n : names) {
    auto key = parse_store_entry(n);
    ASSERT_TRUE(key.has_value()) << n;
    int fd = ::open(t.path("b/.hash/" + n).c_str(), O_RDONLY | O_CLOEXEC);
    ASSERT_GE(fd, 0) << n;
    uint64_t len = 0;
    auto h = hash_fd(fd, std::filesystem::file_size(t.path("b/.hash/" + n)), 0, &len);
    ::close(fd);
    ASSERT_TRUE(h.ok()) << n;
    EXPECT_EQ(*h, key->first.hash) << n;
  }
  for (int i = 0; i < 60; ++i)
    for (int g = 2; g <= 3; ++g) {
      const std::string f = fmt::format("/g{}/usr/f{}", g, i),
                        first = fmt::format("/g1/usr/f{}", i);
      EXPECT_EQ(inode_of(t.path("a" + f)) == inode_of(t.path("a" + first)),
                inode_of(t.path("b" + f)) == inode_of(t.path("b" + first)))
          << f;
    }
  // Each range saved its own sizes' hashes and kept the others'.
  HashCache a, b;
  a.load(t.path("a/.hash/.cache"));
  b.load(t.path("b/.hash/.cache"));
  EXPECT_EQ(b.size(), a.size());
  EXPECT_EQ(b.size(), parts.files_hashed);
}

TEST_F(Hashify, OneFileSystemLeavesAMountInsideAGuestUnwalked) {
  t.file("g1/usr/a", vu::test::random_bytes(5000, 1));
  t.file("g2/usr/a", vu::test::random_bytes(5000, 1));
  t.mkdirs("g1/mnt");
  if (::mount("vunify-test", t.path("g1/mnt").c_str(), "tmpfs", 0, "size=1m") != 0)
    GTEST_SKIP() << "cannot mount a tmpfs: " << std::strerror(errno);
  t.file("g1/mnt/b", vu::test::random_bytes(5000, 2));
  HashifyOptions o;
  o.one_file_system = true;
  Report r = run({"g1", "g2"}, o);
  ::umount2(t.path("g1/mnt").c_str(), MNT_DETACH);
  EXPECT_FALSE(r.failed()) << "the file on the tmpfs was not even seen";
  EXPECT_EQ(r.files_scanned, 2u);
  EXPECT_EQ(r.store_entries_created, 1u);
}

TEST_F(Hashify, AnUnprotectedEntryWrittenSinceLosesItsStoreName) {
  // What a run killed between adopting g1's file and freezing it leaves,
  // after the guest wrote the file: a store name that no longer matches.
  const std::string was = vu::test::random_bytes(6000, 6);
  t.file("g1/usr/x", vu::test::random_bytes(6000, 7)); // written since
  t.file("g2/usr/x", was);
  t.file("probe", was);
  int pfd = ::open(t.path("probe").c_str(), O_RDONLY | O_CLOEXEC);
  uint64_t n = 0;
  StoreKey key;
  key.hash = *hash_fd(pfd, was.size(), 0, &n);
  ::close(pfd);
  struct stat st {};
  ASSERT_EQ(::stat(t.path("g1/usr/x").c_str(), &st), 0);
  key.mode = st.st_mode & 07777;
  key.uid = st.st_uid;
  key.gid = st.st_gid;
  const std::string name = store_entry_name(key, 0);
  t.mkdirs(".hash/" + name.substr(0, 2));
  ASSERT_EQ(::link(t.path("g1/usr/x").c_str(), t.path(".hash/" + name).c_str()), 0);
  std::filesystem::remove(t.path("probe"));
  Report r = run({"g1", "g2"});
  EXPECT_EQ(r.failures.count(Failure::store), 1u);
  EXPECT_FALSE(std::filesystem::exists(t.path(".hash/" + name)));
  EXPECT_TRUE(entries_match_names(t, entries()));
  // g2's file (the content the name says) got an entry of its own; g1's
  // is untouched, not linked to it.
  EXPECT_EQ(t.read("g1/usr/x"), vu::test::random_bytes(6000, 7));
  EXPECT_EQ(t.read("g2/usr/x"), was);
  EXPECT_NE(inode_of(t.path("g1/usr/x")), inode_of(t.path("g2/usr/x")));
}
