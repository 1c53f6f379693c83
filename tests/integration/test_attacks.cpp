// Classes of attack and misuse, each tried through every program and entry
// point it applies to (not only the one where it was first found): files
// that hold secrets, files the tools create, files the tools read.
#include "tests/support/run_program.h"
#include "tests/support/temp_tree.h"

#include <gtest/gtest.h>

#include <fcntl.h>
#include <sys/file.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>

#include <map>
#include <thread>

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

const char* k_secrets[] = {"etc/shadow",
                           "etc/gshadow",
                           "etc/shadow-",
                           "etc/ssh/ssh_host_ed25519_key",
                           "etc/ssl/private/site.pem",
                           "root/.ssh/id_ed25519",
                           "home/u/.gnupg/private-keys-v1.d/k",
                           "opt/app/tls/server.key",
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
      {VHASHIFY_BIN, "--exclude-from", t.path("include-all"), "--destination", t.path("store"), g1,
       g2},
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

namespace {

// Two small guests under guests/ with a configuration base conf/.
void two_configured_guests(TempTree& t) {
  t.build(
      "d conf/.defaults/apps/vunify\nd conf/g1/apps/vunify\nd conf/g2\nd conf/g3/apps/vunify\n");
  for (const char* g : {"g1", "g2", "g3"}) {
    ASSERT_EQ(::symlink(t.path(std::string("guests/") + g).c_str(),
                        t.path(std::string("conf/") + g + "/vdir").c_str()),
              0);
    t.file(std::string("guests/") + g + "/usr/bin/tool", random_bytes(5000, 1), 0755);
  }
}

} // namespace

TEST(OutputFiles, ReportsAndStoreFilesNeverWrittenThroughASymlink) {
  TempTree t;
  two_configured_guests(t);
  t.file("outside/precious", "precious content\n");
  const std::string precious = t.path("outside/precious");
  const std::string conf = "--confdir=" + t.path("conf");

  // vdu --html FILE where FILE is a planted symlink: the link is replaced.
  ASSERT_EQ(::symlink(precious.c_str(), t.path("report.html").c_str()), 0);
  auto r = run_vdu({conf, "--no-store", "--html", t.path("report.html"), "g1", "g2"});
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(t.read("outside/precious"), "precious content\n");
  struct stat st {};
  ASSERT_EQ(::lstat(t.path("report.html").c_str(), &st), 0);
  EXPECT_TRUE(S_ISREG(st.st_mode));
  EXPECT_NE(t.read("report.html").find("<html"), std::string::npos);
  // A directory there is an error, not a write into it.
  t.mkdirs("adir");
  EXPECT_EQ(run_vdu({conf, "--no-store", "--html", t.path("adir"), "g1", "g2"}).status, 2);

  // The hash cache: a symlink at .cache is replaced by the tool's file.
  t.mkdirs("store");
  ASSERT_EQ(::symlink(precious.c_str(), t.path("store/.cache").c_str()), 0);
  r = run_vhashify({conf, "--destination", t.path("store"), "g1", "g2"});
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(t.read("outside/precious"), "precious content\n");
  ASSERT_EQ(::lstat(t.path("store/.cache").c_str(), &st), 0);
  EXPECT_TRUE(S_ISREG(st.st_mode));

  // The store lock: a symlink there is refused before any work.
  ASSERT_EQ(::unlink(t.path("store/.lock").c_str()), 0);
  ASSERT_EQ(::symlink(precious.c_str(), t.path("store/.lock").c_str()), 0);
  r = run_vhashify({conf, "--destination", t.path("store"), "g1", "g2"});
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.err.find(".lock"), std::string::npos) << r.err;
  EXPECT_EQ(t.read("outside/precious"), "precious content\n");
}

