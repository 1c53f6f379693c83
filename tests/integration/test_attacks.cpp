// Classes of attack and misuse, each tried through every program and entry
// point it applies to (not only the one where it was first found): files
// that hold secrets, files the tools create, files the tools read.
#include "tests/support/run_program.h"
#include "tests/support/temp_tree.h"

#include <gtest/gtest.h>

#include <fcntl.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include <map>

using namespace vu::test;

namespace {

// Records every open of the watched files (IN_OPEN): a statx does not
// count, reading or mapping content needs an open.
class OpenWatch {
public:
  OpenWatch() : m_fd(::inotify_init1(IN_NONBLOCK | IN_CLOEXEC)) {}
  ~OpenWatch() { ::close(m_fd); }
  void watch(const std::string& path) {
    int wd = ::inotify_add_watch(m_fd, path.c_str(), IN_OPEN | IN_ACCESS);
    ASSERT_GE(wd, 0) << path;
    m_paths[wd] = path;
  }
  // Paths opened since the last call.
  std::vector<std::string> opened() {
    std::vector<std::string> out;
    alignas(struct inotify_event) char buf[65536];
    for (;;) {
      ssize_t n = ::read(m_fd, buf, sizeof buf);
      if (n <= 0) break;
      for (ssize_t i = 0; i < n;) {
        auto* e = reinterpret_cast<struct inotify_event*>(buf + i);
        out.push_back(m_paths[e->wd]);
        i += static_cast<ssize_t>(sizeof(struct inotify_event) + e->len);
      }
    }
    return out;
  }

private:
  int m_fd;
  std::map<int, std::string> m_paths;
};

const char* k_secrets[] = {"etc/shadow", "etc/gshadow", "etc/shadow-", "etc/ssh/ssh_host_ed25519_key",
                           "etc/ssl/private/site.pem", "root/.ssh/id_ed25519",
                           "home/u/.gnupg/private-keys-v1.d/k", "opt/app/tls/server.key",
                           "etc/letsencrypt/live/x/privkey.pem"};

} // namespace

TEST(Secrets, NeverOpenedWhateverTheOptionsAndTheProgram) {
  TempTree t;
  for (const char* g : {"g1", "g2"}) {
    for (const char* s : k_secrets) t.file(std::string(g) + "/" + s, random_bytes(3000, 99), 0600);
    t.file(std::string(g) + "/usr/bin/tool", random_bytes(5000, 1), 0755);
  }
  // A list that re-includes everything the default list keeps private.
  t.file("include-all", "+/etc/**\n+/root/**\n+/home/**\n+/**\n");
  OpenWatch watch;
  for (const char* g : {"g1", "g2"})
    for (const char* s : k_secrets) watch.watch(t.path(std::string(g) + "/" + s));
  const std::string g1 = t.path("g1"), g2 = t.path("g2");
  const std::vector<std::vector<std::string>> runs = {
      {VUNIFY_BIN, "--no-default-excludes", "-n", g1, g2},
      {VUNIFY_BIN, "--exclude-from", t.path("include-all"), "-n", g1, g2},
      {VDU_BIN, "--deep", "--no-store", g1, g2},
      {VHASHIFY_BIN, "--no-default-excludes", "--destination", t.path("store"), g1, g2},
      {VHASHIFY_BIN, "--exclude-from", t.path("include-all"), "--destination", t.path("store"), g1, g2},
      {VUNIFY_BIN, "--exclude-from", t.path("include-all"), g1, g2},
      {VUNIFY_BIN, "--no-default-excludes", g1, g2},
  };
  for (const auto& argv : runs) {
    auto r = run_program(argv);
    EXPECT_EQ(r.status, 0) << argv[0] << " " << argv[1] << ": " << r.err;
    EXPECT_EQ(watch.opened(), std::vector<std::string>{}) << argv[0] << " " << argv[1];
  }
  for (const char* s : k_secrets)
    EXPECT_FALSE(same_inode(t.path(std::string("g1/") + s), t.path(std::string("g2/") + s))) << s;
  EXPECT_TRUE(same_inode(t.path("g1/usr/bin/tool"), t.path("g2/usr/bin/tool")));
}
