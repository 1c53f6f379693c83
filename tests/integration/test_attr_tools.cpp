// setattr, showattr, vbarrier and vunify -R as an administrator uses them,
// and what a guest process without CAP_LINUX_IMMUTABLE can do to a unified
// file before and after de-unification.
#include "tests/support/run_program.h"
#include "tests/support/temp_tree.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <csignal>
#include <fcntl.h>
#include <random>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

using namespace vu::test;

namespace {
ProgramResult showattr(const std::vector<std::string>& a) {
  return run_showattr(a);
}
ProgramResult setattr(const std::vector<std::string>& a) {
  return run_setattr(a);
}
ProgramResult vbarrier(const std::vector<std::string>& a) {
  return run_vbarrier(a);
}
} // namespace

TEST(Showattr, ColumnsNamesAndListing) {
  TempTree t;
  t.build("f d/plain some-content\nf d/frozen more-content\nd d/sub\nd d/wall\nf d/.hidden "
          "dot-file-here\n"
          "p d/fifo\nl d/link plain\nf d/sub/deep deep-content\n");
  ASSERT_EQ(sh("chattr +i " + t.path("d/frozen") + " && chmod 000 " + t.path("d/wall")), 0);
  auto r = showattr({t.path("d")});
  ASSERT_EQ(r.status, 0) << r.err;
  std::string p = t.path("d");
  EXPECT_EQ(r.out, "--------- " + p +
                       "/fifo\n"
                       "------I-- " +
                       p +
                       "/frozen\n"
                       "--------- " +
                       p +
                       "/link\n"
                       "------i-- " +
                       p +
                       "/plain\n"
                       "----b-i-- " +
                       p +
                       "/sub\n"
                       "----B-i-- " +
                       p + "/wall\n");
  auto a = showattr({"-a", t.path("d")});
  EXPECT_NE(a.out.find("------i-- " + p + "/.hidden\n"), std::string::npos);
  auto d = showattr({"-d", t.path("d"), t.path("d/frozen")});
  EXPECT_EQ(d.out, "----b-i-- " + p + "\n------I-- " + p + "/frozen\n");
  auto rec = showattr({"-R", t.path("d")});
  EXPECT_NE(rec.out.find("------i-- " + p + "/sub/deep\n"), std::string::npos);
  auto missing = showattr({t.path("nope")});
  EXPECT_EQ(missing.status, 1);
  EXPECT_EQ(showattr({"--bogus"}).status, 2);
  sh("chattr -i " + t.path("d/frozen") + "; chmod 755 " + t.path("d/wall"));
}

TEST(Showattr, OneFileSystem) {
  TempTree t;
  t.build("f d/a a-file-here\nd d/mnt\n");
  ScopedMount mnt("tmpfs", t.path("d/mnt"), "size=1m");
  if (!mnt.ok()) GTEST_SKIP() << "cannot mount tmpfs";
  t.file("d/mnt/inner", "inner-file-here");
  auto all = showattr({"-R", t.path("d")});
  auto local = showattr({"-R", "-x", t.path("d")});
  mnt.unmount();
  EXPECT_NE(all.out.find("/mnt/inner"), std::string::npos);
  EXPECT_EQ(local.out.find("/mnt/inner"), std::string::npos);
  EXPECT_NE(local.out.find("/mnt\n"), std::string::npos) << "the mount point itself is shown";
}