TEST(InputFiles, NeverBlockNeverReadWithoutBoundAndMustBeRegular) {
  TempTree t;
  two_configured_guests(t);
  const std::string conf = "--confdir=" + t.path("conf");
  // Each case must end (exit 2 with a message, or a completed run) within
  // the timeout; a hang is a failure.
  const int k_timeout = 60;
  auto expect_refused = [&](const std::vector<std::string>& argv, const std::string& what) {
    auto r = run_program(argv, {}, k_timeout);
    EXPECT_FALSE(r.timed_out) << what;
    EXPECT_EQ(r.status, 2) << what << ": " << r.err;
    EXPECT_NE(r.err.find("not a regular file"), std::string::npos) << what << ": " << r.err;
  };
  // A FIFO as a guest's exclude list, as the defaults' list, as a refserver.
  ASSERT_EQ(::mkfifo(t.path("conf/g1/apps/vunify/exclude").c_str(), 0644), 0);
  expect_refused({VUNIFY_BIN, conf, "-n", "g1", "g2"}, "FIFO exclude list");
  expect_refused({VHASHIFY_BIN, conf, "-n", "--destination", t.path("store"), "g1"},
                 "FIFO exclude list (vhashify)");
  ASSERT_EQ(::unlink(t.path("conf/g1/apps/vunify/exclude").c_str()), 0);
  ASSERT_EQ(::mkfifo(t.path("conf/.defaults/apps/vunify/exclude").c_str(), 0644), 0);
  expect_refused({VUNIFY_BIN, conf, "-n", "g1", "g2"}, "FIFO defaults exclude list");
  ASSERT_EQ(::unlink(t.path("conf/.defaults/apps/vunify/exclude").c_str()), 0);
  // The attribute back end's configuration (every program that protects
  // files reads it, and vserver start).
  ASSERT_EQ(::mkfifo(t.path("conf/.defaults/apps/vunify/attr-backend").c_str(), 0644), 0);
  expect_refused({VUNIFY_BIN, conf, "-n", "g1", "g2"}, "FIFO attr-backend");
  expect_refused({VHASHIFY_BIN, conf, "-n", "--destination", t.path("store"), "g1"},
                 "FIFO attr-backend (vhashify)");
  expect_refused({VBARRIER_BIN, conf, "check", t.path("guests")}, "FIFO attr-backend (vbarrier)");
  ASSERT_EQ(::unlink(t.path("conf/.defaults/apps/vunify/attr-backend").c_str()), 0);
  ASSERT_EQ(::mkfifo(t.path("conf/g3/apps/vunify/refserver.1").c_str(), 0644), 0);
  expect_refused({VUNIFY_BIN, conf, "-n", "g3"}, "FIFO refserver");
  // A device and a directory as --exclude-from.
  expect_refused({VUNIFY_BIN, conf, "-n", "--exclude-from", "/dev/zero", "g1", "g2"}, "/dev/zero");
  expect_refused({VUNIFY_BIN, conf, "-n", "--exclude-from", t.path("conf"), "g1", "g2"},
                 "directory");

  // The hash cache as a FIFO, a link to /dev/zero, a directory, a huge
  // sparse file: none blocks or is read whole; the run goes on without it.
  t.mkdirs("store");
  const std::string cache = t.path("store/.cache");
  auto run_store = [&](const std::string& what, int want) {
    auto r = run_program({VHASHIFY_BIN, conf, "--destination", t.path("store"), "g1", "g2"}, {},
                         k_timeout);
    EXPECT_FALSE(r.timed_out) << what;
    EXPECT_EQ(r.status, want) << what << ": " << r.err;
    // Reading the 3 GB file below into memory would show here.
    EXPECT_LT(r.max_rss_kb, 400 * 1024) << what;
  };
  ASSERT_EQ(::mkfifo(cache.c_str(), 0600), 0);
  run_store("FIFO cache", 0);
  ASSERT_EQ(::unlink(cache.c_str()), 0);
  ASSERT_EQ(::symlink("/dev/zero", cache.c_str()), 0);
  run_store("cache -> /dev/zero", 0);
  ASSERT_EQ(::unlink(cache.c_str()), 0);
  ASSERT_EQ(sh("truncate -s 3G " + cache), 0);
  run_store("3 GB cache", 0);
  struct stat st {};
  ASSERT_EQ(::lstat(cache.c_str(), &st), 0);
  EXPECT_LT(st.st_size, 1 << 20) << "the damaged cache was replaced";
  ASSERT_EQ(::unlink(cache.c_str()), 0);
  t.mkdirs("store/.cache");
  run_store("cache is a directory", 1); // cannot be saved: reported, exit 1
}

TEST(Arguments, EmptyNamesArePlainUsageErrorsInEveryProgram) {
  TempTree t;
  two_configured_guests(t);
  t.file("cwd/file", random_bytes(100, 1));
  const std::string conf = "--confdir=" + t.path("conf");
  const std::vector<std::vector<std::string>> cases = {
      {SETATTR_BIN, "--immutable", ""},
      {SHOWATTR_BIN, ""},
      {VHASHIFY_BIN, conf, "--destination", "", "g1"},
      {VHASHIFY_BIN, conf, ""},
      {VBARRIER_BIN, "set", ""},
      {VBARRIER_BIN, "--confdir", "", "check"},
      {VUNIFY_BIN, conf, "", "g1"},
      {VUNIFY_BIN, conf, "-R", ""},
      {VUNIFY_BIN, conf, "-R", "g1", "--path", ""},
      {VUNIFY_BIN, conf, "--exclude-from", "", "g1", "g2"},
      {VUNIFY_BIN, conf, "--exclude", "", "g1", "g2"},
      {VHASHIFY_BIN, conf, "--include", "", "g1"},
      {VDU_BIN, conf, ""},
      {VDU_BIN, "--space", ""},
      {VDU_BIN, conf, "--html", "", "g1"},
  };
  for (const auto& argv : cases) {
    auto r = run_program(argv);
    std::string what = argv[0] + " ... '" + argv.back() + "'";
    EXPECT_EQ(r.status, 2) << what << ": " << r.err;
    EXPECT_NE(r.err.find("must not be empty"), std::string::npos) << what << ": " << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << "one line: " << r.err;
  }
  EXPECT_FALSE(is_immutable_path(t.path("cwd"))) << "setattr --immutable '' changed something";
}

