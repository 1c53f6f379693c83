// Hostile guest trees: symlinks out of the guest, special files, odd
// names, and a guest that swaps directories for symlinks while vunify
// runs. Whatever happens, nothing outside the guests changes and no guest
// file changes content.
#include "tests/support/run_program.h"
#include "tests/support/temp_tree.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <thread>

using namespace vu::test;

namespace {

// A sentinel directory outside the guests whose files are identical to
// guest files, so any walk or link that strays out of a guest would
// "find" them. Its full snapshot, inode numbers included, must not change.
std::map<std::string, std::string> sentinel_state(const TempTree& t) {
  auto snap = snapshot(t.path("sentinel"));
  for (auto& [path, v] : snap) {
    auto [dev, ino] = inode_of(t.path("sentinel/" + path));
    v += " ino=" + std::to_string(ino) +
         (is_immutable_path(t.path("sentinel/" + path)) ? " immutable" : "");
  }
  return snap;
}

void build_guests(TempTree& t) {
  for (const char* g : {"g1", "g2"}) {
    std::string p = std::string(g) + "/usr/";
    t.file(p + "lib/libc.so", random_bytes(30000, 1));
    t.file(p + "share/doc/readme", random_bytes(2000, 2));
    t.file(p + "share/dir/file", random_bytes(7000, 3));
  }
  t.file("sentinel/libc.so", random_bytes(30000, 1));
  t.file("sentinel/readme", random_bytes(2000, 2));
  t.file("sentinel/file", random_bytes(7000, 3));
}

} // namespace

TEST(Hostile, SymlinksOutOfTheGuestAreNeverFollowed) {
  TempTree t;
  build_guests(t);
  // Directory and file symlinks, relative and absolute, to the sentinel
  // and to the host's root.
  t.build("l g2/usr/escape ../../sentinel\n"
          "l g1/usr/abs " +
          t.path("sentinel") +
          "\n"
          "l g2/usr/hostroot /\n"
          "l g1/usr/share/doc/libc-link ../../../../sentinel/libc.so\n");
  auto sentinel = sentinel_state(t);
  auto before = content_snapshot(t.root());
  auto r = run_vunify({"--json", "--no-default-excludes", t.path("g1"), t.path("g2")});
  ASSERT_EQ(r.status, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["files_scanned"], 6) << "nothing outside the two guests was walked";
  EXPECT_EQ(j["files_linked"], 3);
  EXPECT_EQ(sentinel_state(t), sentinel);
  EXPECT_EQ(content_snapshot(t.root()), before);
}

TEST(Hostile, SpecialFilesAreLeftAloneAndNeverBlockTheRun) {
  TempTree t;
  build_guests(t);
  for (const char* g : {"g1", "g2"}) {
    std::string d = t.path(std::string(g) + "/dev");
    ASSERT_EQ(::mkdir(d.c_str(), 0755), 0);
    ASSERT_EQ(::mkfifo((d + "/fifo").c_str(), 0644), 0);
    ASSERT_EQ(::mknod((d + "/null").c_str(), S_IFCHR | 0666, makedev(1, 3)), 0);
    ASSERT_EQ(::mknod((d + "/sda").c_str(), S_IFBLK | 0660, makedev(8, 0)), 0);
    int s = ::socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un addr {};
    addr.sun_family = AF_UNIX;
    std::string sp = d + "/sock";
    ASSERT_LT(sp.size(), sizeof addr.sun_path);
    std::strcpy(addr.sun_path, sp.c_str());
    ASSERT_EQ(::bind(s, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    ::close(s);
  }
  auto before = snapshot(t.root());
  auto r = run_vunify({"--json", "--no-default-excludes", t.path("g1"), t.path("g2")});
  ASSERT_EQ(r.status, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["files_other"], 8);
  EXPECT_EQ(j["files_linked"], 3);
  EXPECT_EQ(content_snapshot(t.root()), content_snapshot(t.root()));
  auto after = snapshot(t.root());
  for (const char* p : {"g1/dev/fifo", "g2/dev/null", "g2/dev/sda", "g1/dev/sock"})
    EXPECT_EQ(after[p], before[p]) << p;
}

TEST(Hostile, NamesWithNewlinesAndInvalidUtf8KeepJsonValid) {
  TempTree t;
  std::string odd = "line\nbreak\xc3\x28-\x01";
  t.file("g1/usr/" + odd, random_bytes(5000, 1));
  t.file("g2/usr/" + odd, random_bytes(5000, 1));
  t.file("g1/\xff/x", random_bytes(5000, 2));
  t.file("g2/\xff/x", random_bytes(5000, 2));
  auto r = run_vunify({"--json", t.path("g1"), t.path("g2")});
  ASSERT_EQ(r.status, 0) << r.err;
  auto j = nlohmann::json::parse(r.out); // throws on invalid UTF-8
  EXPECT_EQ(j["files_linked"], 2);
  EXPECT_EQ(inode_of(t.path("g1/usr/" + odd)), inode_of(t.path("g2/usr/" + odd)));
  auto v = run_vunify({"-vv", t.path("g1"), t.path("g2")});
  EXPECT_EQ(v.status, 0);
}

TEST(Hostile, GuestSwappingDirectoriesForSymlinksDuringRuns) {
  TempTree t;
  build_guests(t);
  for (int i = 0; i < 40; ++i)
    for (const char* g : {"g1", "g2"})
      t.file(std::string(g) + "/usr/share/dir/f" + std::to_string(i),
             random_bytes(3000 + i, 10 + i));
  auto sentinel = sentinel_state(t);
  auto before = content_snapshot(t.root());
  for (int run = 0; run < 15; ++run) {
    std::atomic<bool> stop{false};
    // The "guest": swaps usr/share/dir and usr/lib with symlinks to the
    // sentinel as fast as it can while vunify runs.
    std::thread swapper([&] {
      const std::string dir = t.path("g2/usr/share/dir"), real = dir + ".real";
      const std::string lib = t.path("g2/usr/lib"), lib_real = lib + ".real";
      const std::string target = t.path("sentinel");
      while (!stop.load()) {
        if (::rename(dir.c_str(), real.c_str()) == 0) {
          [[maybe_unused]] int made = ::symlink(target.c_str(), dir.c_str()); // a race: may fail
          ::unlink(dir.c_str());
          ::rename(real.c_str(), dir.c_str());
        }
        if (::rename(lib.c_str(), lib_real.c_str()) == 0) {
          [[maybe_unused]] int made = ::symlink("../../sentinel", lib.c_str()); // a race: may fail
          ::unlink(lib.c_str());
          ::rename(lib_real.c_str(), lib.c_str());
        }
      }
    });
    auto r = run_vunify({"--no-default-excludes", "-q", t.path("g1"), t.path("g2")});
    stop = true;
    swapper.join();
    EXPECT_TRUE(r.status == 0 || r.status == 1) << r.err;
    // Give some files private copies again so the next run has work.
    for (int i = run % 7; i < 40; i += 7)
      ASSERT_EQ(sh("f=" + t.path("g2/usr/share/dir/f" + std::to_string(i)) +
                   "; chattr -i $f && cp -p $f $f.copy && mv -f $f.copy $f"),
                0);
  }
  EXPECT_EQ(sentinel_state(t), sentinel);
  EXPECT_EQ(content_snapshot(t.root()), before);
  // A final quiet run completes and leaves no temporaries.
  auto r = run_vunify({"--no-default-excludes", t.path("g1"), t.path("g2")});
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(sh("find " + t.root() + " -name '.vunify-tmp.*' | grep -q ."), 1);
}
