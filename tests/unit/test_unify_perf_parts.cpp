// The parts added for speed: the reaper that frees replaced inodes off the
// linking threads, the one-read comparison against a small canonical's
// bytes, and the worker counts.
#include "unify/hash.h"
#include "unify/reaper.h"
#include "unify/workers.h"
#include "tests/unit/temp_tree.h"

#include <gtest/gtest.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <mutex>
#include <thread>
#include <vector>

using namespace vu;
using vu::test::TempTree;

namespace {

bool is_open(int fd) { return ::fcntl(fd, F_GETFD) != -1; }

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