// Every program's --help ends with its exit codes and examples; --version
// says the suite's version.
TEST(Arguments, EveryProgramsHelpShowsExitCodesAndExamples) {
  for (const char* prog :
       {VUNIFY_BIN, VHASHIFY_BIN, VDU_BIN, SETATTR_BIN, SHOWATTR_BIN, VBARRIER_BIN, VSERVER_BIN,
        VPS_BIN, VSERVER_STAT_BIN, START_VSERVERS_BIN, VAPT_GET_BIN, VRPM_BIN, VATTR_BPF_BIN}) {
    auto help = run_program({prog, "--help"});
    EXPECT_EQ(help.status, 0) << prog;
    EXPECT_NE(help.out.find("Exit status: 0 "), std::string::npos) << prog << help.out;
    EXPECT_NE(help.out.find("Examples:\n  "), std::string::npos) << prog << help.out;
    auto version = run_program({prog, "--version"});
    EXPECT_EQ(version.status, 0) << prog;
    EXPECT_NE(version.out.find(" 0."), std::string::npos) << prog << ": " << version.out;
  }
}

TEST(Arguments, SetattrFlagsNumbersAndClearing) {
  TempTree t;
  t.file("f", "some file content\n");
  auto bad = run_setattr({"--flags", "abc", t.path("f")});
  EXPECT_EQ(bad.status, 2);
  EXPECT_NE(bad.err.find("--flags: 'abc' is not a number"), std::string::npos) << bad.err;
  EXPECT_EQ(bad.err.find("stoul"), std::string::npos) << bad.err;
  ASSERT_EQ(run_setattr({"--flags", "0x40000", t.path("f")}).status, 0);
  EXPECT_TRUE(is_immutable_path(t.path("f")));
  auto cleared = run_setattr({"--~flags", "0x40000", t.path("f")});
  EXPECT_EQ(cleared.status, 0) << cleared.err;
  EXPECT_FALSE(is_immutable_path(t.path("f")));
  auto typo = run_setattr({"--~flagz", "1", t.path("f")});
  EXPECT_EQ(typo.status, 2);
  EXPECT_NE(typo.err.find("setattr: error:"), std::string::npos) << typo.err;
}

TEST(Arguments, TrailingSlashFollowsASymlinkedDirectoryAsPosixSays) {
  TempTree t;
  t.file("real/a", random_bytes(5000, 1));
  t.file("real/sub/b", random_bytes(3000, 2));
  ASSERT_EQ(::symlink(t.path("real").c_str(), t.path("dlink").c_str()), 0);
  // Without the slash the symlink itself is the entry.
  auto plain = run_showattr({"-d", t.path("dlink")});
  EXPECT_EQ(plain.status, 0);
  EXPECT_NE(plain.out.find("--------- " + t.path("dlink")), std::string::npos) << plain.out;
  auto listed = run_showattr({t.path("dlink") + "/"});
  EXPECT_EQ(listed.status, 0) << listed.err;
  EXPECT_NE(listed.out.find(t.path("dlink") + "/a"), std::string::npos) << listed.out;
  auto set = run_setattr({"-R", "--immutable", t.path("dlink") + "/"});
  EXPECT_EQ(set.status, 0) << set.err;
  EXPECT_TRUE(is_immutable_path(t.path("real/a")));
  EXPECT_TRUE(is_immutable_path(t.path("real/sub/b")));
  ASSERT_EQ(run_setattr({"-R", "--~immutable", t.path("dlink") + "/"}).status, 0);
  EXPECT_FALSE(is_immutable_path(t.path("real/sub/b")));
  auto du = run_vdu({"--inodes", t.path("dlink") + "/"});
  EXPECT_EQ(du.status, 0) << du.err;
  EXPECT_EQ(du.out, t.path("dlink") + "/ 4\n"); // real, a, sub, b
}

