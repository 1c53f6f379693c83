// vhashify as cron runs it: counters of nightly runs, a new guest, kill -9,
// hostile changes between runs, and the store's integrity afterwards.
#include "tests/support/run_program.h"
#include "tests/support/temp_tree.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <xxhash.h>

#include <chrono>
#include <csignal>
#include <filesystem>
#include <fmt/format.h>
#include <fstream>
#include <functional>
#include <random>
#include <unistd.h>

using namespace vu::test;
namespace fs = std::filesystem;

namespace {

ProgramResult vhashify(const std::vector<std::string>& a) {
  return run_vhashify(a);
}

// The JSON of a run that must succeed.
nlohmann::json ok_json(const ProgramResult& r) {
  EXPECT_EQ(r.status, 0) << r.err;
  return json_of(r);
}

// Every store entry's content hashes to the hash in its name, and it is
// immutable; returns the number of entries.
size_t check_store(const std::string& store) {
  size_t n = 0;
  for (auto& e : fs::recursive_directory_iterator(store)) {
    if (!e.is_regular_file() || e.path().filename().string()[0] == '.') continue;
    std::ifstream in(e.path(), std::ios::binary);
    std::string data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    XXH128_hash_t h = XXH3_128bits(data.data(), data.size());
    std::string hex = fmt::format("{:016x}{:016x}", h.high64, h.low64);
    EXPECT_EQ(e.path().filename().string().substr(0, 32), hex) << e.path();
    EXPECT_TRUE(is_immutable_path(e.path())) << e.path();
    ++n;
  }
  return n;
}

void make_guest(TempTree& t, const std::string& g, int files, uint64_t seed_base) {
  for (int i = 0; i < files; ++i)
    t.file(g + "/usr/share/d" + std::to_string(i % 5) + "/f" + std::to_string(i),
           random_bytes(200 + (i * 997) % 20000, seed_base + i));
}

} // namespace

TEST(Vhashify, NightlyRunsReadNothingAndANewGuestCostsItsBytesAlone) {
  TempTree t;
  make_guest(t, "g1", 60, 0);
  make_guest(t, "g2", 60, 0);
  t.file("g2/usr/own", random_bytes(7000, 999));
  std::string store = "--destination=" + t.path("store");
  auto before1 = content_snapshot(t.path("g1"));
  auto before2 = content_snapshot(t.path("g2"));
  auto first =
      ok_json(vhashify({"--json", "--no-default-excludes", store, t.path("g1"), t.path("g2")}));
  EXPECT_EQ(first["files_linked"], 121);
  EXPECT_EQ(first["store_entries_created"], 61);
  EXPECT_EQ(check_store(t.path("store")), 61u);
  EXPECT_EQ(inode_of(t.path("g1/usr/share/d0/f0")), inode_of(t.path("g2/usr/share/d0/f0")));
  EXPECT_EQ(content_snapshot(t.path("g1")), before1);
  EXPECT_EQ(content_snapshot(t.path("g2")), before2);

  auto second =
      ok_json(vhashify({"--json", "--no-default-excludes", store, t.path("g1"), t.path("g2")}));
  EXPECT_EQ(second["bytes_read"], 0) << "an unchanged run reads no file content";
  EXPECT_EQ(second["files_hashed"], 0);
  EXPECT_EQ(second["files_in_store"], 121);
  EXPECT_EQ(second["files_linked"], 0);

  // A new guest: same files plus two of its own. Only its files are hashed.
  make_guest(t, "g3", 60, 0);
  t.file("g3/usr/mine", random_bytes(5000, 5000));
  t.file("g3/usr/mine2", random_bytes(6000, 6000));
  uint64_t g3_bytes = 0;
  for (auto& e : fs::recursive_directory_iterator(t.path("g3")))
    if (e.is_regular_file()) g3_bytes += e.file_size();
  auto third = ok_json(vhashify(
      {"--json", "--no-default-excludes", store, t.path("g1"), t.path("g2"), t.path("g3")}));
  EXPECT_EQ(third["files_hashed"], 62);
  EXPECT_EQ(third["bytes_hashed"].get<uint64_t>(), g3_bytes) << "the others are not re-read";
  EXPECT_EQ(third["files_in_store"], 121);
  EXPECT_EQ(third["store_entries_created"], 2);
  EXPECT_EQ(third["files_linked"], 62);
  EXPECT_EQ(inode_of(t.path("g3/usr/share/d1/f1")), inode_of(t.path("g1/usr/share/d1/f1")));
  EXPECT_EQ(check_store(t.path("store")), 63u);
}

