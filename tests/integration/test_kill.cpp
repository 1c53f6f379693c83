// kill -9 at random moments of every run that changes guests - vunify,
// vunify -R, vhashify, vhashify --gc - 200 kills in all: after each kill
// every name exists with its original content; the next run finishes the
// job, leaves no temporary name behind, and leaves shared inodes
// protected.
#include "tests/support/run_program.h"
#include "tests/support/temp_tree.h"

#include <gtest/gtest.h>
#include <xxhash.h>

#include <chrono>
#include <filesystem>
#include <fmt/format.h>
#include <fstream>
#include <functional>
#include <random>

using namespace vu::test;
namespace fs = std::filesystem;

namespace {

// pristine/g1..g3: 200 files (every 10th different in g3), a hard link
// inside each guest, and some files only one guest has.
void build_pristine(TempTree& t) {
  std::mt19937 rng(42);
  for (int i = 0; i < 200; ++i) {
    size_t size = 16 + rng() % 40000;
    std::string name = "usr/share/d" + std::to_string(i % 13) + "/f" + std::to_string(i);
    for (const char* g : {"g1", "g2", "g3"}) {
      uint64_t seed = (i % 10 == 0 && std::string(g) == "g3") ? 100000 + i : i;
      t.file(std::string("pristine/") + g + "/" + name, random_bytes(size, seed));
    }
  }
  for (const char* g : {"g1", "g2", "g3"}) {
    ASSERT_EQ(::link(t.path(std::string("pristine/") + g + "/usr/share/d1/f1").c_str(),
                     t.path(std::string("pristine/") + g + "/usr/share/d1/hardlink").c_str()),
              0);
    t.file(std::string("pristine/") + g + "/usr/own", random_bytes(5000, 7 + g[1]));
  }
}

// Every guest's names and contents, without the temporaries a kill leaves.
std::map<std::string, std::string> guest_contents(TempTree& t) {
  std::map<std::string, std::string> all;
  for (const char* g : {"g1", "g2", "g3"})
    for (auto& [p, v] : content_snapshot(t.path(std::string("work/") + g)))
      if (p.find(".vunify-tmp.") == std::string::npos) all[std::string(g) + "/" + p] = v;
  return all;
}

bool no_temporaries(TempTree& t) {
  return sh("find " + t.path("work") + " -name '.vunify-tmp.*' | grep -q .") == 1;
}

// Every store entry's content hashes to the hash in its name, and it is
// immutable.
void check_store_entries(const std::string& store) {
  for (auto& e : fs::recursive_directory_iterator(store)) {
    if (!e.is_regular_file() || e.path().filename().string()[0] == '.') continue;
    std::ifstream in(e.path(), std::ios::binary);
    std::string data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    XXH128_hash_t h = XXH3_128bits(data.data(), data.size());
    ASSERT_EQ(e.path().filename().string().substr(0, 32),
              fmt::format("{:016x}{:016x}", h.high64, h.low64));
    ASSERT_TRUE(is_immutable_path(e.path())) << e.path();
  }
}

// The loop every test runs: reset the work tree, start `argv`, kill it at a
// random moment within the time a whole run takes, check, recover, check.
// Returns the number of runs the kill actually ended.
int kill_loop(const std::vector<std::string>& argv, int want, unsigned seed,
              const std::function<void()>& reset, const std::function<void(int)>& after_kill,
              const std::function<void(int)>& recover) {
  reset();
  auto t0 = std::chrono::steady_clock::now();
  auto whole = run_program(argv);
  EXPECT_EQ(whole.status, 0) << whole.err;
  double full_us =
      std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count();
  KillDelay delay(full_us, 1.0, seed);
  int kills = 0;
  for (int round = 0; kills < want && round < 4 * want && !::testing::Test::HasFatalFailure();
       ++round) {
    reset();
    pid_t pid = spawn_quiet(argv);
    EXPECT_GT(pid, 0);
    if (delay.kill_after_delay(pid)) ++kills;
    after_kill(round);
    recover(round);
  }
  std::string what = fs::path(argv[0]).filename();
  for (size_t i = 1; i < argv.size() && argv[i][0] == '-'; ++i)
    what += " " + argv[i].substr(0, argv[i].find('='));
  std::fprintf(stderr, "kill -9 of %s: %d kills, window %.0f us of a %.0f us run\n", what.c_str(),
               kills, delay.window_us(), full_us);
  return kills;
}

class KillNine : public ::testing::Test {
protected:
  void SetUp() override { build_pristine(t); }
  void copy_pristine() {
    remove_tree(t.path("work"));
    ASSERT_EQ(sh("cp -a " + t.path("pristine") + " " + t.path("work")), 0);
  }
  std::vector<std::string> guests() {
    return {t.path("work/g1"), t.path("work/g2"), t.path("work/g3")};
  }
  TempTree t;
};

} // namespace