TEST(Arguments, TheHostRepeatedAndNestedGuestsAreRefusedBeforeAnyWork) {
  TempTree t;
  two_configured_guests(t);
  t.file("guests/g1/usr/lib/x", random_bytes(5000, 7));
  t.file("guests/g2/usr/lib/x", random_bytes(5000, 7));
  t.mkdirs("conf/host");
  ASSERT_EQ(::symlink("/", t.path("conf/host/vdir").c_str()), 0);
  ASSERT_EQ(::symlink("/", t.path("rootlink").c_str()), 0);
  const std::string conf = "--confdir=" + t.path("conf");
  auto before = snapshot(t.path("guests"));
  const std::vector<std::vector<std::string>> cases = {
      {VUNIFY_BIN, conf, "host", "g1"},
      {VUNIFY_BIN, conf, "/", t.path("guests/g1")},
      {VUNIFY_BIN, conf, t.path("rootlink"), t.path("guests/g1")},
      {VUNIFY_BIN, conf, t.path("guests/g1"), t.path("guests/g1/usr")},
      {VUNIFY_BIN, conf, t.path("guests/g1/usr"), "g1"},
      {VUNIFY_BIN, conf, "-R", "g1", "g1"},
      {VUNIFY_BIN, conf, "-R", "g1", t.path("guests/g1/usr")},
      {VUNIFY_BIN, conf, "-R", "host"},
      {VHASHIFY_BIN, conf, "--destination", t.path("store"), "g1", t.path("guests/g1/usr")},
      {VHASHIFY_BIN, conf, "--destination", t.path("store"), "host"},
      {VDU_BIN, conf, "g1", t.path("guests/g1/usr")},
  };
  for (const auto& argv : cases) {
    auto r = run_program(argv);
    EXPECT_EQ(r.status, 2) << argv[2] << " " << argv[3] << ": " << r.err;
    EXPECT_NE(r.err.find("refused"), std::string::npos) << r.err;
  }
  EXPECT_EQ(snapshot(t.path("guests")), before);
  EXPECT_FALSE(is_immutable_path(t.path("guests/g1/usr/lib/x")));
}

TEST(Arguments, AllSkipsAGuestWithoutARootAndSaysSo) {
  TempTree t;
  two_configured_guests(t);
  t.mkdirs("conf/gone");
  ASSERT_EQ(::symlink(t.path("guests/gone").c_str(), t.path("conf/gone/vdir").c_str()), 0);
  const std::string conf = "--confdir=" + t.path("conf");
  for (const auto& argv : std::vector<std::vector<std::string>>{
           {VUNIFY_BIN, conf, "--all"},
           {VHASHIFY_BIN, conf, "--destination", t.path("store"), "--all"},
           {VDU_BIN, conf, "--all"}}) {
    auto r = run_program(argv);
    EXPECT_EQ(r.status, 1) << argv[0] << ": " << r.err;
    EXPECT_NE(r.err.find("guest 'gone' skipped"), std::string::npos) << r.err;
  }
  EXPECT_TRUE(same_inode(t.path("guests/g1/usr/bin/tool"), t.path("guests/g2/usr/bin/tool")))
      << "the other guests were still unified";
}

TEST(HashStore, InsideAGuestOrOnAnotherFileSystemIsRefusedBeforeAnyWork) {
  TempTree t;
  two_configured_guests(t);
  const std::string conf = "--confdir=" + t.path("conf");
  auto before = snapshot(t.path("guests"));
  auto refused = [&](const std::vector<std::string>& argv, const std::string& why) {
    auto r = run_program(argv);
    EXPECT_EQ(r.status, 2) << why << ": " << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << why << ": " << r.err;
    EXPECT_EQ(snapshot(t.path("guests")), before) << why;
  };
  // Inside a guest of the run, inside a configured guest outside the run,
  // and a store that contains a guest.
  refused({VHASHIFY_BIN, conf, "--destination", t.path("guests/g1/usr/store"), "g1", "g2"},
          "in g1");
  refused({VUNIFY_BIN, conf, "--store", t.path("guests/g1/usr/store"), "g1", "g2"},
          "in g1 (vunify)");
  refused({VHASHIFY_BIN, conf, "--destination", t.path("guests/g3/store"), "g1", "g2"}, "in g3");
  refused({VHASHIFY_BIN, conf, "--destination", t.path("guests"), "g1", "g2"}, "holds guests");
  EXPECT_FALSE(fs_exists(t.path("guests/g1/usr/store")));
  EXPECT_FALSE(fs_exists(t.path("guests/g3/store")));
  // Another file system: a tmpfs mounted in the scratch tree.
  t.mkdirs("othermnt");
  ScopedMount other("tmpfs", t.path("othermnt"));
  if (!other.ok()) GTEST_SKIP() << "cannot mount tmpfs here";
  refused({VHASHIFY_BIN, conf, "--destination", t.path("othermnt/store"), "g1", "g2"}, "other fs");
  EXPECT_FALSE(fs_exists(t.path("othermnt/store")));
}