TEST(Vhashify, GuestReplacesStoreLinkedFilesBetweenRuns) {
  TempTree t;
  make_guest(t, "g1", 10, 0);
  make_guest(t, "g2", 10, 0);
  t.file("sentinel/target", random_bytes(1000, 1));
  std::string store = "--destination=" + t.path("store");
  ASSERT_EQ(vhashify({"-q", "--no-default-excludes", store, t.path("g1"), t.path("g2")}).status, 0);
  // The guest's root (CAP_LINUX_IMMUTABLE here) swaps two linked files.
  std::string f = t.path("g2/usr/share/d0/f0"), d = t.path("g2/usr/share/d1/f1");
  ASSERT_EQ(sh("chattr -i " + f + " " + d + " && rm " + f + " " + d + " && ln -s " +
               t.path("sentinel/target") + " " + f + " && mkdir " + d),
            0);
  auto sentinel = snapshot(t.path("sentinel"));
  auto r = ok_json(
      vhashify({"--json", "--gc", "--no-default-excludes", store, t.path("g1"), t.path("g2")}));
  EXPECT_EQ(r["error_count"], 0);
  EXPECT_EQ(snapshot(t.path("sentinel")), sentinel);
  EXPECT_FALSE(is_immutable_path(t.path("sentinel/target")));
  EXPECT_EQ(check_store(t.path("store")), 10u) << "g1 still links every entry";
  // With g1's copies gone as well, the two entries become garbage.
  ASSERT_EQ(
      sh("chattr -i " + t.path("g1/usr/share/d0/f0") + " && rm " + t.path("g1/usr/share/d0/f0")),
      0);
  auto gc = ok_json(vhashify({"--json", "--gc", store}));
  EXPECT_EQ(gc["store_entries_removed"], 1);
  EXPECT_EQ(check_store(t.path("store")), 9u);
}

TEST(Vhashify, LockAndUsage) {
  TempTree t;
  make_guest(t, "g1", 3, 0);
  std::string store = "--destination=" + t.path("store");
  ASSERT_EQ(vhashify({"-q", store, t.path("g1")}).status, 0);
  // Hold the lock from a shell; --no-wait fails clearly.
  // Until it is really held (flock -n fails), at most 5 s.
  ASSERT_EQ(sh("(flock -x " + t.path("store/.lock") +
               " sleep 3 &) ; for i in $(seq 50); do "
               "flock -n " +
               t.path("store/.lock") + " true || exit 0; sleep 0.1; done; exit 1"),
            0);
  auto busy = vhashify({"--no-wait", store, t.path("g1")});
  EXPECT_EQ(busy.status, 2);
  EXPECT_NE(busy.err.find("another run holds the lock"), std::string::npos) << busy.err;
  auto waited = vhashify({store, t.path("g1")});
  EXPECT_EQ(waited.status, 0);
  EXPECT_NE(waited.err.find("vhashify: waiting: hash store"), std::string::npos) << waited.err;
  EXPECT_EQ(vhashify({}).status, 2);
  EXPECT_EQ(vhashify({"--help"}).status, 0);
}

TEST(Vhashify, NightlyJobLogsOneSummaryLine) {
  TempTree t;
  make_guest(t, "g1", 5, 0);
  make_guest(t, "g2", 5, 0);
  std::string cmd = std::string(VHASHIFY_BIN) +
                    " --json --gc --no-default-excludes --destination=" + t.path("store") + " " +
                    t.path("g1") + " " + t.path("g2") + " | " + VU_SOURCE_DIR +
                    "/data/summarize-run > " + t.path("line");
  ASSERT_EQ(sh(cmd), 0);
  std::string line = t.read("line");
  EXPECT_EQ(std::count(line.begin(), line.end(), '\n'), 1);
  EXPECT_NE(line.find("vhashify: 10 files scanned"), std::string::npos) << line;
  EXPECT_NE(line.find("5 store entries created"), std::string::npos) << line;
  EXPECT_NE(line.find("0 errors"), std::string::npos) << line;
}

