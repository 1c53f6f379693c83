// kill -9 at random moments of link runs: after each kill every original
// name exists with its original content, and the next run finishes the
// job and leaves no temporary behind.
#include "tests/support/run_program.h"
#include "tests/support/temp_tree.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <csignal>
#include <fcntl.h>
#include <random>
#include <unistd.h>

using namespace vu::test;

namespace {

void build_pristine(TempTree& t) {
  std::mt19937 rng(42);
  for (int i = 0; i < 250; ++i) {
    size_t size = 16 + rng() % 40000;
    std::string name = "usr/share/d" + std::to_string(i % 13) + "/f" + std::to_string(i);
    for (const char* g : {"g1", "g2", "g3"}) {
      // Every 10th file differs in g3; the others are identical everywhere.
      uint64_t seed = (i % 10 == 0 && std::string(g) == "g3") ? 100000 + i : i;
      t.file(std::string("pristine/") + g + "/" + name, random_bytes(size, seed));
    }
  }
  // Names that already share an inode inside a guest.
  for (const char* g : {"g1", "g2", "g3"})
    ASSERT_EQ(::link(t.path(std::string("pristine/") + g + "/usr/share/d0/f0").c_str(),
                     t.path(std::string("pristine/") + g + "/usr/share/d0/hardlink").c_str()),
              0);
}

std::map<std::string, std::string> guest_contents(TempTree& t) {
  std::map<std::string, std::string> all;
  for (const char* g : {"g1", "g2", "g3"})
    for (auto& [p, v] : content_snapshot(t.path(std::string("work/") + g)))
      if (p.find(".vunify-tmp.") == std::string::npos) all[std::string(g) + "/" + p] = v;
  return all;
}

} // namespace

TEST(KillNine, EveryNameSurvivesAndTheNextRunCleansUp) {
  TempTree t;
  build_pristine(t);
  const std::vector<std::string> guests{t.path("work/g1"), t.path("work/g2"), t.path("work/g3")};
  auto reset = [&](bool pre_unify_two) {
    remove_tree(t.path("work"));
    ASSERT_EQ(sh("cp -a " + t.path("pristine") + " " + t.path("work")), 0);
    // Half the rounds start with g1 and g2 already unified, so the kill can
    // also hit the window where an existing shared inode is thawed.
    if (pre_unify_two) {
      ASSERT_EQ(run_vunify({"-q", guests[0], guests[1]}).status, 0);
    }
  };

  reset(false);
  const auto expected = guest_contents(t);
  auto t0 = std::chrono::steady_clock::now();
  ASSERT_EQ(run_vunify({"-q", guests[0], guests[1], guests[2]}).status, 0);
  double full_us = std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count();

  KillDelay delay(full_us, 1.1, 12345);
  int kills = 0, rounds = 0;
  for (; kills < 50 && rounds < 200; ++rounds) {
    reset(rounds % 2 == 1);
    pid_t pid = spawn_quiet({VUNIFY_BIN, guests[0], guests[1], guests[2]});
    ASSERT_GT(pid, 0);
    if (delay.kill_after_delay(pid)) ++kills;

    ASSERT_EQ(guest_contents(t), expected) << "after kill in round " << rounds;
    auto next = run_vunify({"--json", guests[0], guests[1], guests[2]});
    ASSERT_EQ(next.status, 0) << next.err << next.out;
    ASSERT_EQ(sh("find " + t.path("work") + " -name '.vunify-tmp.*' | grep -q ."), 1)
        << "temporaries left after the recovery run in round " << rounds;
    ASSERT_EQ(guest_contents(t), expected);
    auto check = nlohmann::json::parse(run_vunify({"--json", "-n", guests[0], guests[1], guests[2]}).out);
    ASSERT_EQ(check["files_linked"], 0) << "recovery run left duplicates in round " << rounds;
  }
  EXPECT_GE(kills, 50) << "only " << kills << " of " << rounds << " rounds killed a running vunify";
  std::fprintf(stderr, "kill -9: %d kills in %d rounds, full run %.0f us, last window %.0f us\n",
               kills, rounds, full_us, delay.window_us());
}