TEST(HashStore, UtilVserverConfigurationNamesOneStorePerFileSystem) {
  TempTree t;
  two_configured_guests(t);
  // .defaults/apps/vunify/hash holds util-vserver's settings files and one
  // link per file system to the real store.
  t.mkdirs("conf/.defaults/apps/vunify/hash");
  t.file("conf/.defaults/apps/vunify/hash/method", "SHA1\n");
  t.mkdirs("hashstore");
  ASSERT_EQ(
      ::symlink(t.path("hashstore").c_str(), t.path("conf/.defaults/apps/vunify/hash/0").c_str()),
      0);
  auto config_before = snapshot(t.path("conf"));
  const std::string conf = "--confdir=" + t.path("conf");
  auto r = run_vhashify({conf, "g1", "g2"});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(snapshot(t.path("conf")), config_before) << "nothing written into the configuration";
  EXPECT_TRUE(fs_exists(t.path("hashstore/.lock")));
  EXPECT_TRUE(same_inode(t.path("guests/g1/usr/bin/tool"), t.path("guests/g2/usr/bin/tool")));
  // A guest's own apps/vunify/hash wins; an entry on no file system of the
  // guest is an error before any work.
  t.mkdirs("conf/g3/apps/vunify/hash");
  t.mkdirs("othermnt");
  {
    ScopedMount other("tmpfs", t.path("othermnt"));
    if (!other.ok()) GTEST_SKIP() << "cannot mount tmpfs here";
    ASSERT_EQ(
        ::symlink(t.path("othermnt").c_str(), t.path("conf/g3/apps/vunify/hash/other").c_str()), 0);
    auto bad = run_vhashify({conf, "g3"});
    EXPECT_EQ(bad.status, 2);
    EXPECT_NE(bad.err.find("no entry of"), std::string::npos) << bad.err;
  }
  // util-vserver's manual form with one pair, and --insecure.
  t.file("excl", "/etc\n");
  auto manual = run_vhashify({"--manually", "--insecure", "--destination", t.path("hashstore"),
                              t.path("guests/g3"), t.path("excl")});
  EXPECT_EQ(manual.status, 0) << manual.err;
  EXPECT_TRUE(same_inode(t.path("guests/g1/usr/bin/tool"), t.path("guests/g3/usr/bin/tool")));
}

namespace {

// conf/ with guests g1..gN (vdir links to guests/gN), files from `files`.
void configured_guests(TempTree& t, int n) {
  t.mkdirs("conf/.defaults");
  for (int i = 1; i <= n; ++i) {
    std::string g = "g" + std::to_string(i);
    t.mkdirs("conf/" + g);
    t.mkdirs("guests/" + g);
    ASSERT_EQ(::symlink(t.path("guests/" + g).c_str(), t.path("conf/" + g + "/vdir").c_str()), 0);
  }
}

struct stat lstat_of(const std::string& p) {
  struct stat st {};
  ::lstat(p.c_str(), &st);
  return st;
}

} // namespace

TEST(PlantedNames, NoProgramTouchesAnInodeWithNamesItDidNotSee) {
  // A guest root links a host file (a `cp -al` backup made it a name in the
  // guest) under a name that looks like the suite's temporary, next to the
  // one it had. Nothing may flag, delete or change the host file.
  TempTree t;
  configured_guests(t, 2);
  const std::string data = random_bytes(9000, 5);
  t.file("outside/precious", data);
  t.file("guests/g2/usr/bin/normal", data);
  t.file("guests/g2/usr/bin/.vunify-tmp.mine", "unique content the guest keeps\n");
  t.mkdirs("guests/g1/usr/bin");
  ASSERT_EQ(::link(t.path("outside/precious").c_str(), t.path("guests/g1/usr/bin/normal").c_str()),
            0);
  for (const char* planted : {".vunify-tmp.x", ".vunify-tmp.0123456789abcdef.fedcba9876543210"})
    ASSERT_EQ(::link(t.path("outside/precious").c_str(),
                     (t.path("guests/g1/usr/bin/") + planted).c_str()),
              0);
  const std::string conf = "--confdir=" + t.path("conf");
  const auto precious_ino = lstat_of(t.path("outside/precious")).st_ino;
  const std::vector<std::vector<std::string>> runs = {
      {VUNIFY_BIN, conf, "g1", "g2"},
      {VUNIFY_BIN, conf, "--no-default-excludes", "g1", "g2"},
      {VHASHIFY_BIN, conf, "--destination", t.path("store"), "g1", "g2"},
      {VHASHIFY_BIN, conf, "--destination", t.path("store"), "--gc"},
      {VUNIFY_BIN, conf, "-R", "g2"},
      {VUNIFY_BIN, conf, "-R", "g1"},
  };
  for (const auto& argv : runs) {
    auto r = run_program(argv);
    EXPECT_TRUE(r.status == 0 || r.status == 1) << argv[2] << ": " << r.err;
    EXPECT_FALSE(is_immutable_path(t.path("outside/precious"))) << argv[2] << " " << argv[3];
    EXPECT_EQ(t.read("outside/precious"), data);
    EXPECT_EQ(lstat_of(t.path("outside/precious")).st_ino, precious_ino);
    EXPECT_EQ(t.read("guests/g2/usr/bin/.vunify-tmp.mine"), "unique content the guest keeps\n")
        << "a guest's own file named like a temporary is never removed (" << argv[2] << ")";
  }
  // The planted names are still the guest's (-R gave g1 private copies).
  EXPECT_TRUE(fs_exists(t.path("guests/g1/usr/bin/.vunify-tmp.x")));
}

