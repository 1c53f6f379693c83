// vunify --reflink on btrfs and XFS loop images: real guests share extents
// and keep their inodes and metadata; hostile links are not followed and
// secrets not read; a guest writing during the run loses nothing; kill -9
// at any moment loses nothing; immutable files and reference guests stay
// as they are; file systems without shared extents are refused; vdu counts
// the shared extents. Skipped
// (not passed) where mkfs.btrfs/mkfs.xfs or loop devices are missing.
#include "kernel/extents.h"
#include "kernel/fd.h"
#include "tests/support/fixtures.h"
#include "tests/support/guest_fixture.h"
#include "tests/support/run_program.h"
#include "tests/support/temp_tree.h"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <fcntl.h>
#include <filesystem>
#include <optional>
#include <random>
#include <sys/stat.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

using namespace vu::test;
namespace fs = std::filesystem;

namespace {

// A fresh file system of `type` mounted at t/mnt; nullopt when this machine
// cannot make one (the caller skips).
std::optional<ScopedMount> loop_fs(TempTree& t, const std::string& type, const char* size = "1G") {
  if (sh("command -v mkfs." + type + " >/dev/null") != 0) return std::nullopt;
  t.mkdirs("mnt");
  std::string img = t.path("img");
  if (sh(std::string("truncate -s ") + size + " " + img + " && mkfs." + type + " -q " + img +
         " >/dev/null 2>&1") != 0)
    return std::nullopt;
  auto m = ScopedMount::loop_image(img, t.path("mnt"));
  if (!m.ok()) return std::nullopt;
  return std::optional<ScopedMount>(std::move(m));
}

vu::ExtentSummary extents_of(const std::string& path) {
  vu::UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
  EXPECT_TRUE(fd.valid()) << path;
  auto e = vu::file_extents(fd.get());
  EXPECT_TRUE(e.ok()) << path;
  return e.ok() ? *e : vu::ExtentSummary{};
}

// Per regular file: inode, mode, owner, mtime and content digest - what a
// reflink run must leave exactly as it was.
std::map<std::string, std::string> identity(const std::string& root) {
  std::map<std::string, std::string> out;
  for (auto& e : fs::recursive_directory_iterator(root)) {
    struct stat st {};
    if (::lstat(e.path().c_str(), &st) != 0 || !S_ISREG(st.st_mode)) continue;
    out[e.path().string()] =
        fmt::format("{} {:o} {}:{} {}.{} {}", st.st_ino, st.st_mode, st.st_uid, st.st_gid,
                    st.st_mtim.tv_sec, st.st_mtim.tv_nsec, file_digest(e.path().string()));
  }
  return out;
}

bool any_immutable(const std::string& root) {
  for (auto& e : fs::recursive_directory_iterator(root))
    if (e.is_regular_file() && !e.is_symlink() && is_immutable_path(e.path().string())) return true;
  return false;
}

void real_guests_on(const std::string& type) {
  std::string why;
  std::string minbase = cached_minbase(why);
  if (minbase.empty()) GTEST_SKIP() << why;
  TempTree t;
  auto mnt = loop_fs(t, type);
  if (!mnt) GTEST_SKIP() << "cannot make and mount a " << type << " image here";
  const std::string m = t.path("mnt");
  ASSERT_EQ(sh("cp -a " + minbase + " " + m + "/g1 && cp -a " + minbase + " " + m + "/g2"), 0);
  // The same bytes under other metadata: shared all the same, each name
  // keeping its own mode, owner and mtime.
  ASSERT_EQ(sh("chmod 0700 " + m + "/g2/usr/bin/ls && chown 1234:1234 " + m +
               "/g2/usr/bin/ls && touch -d 2001-01-01 " + m + "/g2/usr/bin/ls"),
            0);
  // A host key both guests have: a secret, never read, never shared.
  const std::string key = random_bytes(64 * 1024, 99);
  put(m + "/g1/etc/ssh/ssh_host_rsa_key", key);
  put(m + "/g2/etc/ssh/ssh_host_rsa_key", key);
  // A hostile guest's symlink to a host file with a guest file's content.
  put(t.path("host-file"), read_all(m + "/g1/usr/bin/ls"));
  ASSERT_EQ(::symlink(t.path("host-file").c_str(), (m + "/g2/usr/bin/evil").c_str()), 0);
  sh("sync " + t.path("host-file")); // its extents placed, not delayed
  auto host_before = extents_of(t.path("host-file"));
  auto before = identity(m);

  const uint64_t used0 = used_bytes(m);
  auto dry = run_vunify({"--reflink", "-n", "--json", "--no-pkgmgmt", m + "/g1", m + "/g2"});
  ASSERT_EQ(dry.status, 0) << dry.err;
  auto d = json_of(dry);
  EXPECT_EQ(d["mode"], "reflink");
  EXPECT_GT(d["files_linked"].get<uint64_t>(), 2000u);
  EXPECT_EQ(extents_of(m + "/g2/usr/bin/ls").shared_bytes, 0u) << "a dry run shared extents";

  auto r = run_vunify({"--reflink", "--json", "--no-pkgmgmt", m + "/g1", m + "/g2"});
  ASSERT_EQ(r.status, 0) << r.err;
  auto j = json_of(r);
  EXPECT_EQ(j["files_linked"], d["files_linked"]);
  EXPECT_EQ(j["bytes_saved"], d["bytes_saved"]);
  EXPECT_EQ(j["error_count"], 0);
  const uint64_t saved = j["bytes_saved"];
  const uint64_t freed = used0 - used_bytes(m);
  EXPECT_GT(saved, 80u << 20);
  // What the report says is what the file system gave back (metadata of
  // the file system itself moves a little).
  EXPECT_NEAR(double(freed), double(saved), 0.08 * double(saved)) << type;

  // vdu sees the shared extents, and what they save is what vunify said.
  auto du = run_vdu({"--json", m + "/g1", m + "/g2"});
  ASSERT_EQ(du.status, 0) << du.err;
  auto u = json_of(du);
  EXPECT_NEAR(double(u["total"]["extents_saved_bytes"].get<uint64_t>()), double(saved),
              0.05 * double(saved));
  EXPECT_GT(u["guests"][1]["extents_shared_bytes"].get<uint64_t>(), saved / 2);
  EXPECT_LT(u["total"]["saved_bytes"].get<uint64_t>(), saved / 10) << "SAVED counts inodes";

  // Nothing a name shows changed: inode, mode, owner, mtime, content.
  EXPECT_EQ(identity(m), before);
  EXPECT_FALSE(any_immutable(m));
  auto ls = extents_of(m + "/g2/usr/bin/ls");
  EXPECT_GT(ls.shared_bytes, 0u);
  EXPECT_EQ(ls.layout, extents_of(m + "/g1/usr/bin/ls").layout);
  // Shared extents: both files' data begins at the same place (the order
  // the run's reads follow).
  EXPECT_NE(ls.first_physical, 0u);
  EXPECT_EQ(ls.first_physical, extents_of(m + "/g1/usr/bin/ls").first_physical);
  EXPECT_EQ(extents_of(m + "/g1/etc/ssh/ssh_host_rsa_key").shared_bytes, 0u);
  EXPECT_EQ(extents_of(t.path("host-file")).layout, host_before.layout);
  EXPECT_EQ(extents_of(t.path("host-file")).shared_bytes, 0u);

  // A guest writes its file: copy on write, the other guest's stays.
  const std::string g1ls = file_digest(m + "/g1/usr/bin/ls");
  {
    vu::UniqueFd w(::open((m + "/g2/usr/bin/ls").c_str(), O_WRONLY | O_CLOEXEC));
    ASSERT_TRUE(w.valid());
    ASSERT_EQ(::pwrite(w.get(), "guest2", 6, 100), 6);
  }
  EXPECT_EQ(file_digest(m + "/g1/usr/bin/ls"), g1ls);
  EXPECT_EQ(read_all(m + "/g2/usr/bin/ls").substr(100, 6), "guest2");

  // A nightly re-run finds everything shared and reads (almost) nothing.
  auto again = run_vunify({"--reflink", "--json", "--no-pkgmgmt", m + "/g1", m + "/g2"});
  ASSERT_EQ(again.status, 0) << again.err;
  auto a = json_of(again);
  EXPECT_EQ(a["files_linked"], 0);
  EXPECT_GT(a["files_already_shared"].get<uint64_t>(), 4000u);
  EXPECT_LT(a["bytes_hashed"].get<uint64_t>(), a["bytes_scanned"].get<uint64_t>() / 10);
}

// n random files of the given sizes in every guest, the same bytes in each.
void same_files(TempTree& t, const std::string& dir, const std::vector<std::string>& guests,
                const std::vector<size_t>& sizes) {
  for (size_t i = 0; i < sizes.size(); ++i) {
    std::string bytes = random_bytes(sizes[i], 1000 + i);
    for (const auto& g : guests) put(dir + "/" + g + "/data/f" + std::to_string(i), bytes);
  }
  (void)t;
}

} // namespace