TEST_F(KillNine, UnifyLosesNothingAndTheNextRunFinishes) {
  auto g = guests();
  std::map<std::string, std::string> expected;
  int round_no = 0;
  auto reset = [&] {
    copy_pristine();
    // Half the rounds start with g1 and g2 already unified, so a kill can
    // also hit the window in which an existing shared inode is thawed.
    if (round_no++ % 2 == 1) {
      ASSERT_EQ(run_vunify({"-q", g[0], g[1]}).status, 0);
    }
  };
  copy_pristine();
  expected = guest_contents(t);
  int kills = kill_loop(
      {VUNIFY_BIN, "-q", g[0], g[1], g[2]}, 60, 12345, reset,
      [&](int round) {
        ASSERT_EQ(guest_contents(t), expected) << "after the kill, round " << round;
      },
      [&](int round) {
        auto next = run_vunify({"--json", g[0], g[1], g[2]});
        ASSERT_EQ(next.status, 0) << next.err << next.out;
        ASSERT_TRUE(no_temporaries(t)) << "round " << round;
        ASSERT_EQ(guest_contents(t), expected);
        auto check = json_of(run_vunify({"--json", "-n", g[0], g[1], g[2]}));
        ASSERT_EQ(check["files_linked"], 0) << "round " << round;
        ASSERT_TRUE(is_immutable_path(t.path("work/g2/usr/share/d1/f1")));
      });
  EXPECT_GE(kills, 60);
}

TEST_F(KillNine, DeunifyLosesNothingAndTheNextRunFinishes) {
  auto g = guests();
  auto reset = [&] {
    copy_pristine();
    ASSERT_EQ(run_vunify({"-q", g[0], g[1], g[2]}).status, 0);
  };
  reset();
  auto expected = guest_contents(t);
  int kills = kill_loop(
      {VUNIFY_BIN, "-R", "-q", g[1]}, 50, 11, reset,
      [&](int round) {
        ASSERT_EQ(guest_contents(t), expected) << "after the kill, round " << round;
      },
      [&](int round) {
        ASSERT_EQ(run_vunify({"-R", "-q", g[1]}).status, 0);
        ASSERT_TRUE(no_temporaries(t)) << "round " << round;
        ASSERT_EQ(guest_contents(t), expected);
        ASSERT_FALSE(
            same_inode(t.path("work/g1/usr/share/d1/f1"), t.path("work/g2/usr/share/d1/f1")));
        ASSERT_TRUE(
            same_inode(t.path("work/g2/usr/share/d1/f1"), t.path("work/g2/usr/share/d1/hardlink")))
            << "g2's own hard link came back as one inode";
        // A kill after the last of g2's names went but before the shared
        // inode was frozen again leaves nothing in g2 to recover from: the
        // next unify run over the guests that share it protects it.
        if (!is_immutable_path(t.path("work/g3/usr/share/d1/f1"))) {
          ASSERT_EQ(run_vunify({"-q", g[0], g[2]}).status, 0);
        }
        ASSERT_TRUE(is_immutable_path(t.path("work/g3/usr/share/d1/f1")));
      });
  EXPECT_GE(kills, 50);
}