TEST(GuestWriter, OtherGuestsStayByteIdenticalWhileAGuestWritesInALoop) {
  // A process inside g1 opens g1's files for writing in a loop and appends
  // to whatever it gets, while g1 is de-unified and unified again, 100
  // times. Whatever it writes must show in g1 alone.
  TempTree t;
  configured_guests(t, 3);
  const int k_files = 24;
  for (int i = 0; i < k_files; ++i)
    for (const char* g : {"g1", "g2", "g3"}) {
      std::string p = std::string("guests/") + g + "/usr/f" + std::to_string(i);
      t.file(p, random_bytes(4096 + 512 * (i % 5), 100 + i));
      t.file(std::string("pristine/") + g + "/usr/f" + std::to_string(i),
             random_bytes(4096 + 512 * (i % 5), 100 + i));
    }
  const std::string conf = "--confdir=" + t.path("conf");
  ASSERT_EQ(run_vunify({conf, "-q", "g1", "g2", "g3"}).status, 0);
  const auto pristine = content_snapshot(t.path("pristine/g2"));
  pid_t writer = ::fork();
  if (writer == 0) {
    // Only system calls from here: the test process has threads.
    if (::chroot(t.path("guests/g1").c_str()) != 0 || ::chdir("/") != 0) ::_exit(2);
    unsigned n = 1;
    char path[32];
    for (;;) {
      n = n * 1103515245 + 12345;
      int i = static_cast<int>((n >> 8) % k_files);
      std::snprintf(path, sizeof path, "/usr/f%d", i);
      int fd = ::open(path, O_WRONLY | O_APPEND | O_CLOEXEC);
      if (fd >= 0) {
        (void)!::write(fd, "LEAK", 4);
        ::close(fd);
      }
    }
  }
  ASSERT_GT(writer, 0);
  int leaks = 0;
  for (int round = 0; round < 100 && leaks == 0; ++round) {
    auto r = run_vunify({conf, "-q", "-R", "g1"});
    EXPECT_TRUE(r.status == 0 || r.status == 1) << r.err;
    for (const char* g : {"g2", "g3"})
      if (content_snapshot(t.path(std::string("guests/") + g)) != pristine) ++leaks;
    r = run_vunify({conf, "-q", "g1", "g2", "g3"});
    EXPECT_TRUE(r.status == 0 || r.status == 1) << r.err;
    for (const char* g : {"g2", "g3"})
      if (content_snapshot(t.path(std::string("guests/") + g)) != pristine) ++leaks;
    // Put back what the writer appended to g1's private files, so the
    // next rounds share them again.
    for (int i = 0; i < k_files; ++i) {
      std::string p = "guests/g1/usr/f" + std::to_string(i);
      if (is_immutable_path(t.path(p))) continue;
      std::string want = t.read("pristine/g1/usr/f" + std::to_string(i));
      if (t.read(p) == want) continue;
      t.file(p + ".new", want);
      ASSERT_EQ(::rename(t.path(p + ".new").c_str(), t.path(p).c_str()), 0);
    }
    EXPECT_EQ(leaks, 0) << "round " << round;
  }
  ::kill(writer, SIGKILL);
  ::waitpid(writer, nullptr, 0);
}

TEST(OpenWriters, AWriteThroughADescriptorOpenedBeforeTheRunIsNeverLost) {
  TempTree t;
  configured_guests(t, 3);
  for (const char* g : {"g1", "g2", "g3"})
    t.file(std::string("guests/") + g + "/usr/a", random_bytes(7000, 1));
  const std::string conf = "--confdir=" + t.path("conf");
  for (const std::vector<std::string>& argv :
       {std::vector<std::string>{VUNIFY_BIN, conf, "--json", "g1", "g2", "g3"},
        std::vector<std::string>{VHASHIFY_BIN, conf, "--json", "--destination", t.path("store"),
                                 "g1", "g2", "g3"}}) {
    // g2's file is held open for writing by a process (this test).
    int fd = ::open(t.path("guests/g2/usr/a").c_str(), O_WRONLY);
    ASSERT_GE(fd, 0);
    auto r = run_program(argv);
    EXPECT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(json_of(r)["skipped"]["busy"], 1) << r.out;
    ASSERT_EQ(::pwrite(fd, "WRITTEN", 7, 0), 7);
    ::close(fd);
    EXPECT_EQ(t.read("guests/g2/usr/a").substr(0, 7), "WRITTEN") << argv[0];
    EXPECT_EQ(t.read("guests/g3/usr/a"), random_bytes(7000, 1)) << argv[0];
    EXPECT_FALSE(same_inode(t.path("guests/g2/usr/a"), t.path("guests/g3/usr/a")));
    t.file("guests/g2/usr/a.new", random_bytes(7000, 1)); // the next program's turn
    ASSERT_EQ(::rename(t.path("guests/g2/usr/a.new").c_str(), t.path("guests/g2/usr/a").c_str()),
              0);
  }
}