TEST(Setattr, SetClearExitStatusAndNoSymlinkFollowing) {
  TempTree t;
  t.build(
      "f d/a first-file-content\nf d/b second-file-content\nd d/sub\nf d/sub/c third-file-content\n"
      "f outside/sentinel do-not-touch-me\n");
  ASSERT_EQ(::symlink(t.path("outside/sentinel").c_str(), t.path("d/sub/link").c_str()), 0);
  ASSERT_EQ(::symlink(t.path("outside").c_str(), t.path("d/dirlink").c_str()), 0);
  EXPECT_EQ(setattr({"--immutable", t.path("d/a")}).status, 0);
  EXPECT_TRUE(is_immutable_path(t.path("d/a")));
  EXPECT_EQ(setattr({"--~immutable", t.path("d/a")}).status, 0);
  EXPECT_FALSE(is_immutable_path(t.path("d/a")));
  EXPECT_EQ(setattr({"--flags", "0x40000", t.path("d/a")}).status, 0);
  EXPECT_TRUE(is_immutable_path(t.path("d/a")));
  EXPECT_EQ(setattr({"--!immutable", t.path("d/a")}).status, 0);
  EXPECT_FALSE(is_immutable_path(t.path("d/a")));
  // util-vserver's --iunlink: immutable on mainline, with a warning.
  auto iu = setattr({"--iunlink", t.path("d/b")});
  EXPECT_EQ(iu.status, 0);
  EXPECT_NE(iu.err.find("no iunlink"), std::string::npos);
  EXPECT_TRUE(is_immutable_path(t.path("d/b")));
  EXPECT_EQ(setattr({"--~iunlink", t.path("d/b")}).status, 0);
  EXPECT_FALSE(is_immutable_path(t.path("d/b")));
  // Per-file status: one bad file does not stop the others.
  auto mixed = setattr({"--immutable", t.path("d/missing"), t.path("d/a"), t.path("d/sub/link")});
  EXPECT_EQ(mixed.status, 1);
  EXPECT_TRUE(is_immutable_path(t.path("d/a")));
  EXPECT_NE(mixed.err.find("missing"), std::string::npos);
  EXPECT_NE(mixed.err.find("link"), std::string::npos);
  EXPECT_EQ(setattr({"--admin", t.path("d/b")}).status, 1) << "no admin flag on mainline";
  // -R sets the tree, never what symlinks point to.
  auto rec = setattr({"-R", "--immutable", t.path("d")});
  EXPECT_EQ(rec.status, 0) << rec.err;
  EXPECT_TRUE(is_immutable_path(t.path("d/sub/c")));
  EXPECT_FALSE(is_immutable_path(t.path("outside/sentinel")));
  EXPECT_EQ(setattr({"-R", "--~immutable", t.path("d")}).status, 0);
  EXPECT_FALSE(is_immutable_path(t.path("d/sub/c")));
  EXPECT_EQ(setattr({t.path("d/a")}).status, 2) << "no flag given";
  EXPECT_EQ(setattr({"--immutable"}).status, 2) << "no file given";
}

TEST(GuestProcess, CannotChangeAUnifiedFileUntilDeunified) {
  if (sh("command -v setpriv >/dev/null") != 0) GTEST_SKIP() << "setpriv not installed";
  TempTree t;
  for (const char* g : {"g1", "g2"})
    t.file(std::string(g) + "/usr/bin/tool", random_bytes(6000, 1), 0755);
  ASSERT_EQ(run_vunify({"-q", t.path("g1"), t.path("g2")}).status, 0);
  ASSERT_EQ(inode_of(t.path("g1/usr/bin/tool")), inode_of(t.path("g2/usr/bin/tool")));
  // A guest's root: uid 0 with every capability but CAP_LINUX_IMMUTABLE.
  auto as_guest = [&](const std::string& cmd) {
    return sh("setpriv --bounding-set=-linux_immutable sh -c '" + cmd + "' 2>/dev/null");
  };
  std::string f = t.path("g2/usr/bin/tool");
  ASSERT_EQ(as_guest("true"), 0);
  EXPECT_NE(as_guest("echo x >> " + f), 0) << "write";
  EXPECT_NE(as_guest("truncate -s 0 " + f), 0) << "truncate";
  EXPECT_NE(as_guest("chmod 777 " + f), 0) << "chmod";
  EXPECT_NE(as_guest("chown 1:1 " + f), 0) << "chown";
  EXPECT_NE(as_guest("rm -f " + f + " && test ! -e " + f), 0) << "unlink";
  EXPECT_NE(as_guest("chattr -i " + f), 0) << "clear the flag";
  EXPECT_EQ(t.read("g1/usr/bin/tool"), random_bytes(6000, 1));

  auto r = run_vunify({"-R", t.path("g2")});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(as_guest("echo x >> " + f), 0);
  EXPECT_EQ(as_guest("chmod 700 " + f), 0);
  EXPECT_EQ(as_guest("chown 1:1 " + f), 0);
  EXPECT_EQ(as_guest("truncate -s 10 " + f), 0);
  EXPECT_EQ(as_guest("rm " + f), 0);
  EXPECT_EQ(t.read("g1/usr/bin/tool"), random_bytes(6000, 1)) << "the other guest kept its file";
  EXPECT_FALSE(is_immutable_path(t.path("g1/usr/bin/tool"))) << "its last other link is gone";
}

