// The LD_PRELOAD library (pkgmgmt/preload): a probe program (tests/probe/
// preload_probe.c) calls each wrapped function under LD_PRELOAD with a
// guest root of the test's, and the library's parser directly.
#include "pkgmgmt/preload/passwd_parse.h"
#include "tests/support/run_program.h"
#include "tests/support/temp_tree.h"

#include <gtest/gtest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <fstream>

using vu::test::run_program;
using vu::test::TempTree;
namespace fs = std::filesystem;

namespace {

const char* k_passwd = "root:x:0:0:root:/root:/bin/bash\n"
                       "garbage line without fields\n"
                       "bad:x:12x:1::/:/bin/sh\n"
                       "toobig:x:4294967295:1::/:/bin/sh\n"
                       "uuidd:x:100:101::/run/uuidd:/usr/sbin/nologin\n"
                       "guest-only:x:1500:1500:Guest Only,,,:/home/g:/bin/sh\n";
const char* k_group = "root:x:0:\n"
                      "uuidd:x:101:\n"
                      "staff:x:50:guest-only,other\n"
                      "broken:x:\n"
                      "web:x:33:other,guest-only\n"
                      "guest-only:x:1500:\n";

class Preload : public ::testing::Test {
protected:
  void SetUp() override {
    t.file("root/etc/passwd", k_passwd);
    t.file("root/etc/group", k_group);
    t.file("helper.sh",
           "#!/bin/sh\nprintf '%s\\n' \"$@\" > \"$VU_TEST_OUT\"\n"
           "env | grep -E '^(LD_PRELOAD|VU_PRELOAD_|FROM_EXECLE)' >> \"$VU_TEST_OUT\"\n"
           "exit 7\n",
           0755);
  }

  std::vector<std::string> env(bool with_helper = true) {
    std::vector<std::string> e;
    e.push_back("LD_PRELOAD=" + m_lib);
    e.push_back("VU_PRELOAD_ROOT=" + t.path("root"));
    e.push_back("VU_TEST_OUT=" + t.path("out"));
    if (with_helper) e.push_back("VU_PRELOAD_EXEC=" + t.path("helper.sh"));
    return e;
  }

  std::string probe(const std::vector<std::string>& args, bool with_helper = true,
                    int want_status = 0) {
    std::vector<std::string> argv = args;
    argv.insert(argv.begin(), m_probe);
    auto r = run_program(argv, env(with_helper), 30);
    EXPECT_EQ(r.status, want_status) << args.front() << ": " << r.err;
    return r.out;
  }