// The nightly job as installed (cmake --install with a prefix, below a
// DESTDIR): the cron line and the unit's ExecStart, run as cron and systemd
// would, exit with vhashify's status and print "FAILED: <why>" when the
// binary is missing, the configuration base is missing or the store is
// held by another run. A stray directory in the base is no guest: a
// warning (cron mails it), and the run goes on.
TEST(Vhashify, TheInstalledNightlyJobReportsEveryFailure) {
  TempTree t;
  const std::string prefix = t.path("p"), dest = t.path("d");
  ASSERT_EQ(sh("DESTDIR=" + dest + " cmake --install " VU_BINARY_DIR " --prefix " + prefix + " >" +
               t.path("install.log") + " 2>&1"),
            0)
      << t.read("install.log");
  // The default exclude list goes where the tools read it, and an edited
  // one is kept by the next install.
  const std::string excl = "d/etc/vservers/.defaults/apps/vunify/exclude";
  EXPECT_NE(t.read(excl).find("\n/etc/*\n"), std::string::npos);
  t.file(excl, "# edited\n/usr/lib\n");
  ASSERT_EQ(sh("DESTDIR=" + dest + " cmake --install " VU_BINARY_DIR " --prefix " + prefix + " >" +
               t.path("install.log") + " 2>&1"),
            0)
      << t.read("install.log");
  EXPECT_EQ(t.read(excl), "# edited\n/usr/lib\n");
  ASSERT_EQ(::symlink((dest + prefix).c_str(), prefix.c_str()), 0); // as if installed there
  const std::string cron = dest + "/etc/cron.d/vhashify";
  // Below the prefix, or where VU_SYSTEMD_UNIT_DIR names (the package's
  // build: /lib/systemd/system).
  std::string unit = prefix + "/lib/systemd/system/vhashify.service";
  if (::access(unit.c_str(), F_OK) != 0) unit = dest + "/lib/systemd/system/vhashify.service";
  // The job's line, with the '#' that keeps it off until enabled removed.
  ASSERT_EQ(sh("sed -n 's/^#\\?[0-9].* root //p' " + cron + " >" + t.path("cron.sh") +
               " && sed -n 's/^ExecStart=//p' " + unit + " >" + t.path("unit.sh")),
            0);
  EXPECT_NE(t.read("cron.sh").find(prefix + "/share/vunify/vhashify-nightly"), std::string::npos)
      << t.read("cron.sh");
  make_guest(t, "vservers/g1", 5, 0);
  make_guest(t, "vservers/g2", 5, 0);
  t.file("etc/.defaults/vdirbase", "");
  ASSERT_EQ(sh("rm " + t.path("etc/.defaults/vdirbase") + " && ln -s " + t.path("vservers") + " " +
               t.path("etc/.defaults/vdirbase") + " && mkdir " + t.path("etc/g1") + " " +
               t.path("etc/g2")),
            0);
  // Runs the job one way with the configuration base `conf`; its status,
  // and what it printed on stdout in `line`.
  auto job = [&](const std::string& how, const std::string& conf, std::string& line) {
    int rc = sh("VSERVER_CONFDIR=" + conf + " sh " + t.path(how + ".sh") + " >" + t.path("out") +
                " 2>" + t.path("err"));
    line = t.read("out");
    return rc;
  };
  std::string line;
  ASSERT_EQ(job("unit", t.path("etc"), line), 0) << line;
  EXPECT_NE(line.find("vhashify: 10 files scanned"), std::string::npos) << line;
  EXPECT_EQ(job("cron", t.path("etc"), line), 0);
  EXPECT_EQ(line, "") << "cron mails what a successful job prints";
  struct Case {
    const char* what;
    std::string conf;
    std::string why;
    std::function<void()> before, after;
  };
  const std::string bin = dest + prefix + "/sbin/vhashify";
  const std::string lock = t.path("vservers/.hash/.lock");
  const std::vector<Case> cases = {
      {"binary missing", t.path("etc"), "is not installed",
       [&] { ASSERT_EQ(::rename(bin.c_str(), (bin + ".gone").c_str()), 0); },
       [&] { ASSERT_EQ(::rename((bin + ".gone").c_str(), bin.c_str()), 0); }},
      {"config base missing", t.path("no-such-base"), "no-such-base", [] {}, [] {}},
      {"store locked", t.path("etc"), "another run holds the lock",
       [&] {
         ASSERT_EQ(sh("(flock -x " + lock + " sleep 4 &) ; for i in $(seq 50); do flock -n " +
                      lock + " true || exit 0; sleep 0.1; done; exit 1"),
                   0);
       },
       [&] { sh("flock -x " + lock + " true"); }},
  };
  for (const auto& c : cases) {
    for (const char* how : {"unit", "cron"}) {
      c.before();
      int rc = job(how, c.conf, line);
      c.after();
      EXPECT_NE(rc, 0) << c.what << " (" << how << ")";
      EXPECT_EQ(line.rfind("vhashify: FAILED: ", 0), 0u) << c.what << " (" << how << "): " << line;
      EXPECT_NE(line.find(c.why), std::string::npos) << c.what << " (" << how << "): " << line;
      EXPECT_EQ(std::count(line.begin(), line.end(), '\n'), 1) << line;
    }
  }
  t.mkdirs("etc/stray");
  EXPECT_EQ(job("unit", t.path("etc"), line), 0) << t.read("err");
  EXPECT_NE(line.find("files scanned"), std::string::npos) << line;
  EXPECT_NE(t.read("err").find("vhashify: warning: " + t.path("etc/stray") + " has no vdir"),
            std::string::npos)
      << t.read("err");
  EXPECT_EQ(job("cron", t.path("etc"), line), 0);
  EXPECT_NE(t.read("err").find("not a guest"), std::string::npos) << "cron mails the warning";
}

TEST(Vhashify, VunifyStoreOptionIsTheSameRun) {
  TempTree t;
  make_guest(t, "g1", 8, 0);
  make_guest(t, "g2", 8, 0);
  auto r = run_vunify(
      {"--json", "--no-default-excludes", "--store", t.path("store"), t.path("g1"), t.path("g2")});
  ASSERT_EQ(r.status, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["store_entries_created"], 8);
  EXPECT_EQ(check_store(t.path("store")), 8u);
  auto again = ok_json(vhashify({"--json", "--no-default-excludes",
                                 "--destination=" + t.path("store"), t.path("g1"), t.path("g2")}));
  EXPECT_EQ(again["bytes_read"], 0);
  EXPECT_EQ(again["files_in_store"], 16);
}