TEST(Vbarrier, CheckAndSet) {
  TempTree t;
  t.build("d conf/.defaults\nd conf/web\nd conf/far\nd vservers/web/usr\nd elsewhere/far\nd "
          "vservers/.hash\n");
  ASSERT_EQ(::symlink(t.path("vservers").c_str(), t.path("conf/.defaults/vdirbase").c_str()), 0);
  ASSERT_EQ(::symlink(t.path("elsewhere/far").c_str(), t.path("conf/far/vdir").c_str()), 0);
  ASSERT_EQ(::chmod(t.path("vservers/.hash").c_str(), 0755), 0);
  auto bad = vbarrier({"--confdir=" + t.path("conf"), "check"});
  EXPECT_EQ(bad.status, 1);
  EXPECT_NE(bad.out.find("mode 755, not 000 (vbarrier set fixes it)"), std::string::npos)
      << bad.out;
  EXPECT_NE(bad.out.find("guest 'far'"), std::string::npos) << bad.out;
  EXPECT_NE(bad.out.find("hash store"), std::string::npos) << bad.out;
  // vunify warns about it.
  auto run = run_vunify({"--confdir=" + t.path("conf"), "--no-pkgmgmt", "web", "far"});
  EXPECT_NE(run.err.find("warning: barrier"), std::string::npos) << run.err;
  auto set = vbarrier({"--confdir=" + t.path("conf"), "set"});
  EXPECT_EQ(set.status, 0) << set.err;
  struct stat st {};
  ::stat(t.path("vservers").c_str(), &st);
  EXPECT_EQ(st.st_mode & 07777, 0u);
  ::stat(t.path("vservers/.hash").c_str(), &st);
  EXPECT_EQ(st.st_mode & 07777, 0700u);
  auto after = vbarrier({"--confdir=" + t.path("conf"), "check"});
  EXPECT_EQ(after.status, 1) << "'far' still lives outside the barrier";
  EXPECT_EQ(after.out.find("mode"), std::string::npos) << after.out;
  ASSERT_EQ(::unlink(t.path("conf/far/vdir").c_str()), 0);
  ASSERT_EQ(sh("rm -rf " + t.path("conf/far")), 0);
  auto good = vbarrier({"--confdir=" + t.path("conf"), "check"});
  EXPECT_EQ(good.status, 0) << good.out;
  EXPECT_EQ(vbarrier({"frobnicate"}).status, 2);
  ::chmod(t.path("vservers").c_str(), 0755);
}

// The bpf back end where its program cannot run (this machine's kernel is
// locked down): vattr-bpf says why in one line, a forced bpf back end
// still sets marks, and a host configured for bpf falls back to immutable
// with a warning - and starts no guest (tests/integration/test_vserver.cpp).
// The program itself is tested in a VM (tests/vm).
TEST(VattrBpf, RefusedKernelAndForcedOrConfiguredBackEnd) {
  TempTree t;
  t.file("f", "content of a file to mark");
  t.file("g", "content of another file");
  t.mkdirs("conf/.defaults/apps/vunify");
  t.file("conf/.defaults/apps/vunify/attr-backend", "bpf\n");
  const std::string pins = "VU_BPF_PIN_DIR=" + t.path("pins");
  auto load = run_program({VATTR_BPF_BIN, "load"}, {pins}, 30);
  if (load.status == 0) GTEST_SKIP() << "this kernel runs BPF LSM programs: the VM tests apply";
  EXPECT_EQ(load.status, 1);
  EXPECT_EQ(std::count(load.err.begin(), load.err.end(), '\n'), 1) << load.err;
  EXPECT_EQ(load.err.rfind("vattr-bpf: error: ", 0), 0u) << load.err;
  auto status = run_program({VATTR_BPF_BIN, "status", "--json"}, {pins}, 30);
  EXPECT_EQ(status.status, 1);
  auto j = nlohmann::json::parse(status.out);
  EXPECT_FALSE(j["loaded"].get<bool>());
  EXPECT_NE(j["why_not"].get<std::string>().find("not loaded"), std::string::npos);
  // Forced: the mark is set (S, A, d), with a warning that it is not
  // enforced; showattr shows iunlink with the same back end.
  auto set = setattr({"--attr-backend", "bpf", "--iunlink", t.path("f")});
  ASSERT_EQ(set.status, 0) << set.err;
  EXPECT_NE(set.err.find("not enforced"), std::string::npos) << set.err;
  auto shown = showattr({"--attr-backend", "bpf", t.path("f")});
  EXPECT_EQ(shown.out.rfind("-----UI-- ", 0), 0u) << shown.out;
  EXPECT_FALSE(is_immutable_path(t.path("f")));
  EXPECT_EQ(run_setattr({"--attr-backend", "bpf", "--~iunlink", t.path("f")}).status, 0);
  // Configured but unavailable: one warning line, and the immutable flag.
  auto conf = run_program({SETATTR_BIN, "--iunlink", t.path("g")},
                          {"VSERVER_CONFDIR=" + t.path("conf"), pins}, 30);
  ASSERT_EQ(conf.status, 0) << conf.err;
  EXPECT_NE(conf.err.find("the configured bpf attribute back end is unavailable"),
            std::string::npos)
      << conf.err;
  EXPECT_TRUE(is_immutable_path(t.path("g")));
  ASSERT_EQ(run_setattr({"--~immutable", t.path("g")}).status, 0);
  auto bad = setattr({"--attr-backend", "selinux", "--iunlink", t.path("g")});
  EXPECT_EQ(bad.status, 2);
}