TEST(Reflink, RealGuestsOnBtrfsShareExtentsAndKeepTheirInodes) {
  real_guests_on("btrfs");
}

TEST(Reflink, RealGuestsOnXfsShareExtentsAndKeepTheirInodes) {
  real_guests_on("xfs");
}

TEST(Reflink, AGuestWritingDuringTheRunLosesNothing) {
  TempTree t;
  auto mnt = loop_fs(t, "btrfs");
  if (!mnt) GTEST_SKIP() << "cannot make and mount a btrfs image here";
  const std::string m = t.path("mnt");
  const std::string original = random_bytes(96u << 20, 5);
  for (const char* g : {"g1", "g2", "g3"}) put(m + "/" + g + "/big", original);
  sh("sync -f " + m);
  // g2's process writes markers through the whole run (and after it).
  std::string expected = original;
  std::atomic<bool> stop{false};
  std::thread writer([&] {
    vu::UniqueFd w(::open((m + "/g2/big").c_str(), O_WRONLY | O_CLOEXEC));
    for (uint64_t k = 0; !stop.load() || k < 50; ++k) {
      const uint64_t off = (k * 7919 * 4096 + 13) % (original.size() - 8);
      std::string mark = fmt::format("{:08}", k % 100000000);
      if (::pwrite(w.get(), mark.data(), 8, off) == 8) expected.replace(off, 8, mark);
      std::this_thread::sleep_for(std::chrono::microseconds(300));
    }
  });
  auto r = run_vunify({"--reflink", "--json", "--no-pkgmgmt", m + "/g1", m + "/g2", m + "/g3"});
  stop = true;
  writer.join();
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(read_all(m + "/g2/big") == expected, true) << "a write of the guest was lost";
  EXPECT_EQ(read_all(m + "/g1/big") == original, true);
  EXPECT_EQ(read_all(m + "/g3/big") == original, true);
  // g1 and g3 share (one is the other's canonical) whatever g2 did.
  EXPECT_EQ(extents_of(m + "/g1/big").layout, extents_of(m + "/g3/big").layout);
}