TEST(Mtimes, ContentEqualFilesWithOtherMtimesStayApartUnlessAsked) {
  TempTree t;
  configured_guests(t, 2);
  for (const char* g : {"g1", "g2"}) {
    t.file(std::string("guests/") + g + "/usr/same-time", random_bytes(6000, 1));
    t.file(std::string("guests/") + g + "/usr/other-time", random_bytes(6000, 2));
  }
  ASSERT_EQ(sh("touch -d '2021-06-01 12:00:00.5' " + t.path("guests/g2/usr/other-time")), 0);
  const std::string conf = "--confdir=" + t.path("conf");
  auto mtime = [&](const std::string& p) {
    struct stat st = lstat_of(t.path(p));
    return std::to_string(st.st_mtim.tv_sec) + "." + std::to_string(st.st_mtim.tv_nsec);
  };
  const std::string g2_time = mtime("guests/g2/usr/other-time");
  for (const std::vector<std::string>& argv :
       {std::vector<std::string>{VUNIFY_BIN, conf, "g1", "g2"},
        std::vector<std::string>{VHASHIFY_BIN, conf, "--destination", t.path("store"), "g1",
                                 "g2"}}) {
    ASSERT_EQ(run_program(argv).status, 0) << argv[0];
    EXPECT_TRUE(same_inode(t.path("guests/g1/usr/same-time"), t.path("guests/g2/usr/same-time")));
    EXPECT_FALSE(same_inode(t.path("guests/g1/usr/other-time"), t.path("guests/g2/usr/other-time")))
        << argv[0];
    EXPECT_EQ(mtime("guests/g2/usr/other-time"), g2_time) << "every name keeps its own mtime";
    ASSERT_EQ(run_vunify({conf, "-R", "g1", "g2"}).status, 0);
  }
  auto r = run_vunify({conf, "--ignore-mtime", "g1", "g2"});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_TRUE(same_inode(t.path("guests/g1/usr/other-time"), t.path("guests/g2/usr/other-time")));
}

TEST(Deunify, NamesTheSuiteJoinedBecomeIndependentAndTheGuestsOwnLinksStay) {
  TempTree t;
  configured_guests(t, 2);
  for (const char* g : {"g1", "g2"}) {
    // a and b: independent files with equal content; x and y: one inode
    // with two names, as a package can ship it.
    t.file(std::string("guests/") + g + "/usr/a", random_bytes(6000, 1));
    t.file(std::string("guests/") + g + "/usr/b", random_bytes(6000, 1));
    t.file(std::string("guests/") + g + "/usr/x", random_bytes(8000, 2));
    ASSERT_EQ(::link(t.path(std::string("guests/") + g + "/usr/x").c_str(),
                     t.path(std::string("guests/") + g + "/usr/y").c_str()),
              0);
  }
  const std::string conf = "--confdir=" + t.path("conf");
  ASSERT_EQ(run_vunify({conf, "g1", "g2"}).status, 0);
  ASSERT_TRUE(same_inode(t.path("guests/g1/usr/a"), t.path("guests/g2/usr/b")));
  for (const char* g : {"g1", "g2"}) {
    auto r = run_vunify({conf, "-R", g});
    ASSERT_EQ(r.status, 0) << r.err;
    std::string p = std::string("guests/") + g + "/usr/";
    EXPECT_FALSE(same_inode(t.path(p + "a"), t.path(p + "b")))
        << g << ": a and b are independent again";
    EXPECT_TRUE(same_inode(t.path(p + "x"), t.path(p + "y"))) << g << ": its own hard link stays";
    ASSERT_EQ(sh("echo edit >> " + t.path(p + "a")), 0);
    EXPECT_EQ(t.read(p + "b"), random_bytes(6000, 1)) << "editing one does not change the other";
  }
}