  const std::string m_lib = VU_PRELOAD_LIB;
  const std::string m_probe = VU_PRELOAD_PROBE_BIN;
  TempTree t;
};

TEST_F(Preload, LookupsAnswerFromTheGuestsFiles) {
  EXPECT_EQ(probe({"pwnam", "uuidd"}), "uuidd:100:101::/run/uuidd:/usr/sbin/nologin\n");
  EXPECT_EQ(probe({"pwuid", "1500"}), "guest-only:1500:1500:Guest Only,,,:/home/g:/bin/sh\n");
  EXPECT_EQ(probe({"pwnam", "nobody-here"}), "none 0\n");
  EXPECT_EQ(probe({"pwnam", "bad"}), "none 0\n"); // malformed lines are no entries
  EXPECT_EQ(probe({"pwnam", "toobig"}), "none 0\n");
  EXPECT_EQ(probe({"grnam", "staff"}), "staff:50:guest-only,other\n");
  EXPECT_EQ(probe({"grgid", "101"}), "uuidd:101:\n");
  EXPECT_EQ(probe({"grnam", "broken"}), "none 0\n");
  EXPECT_EQ(probe({"pwnam_r", "uuidd", "4096"}), "uuidd:100:101::/run/uuidd:/usr/sbin/nologin\n");
  EXPECT_EQ(probe({"pwuid_r", "100", "4096"}), "uuidd:100:101::/run/uuidd:/usr/sbin/nologin\n");
  EXPECT_EQ(probe({"grnam_r", "web", "4096"}), "web:33:other,guest-only\n");
  EXPECT_EQ(probe({"grgid_r", "50", "4096"}), "staff:50:guest-only,other\n");
  // The host's entries are not seen: the host's root has no uid 1500 name
  // "guest-only", and the guest's root entry is the guest's.
  EXPECT_EQ(probe({"pwnam", "root"}), "root:0:0:root:/root:/bin/bash\n");
}

TEST_F(Preload, ReentrantFormsSayErangeWhenTheBufferIsSmall) {
  const std::string erange = "none " + std::to_string(ERANGE) + "\n";
  EXPECT_EQ(probe({"pwnam_r", "uuidd", "10"}), erange);
  EXPECT_EQ(probe({"pwuid_r", "100", "0"}), erange);
  EXPECT_EQ(probe({"grnam_r", "staff", "12"}), erange);
  EXPECT_EQ(probe({"grgid_r", "50", "8"}), erange);
  EXPECT_EQ(probe({"pwent_r", "5"}), erange);
  EXPECT_EQ(probe({"grent_r", "5"}), erange);
  // Exactly enough: 5 strings of uuidd with their NULs.
  const size_t need = 6 + 2 + 1 + 11 + 18;
  EXPECT_EQ(probe({"pwnam_r", "uuidd", std::to_string(need)}),
            "uuidd:100:101::/run/uuidd:/usr/sbin/nologin\n");
  EXPECT_EQ(probe({"pwnam_r", "uuidd", std::to_string(need - 1)}), erange);
}

TEST_F(Preload, EnumerationAndGroupLists) {
  EXPECT_EQ(probe({"pwent"}), "root:0:0:root:/root:/bin/bash\n"
                              "uuidd:100:101::/run/uuidd:/usr/sbin/nologin\n"
                              "guest-only:1500:1500:Guest Only,,,:/home/g:/bin/sh\n");
  EXPECT_EQ(probe({"grent"}), "root:0:\nuuidd:101:\nstaff:50:guest-only,other\n"
                              "web:33:other,guest-only\nguest-only:1500:\n");
  EXPECT_EQ(probe({"pwent_r", "4096"}), "root:0:0:root:/root:/bin/bash\n");
  EXPECT_EQ(probe({"grouplist", "guest-only", "1500", "10"}), "3 3 1500 50 33\n");
  EXPECT_EQ(probe({"grouplist", "guest-only", "1500", "2"}), "-1 3\n"); // room for 2 of 3
  EXPECT_EQ(probe({"grouplist", "nobody", "7", "10"}), "1 1 7\n");
  EXPECT_EQ(probe({"initgroups", "guest-only", "1500"}), "33 50 1500\n"); // the kernel sorts them
}

TEST_F(Preload, EveryExecFormRunsTheHelperWithoutThePreloadVariables) {
  const std::string root = t.path("root");
  for (const char* form : {"execve", "execv", "execvp", "execvpe", "execl", "execlp", "execle"}) {
    ::unlink(t.path("out").c_str());
    // The probe is replaced by the helper, whose exit status is 7.
    EXPECT_EQ(probe({form, "/usr/bin/id", "-u"}, true, 7), "") << form;
    std::string got = t.read("out");
    std::string want = root + "\n--\n/usr/bin/id\n/usr/bin/id\n-u\n";
    if (std::string(form) == "execle") want += "FROM_EXECLE=1\n";
    EXPECT_EQ(got, want) << form;
  }
  for (const char* form : {"posix_spawn", "posix_spawnp"}) {
    ::unlink(t.path("out").c_str());
    EXPECT_EQ(probe({form, "id", "-u"}), "status 7\n") << form;
    EXPECT_EQ(t.read("out"), root + "\n--\nid\nid\n-u\n") << form;
  }
  ::unlink(t.path("out").c_str());
  EXPECT_EQ(probe({"system", "echo hi"}), "status 7\n");
  EXPECT_EQ(t.read("out"), root + "\n--\n/bin/sh\nsh\n-c\necho hi\n");
  EXPECT_EQ(probe({"popen", "echo hi"}), "none " + std::to_string(EACCES) + "\n");
}

TEST_F(Preload, WithoutAHelperNothingRunsOnTheHost) {
  const std::string eacces = "none " + std::to_string(EACCES) + "\n";
  for (const char* form : {"execve", "execv", "execvp", "execl", "execle"})
    EXPECT_EQ(probe({form, "/bin/touch", t.path("ran")}, false), eacces) << form;
  EXPECT_EQ(probe({"posix_spawn", "/bin/touch", t.path("ran")}, false), eacces);
  EXPECT_FALSE(fs::exists(t.path("ran")));
}

TEST_F(Preload, HostilePasswdFilesAnswerNothing) {
  // A symlink to the host's shadow file, an absolute symlink for etc, a
  // FIFO, a file above the limit: no entry, no hang, nothing of the host.
  fs::remove(t.path("root/etc/passwd"));
  fs::create_symlink("/etc/shadow", t.path("root/etc/passwd"));
  EXPECT_EQ(probe({"pwnam", "root"}), "none " + std::to_string(ELOOP) + "\n");
  fs::remove(t.path("root/etc/passwd"));
  ASSERT_EQ(::mkfifo(t.path("root/etc/passwd").c_str(), 0644), 0);
  EXPECT_EQ(probe({"pwnam", "root"}), "none " + std::to_string(EIO) + "\n");
  fs::remove(t.path("root/etc/passwd"));
  {
    std::ofstream big(t.path("root/etc/passwd"));
    big << k_passwd << std::string(17u << 20, '#');
  }
  EXPECT_EQ(probe({"pwnam", "root"}), "none " + std::to_string(EIO) + "\n");
  fs::remove_all(t.path("root/etc"));
  fs::create_symlink("/etc", t.path("root/etc"));
  EXPECT_EQ(probe({"grnam", "root"}), "none " + std::to_string(ELOOP) + "\n");
  EXPECT_EQ(probe({"pwent"}), "");
}

TEST_F(Preload, WithoutAGuestRootEverythingIsTheCLibrarys) {
  std::vector<std::string> argv{m_probe, "pwuid", "0"};
  auto r = run_program(argv, {"LD_PRELOAD=" + m_lib}, 30);
  EXPECT_EQ(r.out.rfind("root:0:0:", 0), 0u) << r.out; // the host's root
  argv = {m_probe, "execv", "/bin/echo", "ran on the host"};
  r = run_program(argv, {"LD_PRELOAD=" + m_lib}, 30);
  EXPECT_EQ(r.out, "ran on the host\n");
}

TEST(PasswdParse, LinesAreExactlySevenOrFourFields) {
  vu_pw_line pw;
  const std::string ok = "a:x:1:2:g:/h:/s";
  ASSERT_EQ(vu_parse_pw_line(ok.data(), ok.size(), &pw), 1);
  EXPECT_EQ(std::string(pw.dir.p, pw.dir.n), "/h");
  EXPECT_EQ(pw.uid, 1u);
  const std::vector<std::string> bads{"a:x:1:2:g:/h",
                                      "a:x:1:2:g:/h:/s:extra",
                                      ":x:1:2:g:/h:/s",
                                      "a:x::2:g:/h:/s",
                                      "a:x:-1:2:g:/h:/s",
                                      "a:x:99999999999:2:g:/h:/s",
                                      std::string("a:x:1:2:g\0:/h:/s", 16)};
  for (const auto& bad : bads) EXPECT_EQ(vu_parse_pw_line(bad.data(), bad.size(), &pw), 0) << bad;
  vu_gr_line gr;
  const std::string g = "staff:x:50:a,bb,c";
  ASSERT_EQ(vu_parse_gr_line(g.data(), g.size(), &gr), 1);
  EXPECT_EQ(vu_has_member(gr.members, "bb"), 1);
  EXPECT_EQ(vu_has_member(gr.members, "b"), 0);
  EXPECT_EQ(vu_has_member(gr.members, ""), 0);
}

} // namespace