TEST(Reflink, KillNineAtAnyMomentLosesNothing) {
  TempTree t;
  auto mnt = loop_fs(t, "xfs");
  if (!mnt) GTEST_SKIP() << "cannot make and mount an XFS image here";
  const std::string m = t.path("mnt");
  std::vector<size_t> sizes;
  std::mt19937 rng(7);
  for (int i = 0; i < 300; ++i) sizes.push_back(1 + rng() % 60000);
  for (int i = 0; i < 2; ++i) sizes.push_back((16u << 20) + i * 4097);
  same_files(t, m, {"g1", "g2", "g3"}, sizes);
  put(m + "/g3/data/f7", "g3's own version");
  auto before = identity(m);
  std::mt19937 delays(11);
  int killed = 0;
  for (int round = 0; round < 8; ++round) {
    pid_t pid =
        spawn_quiet({VUNIFY_BIN, "--reflink", "--no-pkgmgmt", m + "/g1", m + "/g2", m + "/g3"});
    ASSERT_GT(pid, 0);
    std::this_thread::sleep_for(std::chrono::milliseconds(2 + delays() % 120));
    ::kill(pid, SIGKILL);
    int st = 0;
    ::waitpid(pid, &st, 0);
    killed += WIFSIGNALED(st);
    ASSERT_EQ(identity(m), before) << "after kill " << round;
  }
  EXPECT_GT(killed, 0);
  auto r = run_vunify({"--reflink", "--json", "--no-pkgmgmt", m + "/g1", m + "/g2", m + "/g3"});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(identity(m), before);
  EXPECT_EQ(extents_of(m + "/g1/data/f300").layout, extents_of(m + "/g3/data/f300").layout);
  EXPECT_NE(extents_of(m + "/g1/data/f7").layout, extents_of(m + "/g3/data/f7").layout);
}