TEST_F(KillNine, StoreRunLosesNothingAndTheNextRunFinishes) {
  auto g = guests();
  std::vector<std::string> argv{
      VHASHIFY_BIN, "-q", "--no-default-excludes", "--destination=" + t.path("work/store"), g[0],
      g[1],         g[2]};
  copy_pristine();
  auto expected = guest_contents(t);
  int kills = kill_loop(
      argv, 50, 3, [&] { copy_pristine(); },
      [&](int round) {
        ASSERT_EQ(guest_contents(t), expected) << "after the kill, round " << round;
      },
      [&](int round) {
        auto next = run_program(argv);
        ASSERT_EQ(next.status, 0) << next.err;
        ASSERT_EQ(guest_contents(t), expected);
        ASSERT_TRUE(no_temporaries(t)) << "round " << round;
        ASSERT_TRUE(
            same_inode(t.path("work/g1/usr/share/d1/f1"), t.path("work/g2/usr/share/d1/f1")));
        check_store_entries(t.path("work/store"));
      });
  EXPECT_GE(kills, 50);
}

TEST_F(KillNine, StoreCollectionLosesNothingAndTheNextRunFinishes) {
  // A store whose guests dropped half their files: --gc has garbage to
  // remove, and store runs with --gc link and collect in one go.
  auto g = guests();
  copy_pristine();
  ASSERT_EQ(run_vhashify({"-q", "--destination=" + t.path("work/store"), g[0], g[1], g[2]}).status,
            0);
  for (int i = 0; i < 200; i += 2)
    for (const auto& guest : g)
      ASSERT_EQ(sh("f=" + guest + "/usr/share/d" + std::to_string(i % 13) + "/f" +
                   std::to_string(i) + "; chattr -i $f; rm -f $f"),
                0);
  ASSERT_EQ(sh("rm -rf " + t.path("collected") + " && cp -a " + t.path("work") + " " +
               t.path("collected")),
            0);
  auto reset = [&] {
    remove_tree(t.path("work"));
    // cp keeps the links but not the flags of the entries.
    ASSERT_EQ(sh("cp -a " + t.path("collected") + " " + t.path("work") + " && find " +
                 t.path("work/store") + " -type f -name '*-*' -exec chattr +i {} +"),
              0);
  };
  reset();
  auto expected = guest_contents(t);
  int round_no = 0;
  std::vector<std::string> gc{VHASHIFY_BIN, "-q", "--gc", "--destination=" + t.path("work/store")};
  std::vector<std::string> both{VHASHIFY_BIN, "-q", "--gc", "--destination=" + t.path("work/store"),
                                g[0],         g[1], g[2]};
  int kills = kill_loop(
      gc, 20, 5, reset,
      [&](int round) {
        ASSERT_EQ(guest_contents(t), expected) << "after the kill, round " << round;
      },
      [&](int round) {
        ASSERT_EQ(run_program(gc).status, 0);
        ASSERT_TRUE(no_temporaries(t)) << "round " << round;
        ASSERT_EQ(guest_contents(t), expected);
        ASSERT_EQ(sh("find " + t.path("work/store") + " -type f -links 1 -name '*-*' | grep -q ."),
                  1)
            << "garbage left after the recovery run, round " << round;
        ++round_no;
      });
  kills += kill_loop(
      both, 20, 6, reset,
      [&](int round) {
        ASSERT_EQ(guest_contents(t), expected) << "after the kill, round " << round;
      },
      [&](int round) {
        ASSERT_EQ(run_program(both).status, 0);
        ASSERT_TRUE(no_temporaries(t)) << "round " << round;
        ASSERT_EQ(guest_contents(t), expected);
        check_store_entries(t.path("work/store"));
      });
  EXPECT_GE(kills, 40);
}