TEST(FdLimits, HugeGroupsAndDeepTreesUnderAHardLimitOf1024Descriptors) {
  TempTree t;
  configured_guests(t, 2);
  // 5,000 files of one content in each guest: one group of 10,000 names.
  const std::string data = random_bytes(100, 7);
  for (const char* g : {"g1", "g2"})
    for (int i = 0; i < 5000; ++i)
      t.file(std::string("guests/") + g + "/usr/d" + std::to_string(i % 50) + "/f" +
                 std::to_string(i),
             data);
  // And a directory chain 1,500 levels deep: its paths pass PATH_MAX, so
  // it is made (and looked at) by descriptors, one level at a time.
  std::string deep = "usr/deep";
  for (int i = 0; i < 1500; ++i) deep += "/dd";
  auto walk_down = [&](const std::string& top, bool make) {
    int fd = ::open(top.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    for (int i = 0; fd >= 0 && i < 1500; ++i) {
      if (make) ::mkdirat(fd, "dd", 0755);
      int next = ::openat(fd, "dd", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
      ::close(fd);
      fd = next;
    }
    return fd;
  };
  for (const char* g : {"g1", "g2"}) {
    t.mkdirs(std::string("guests/") + g + "/usr/deep");
    int fd = walk_down(t.path(std::string("guests/") + g + "/usr/deep"), true);
    ASSERT_GE(fd, 0);
    int f = ::openat(fd, "bottom", O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    ASSERT_EQ(::write(f, "the file at the bottom of a deep tree", 37), 37);
    struct timespec times[2] = {{TempTree::k_file_time, 0}, {TempTree::k_file_time, 0}};
    ::futimens(f, times);
    ::close(f);
    ::close(fd);
  }
  auto deep_ino = [&](const std::string& usr) {
    int fd = walk_down(t.path(usr + "/deep"), false);
    struct stat st {};
    ::fstatat(fd, "bottom", &st, AT_SYMLINK_NOFOLLOW);
    ::close(fd);
    return st.st_ino;
  };
  auto same_deep = [&](const std::string& a, const std::string& b) {
    return deep_ino(a) == deep_ino(b);
  };
  const std::string conf = "--confdir=" + t.path("conf");
  auto limited = [&](std::vector<std::string> argv) {
    argv.insert(argv.begin(), {"/usr/bin/prlimit", "--nofile=1024:1024", "--"});
    return run_program(argv);
  };
  auto r = limited({VUNIFY_BIN, conf, "--json", "g1", "g2"});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(json_of(r)["files_linked"], 10000) << "every name but one, in one inode";
  EXPECT_TRUE(same_inode(t.path("guests/g1/usr/d0/f0"), t.path("guests/g2/usr/d49/f4999")));
  EXPECT_TRUE(same_deep("guests/g1/usr", "guests/g2/usr"));
  r = limited({VUNIFY_BIN, conf, "--json", "-R", "g2"});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(json_of(r)["files_deunified"], 5001);
  EXPECT_FALSE(same_deep("guests/g1/usr", "guests/g2/usr"));
  r = limited({VHASHIFY_BIN, conf, "--json", "--destination", t.path("store"), "g1", "g2"});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_TRUE(same_deep("guests/g1/usr", "guests/g2/usr"));
  // The command-line walks of setattr, showattr and vdu, just as deep.
  r = limited({SHOWATTR_BIN, "-R", t.path("guests/g1/usr/deep")});
  EXPECT_EQ(r.status, 0) << r.err.substr(0, 500);
  EXPECT_NE(r.out.find("/bottom\n"), std::string::npos);
  r = limited({VDU_BIN, "--inodes", t.path("guests/g1/usr/deep")});
  EXPECT_EQ(r.status, 0) << r.err.substr(0, 500);
  EXPECT_EQ(r.out, t.path("guests/g1/usr/deep") + " 1502\n");
  r = limited({SETATTR_BIN, "-R", "--~immutable", t.path("guests/g2/usr/deep")});
  EXPECT_EQ(r.status, 0) << r.err.substr(0, 500);
}

TEST(Locks, RunsOnOneGuestNeverInterleave) {
  TempTree t;
  configured_guests(t, 2);
  for (int i = 0; i < 300; ++i)
    for (const char* g : {"g1", "g2"})
      t.file(std::string("guests/") + g + "/usr/f" + std::to_string(i), random_bytes(3000, i));
  const std::string conf = "--confdir=" + t.path("conf");
  // The lock of g1, as a run holds it.
  struct stat root = lstat_of(t.path("guests/g1"));
  std::string state = std::getenv("VUNIFY_STATE_DIR");
  ASSERT_EQ(sh("mkdir -p " + state + "/locks"), 0);
  char name[64];
  std::snprintf(name, sizeof name, "/locks/guest-%llx-%llx.lock",
                static_cast<unsigned long long>(root.st_dev),
                static_cast<unsigned long long>(root.st_ino));
  int lock = ::open((state + name).c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  ASSERT_GE(lock, 0);
  ASSERT_EQ(::flock(lock, LOCK_EX), 0);
  ASSERT_EQ(::pwrite(lock, "vhashify (pid 4242, since now)\n", 31, 0), 31);
  auto busy = run_vunify({conf, "--no-wait", "g1", "g2"});
  EXPECT_EQ(busy.status, 2);
  EXPECT_NE(busy.err.find("guest 'g1' is being changed by vhashify (pid 4242"), std::string::npos)
      << busy.err;
  std::thread release([&] {
    ::usleep(500000);
    ::close(lock);
  });
  auto waited = run_vunify({conf, "g1", "g2"});
  release.join();
  EXPECT_EQ(waited.status, 0) << waited.err;
  EXPECT_NE(waited.err.find("vunify: waiting: g1 is being changed by vhashify"), std::string::npos)
      << waited.err;
  // Two real runs at once, over and over: neither fails.
  for (int round = 0; round < 5; ++round) {
    ASSERT_EQ(run_vunify({conf, "-q", "-R", "g1"}).status, 0);
    pid_t other = spawn_quiet({VUNIFY_BIN, conf, "-q", "g1", "g2"});
    auto mine = run_vunify({conf, "-q", "g2", "g1"});
    int status = 0;
    ::waitpid(other, &status, 0);
    EXPECT_EQ(mine.status, 0) << mine.err;
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  }
  EXPECT_TRUE(same_inode(t.path("guests/g1/usr/f7"), t.path("guests/g2/usr/f7")));
}