TEST(Reflink, ImmutableFilesAndReferenceGuestsStayAsTheyAre) {
  TempTree t;
  auto mnt = loop_fs(t, "btrfs");
  if (!mnt) GTEST_SKIP() << "cannot make and mount a btrfs image here";
  const std::string m = t.path("mnt");
  same_files(t, m, {"g1", "g2", "g3", "ref"}, {200000, 300000});
  ASSERT_EQ(sh("chattr +i " + m + "/g2/data/f0 " + m + "/g3/data/f0 && sync -f " + m), 0);
  const uint64_t ref1 = extents_of(m + "/ref/data/f1").layout;
  auto r = run_vunify({"--reflink", "--json", "--no-pkgmgmt", m + "/g1", m + "/g2", m + "/g3"});
  sh("chattr -i " + m + "/g2/data/f0 " + m + "/g3/data/f0");
  ASSERT_EQ(r.status, 0) << r.err;
  auto j = json_of(r);
  // f0: an immutable copy is the canonical one, the other immutable copy
  // is left alone, g1's plain copy shares with the canonical.
  EXPECT_EQ(j["skipped"]["immutable"], 1);
  const uint64_t g1f0 = extents_of(m + "/g1/data/f0").layout;
  EXPECT_TRUE(g1f0 == extents_of(m + "/g2/data/f0").layout ||
              g1f0 == extents_of(m + "/g3/data/f0").layout);
  EXPECT_NE(extents_of(m + "/g2/data/f0").layout, extents_of(m + "/g3/data/f0").layout);

  // A reference guest (--manually: the second pair on) is never changed.
  put(t.path("none"), "");
  auto man = run_vunify(
      {"--reflink", "--json", "--manually", m + "/g1", t.path("none"), m + "/ref", t.path("none")});
  ASSERT_EQ(man.status, 0) << man.err;
  EXPECT_EQ(extents_of(m + "/ref/data/f1").layout, ref1);
  EXPECT_EQ(extents_of(m + "/g1/data/f1").layout, ref1);
}

TEST(Reflink, RefusedWhereItCannotWork) {
  TempTree t;
  t.build("f g1/usr/a @5000:1\nf g2/usr/a @5000:1\n");
  // The scratch directory's file system (ext4 or tmpfs here) shares no extents.
  if (sh("stat -f -c %T " + t.root() + " | grep -Eq 'btrfs|xfs'") == 0)
    GTEST_SKIP() << "the scratch directory is on btrfs or XFS";
  auto r = run_vunify({"--reflink", t.path("g1"), t.path("g2")});
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.err.find("not on btrfs or XFS"), std::string::npos) << r.err;
  EXPECT_FALSE(r.err.find('\n') < r.err.size() - 1) << "one line: " << r.err;
  auto rev = run_vunify({"--reflink", "-R", t.path("g1")});
  EXPECT_EQ(rev.status, 2);
  EXPECT_NE(rev.err.find("nothing to revert"), std::string::npos) << rev.err;
  auto store = run_vunify({"--reflink", "--store", t.path("s"), t.path("g1"), t.path("g2")});
  EXPECT_EQ(store.status, 2);
  EXPECT_FALSE(fs_exists(t.path("s")));
  const std::string setpriv = "/usr/bin/setpriv";
  if (::access(setpriv.c_str(), X_OK) != 0) return;
  auto noadmin = run_program(
      {setpriv, "--bounding-set=-sys_admin", VUNIFY_BIN, "--reflink", t.path("g1"), t.path("g2")});
  EXPECT_EQ(noadmin.status, 2);
  EXPECT_NE(noadmin.err.find("CAP_SYS_ADMIN"), std::string::npos) << noadmin.err;
}
