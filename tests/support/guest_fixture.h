// Real guests for the tests of the start/stop core and what runs through
// it: copies of the cached debootstrapped bookworm tree (sysv-rc and webfs
// installed), each with its own configuration under a temporary
// configuration base, run directory and cgroup parent - nothing of the
// host's /etc/vservers, /run/vservers or cgroups is touched. Every guest
// is stopped at the end and must have left no process.
#pragma once

#include "tests/support/run_program.h"
#include "tests/support/temp_tree.h"

#include <gtest/gtest.h>

#include <string>
#include <sys/types.h>
#include <vector>

namespace vu::test {

std::string read_all(const std::string& path);
// Writes `content` to `path`, making its directories.
void put(const std::string& path, const std::string& content);
// Processes whose root directory is `root` (a guest's, seen from the host).
std::vector<pid_t> processes_in(const std::string& root);

// Length and hash of a file's content, to see that it did not change.
std::string file_digest(const std::string& path);
// uid of `user` in a passwd file; -1 when absent.
long uid_in(const std::string& passwd, const std::string& user);
uid_t owner_of(const std::string& path);
// Files of the tree linked from outside it (another guest, the hash
// store) that are not immutable: a unified guest must have none.
std::vector<std::string> writable_shared_files(const std::string& root);

class GuestTest : public ::testing::Test {
protected:
  static void SetUpTestSuite();
  void SetUp() override;
  void TearDown() override;

  std::string root(const std::string& name) { return t.path("vservers/" + name); }
  std::string conf(const std::string& name) { return t.path("etc/" + name); }

  // A guest copied from the cached tree, with webfs serving a page that
  // names it, vu-probe in /usr/local/bin, and the given context and
  // interface ("dev:ip/prefix" or "ip/prefix"; empty: loopback only).
  void make_guest(const std::string& name, unsigned context, const std::string& iface = "");

  ProgramResult vserver(const std::vector<std::string>& args, int timeout_s = 180);

  // kill -9 of `argv` after the next delay, then: nothing of `guest` keeps
  // running (within 5 s) and no shared file of it is writable. True when
  // the kill ended the run.
  bool kill_and_check(KillDelay& delay, const std::vector<std::string>& argv,
                      const std::string& guest, int round);

  TempTree t;
  std::vector<std::string> m_env; // VSERVER_CONFDIR, VSERVER_RUNDIR, VSERVER_CGROUP
  std::vector<std::string> m_guests;
  std::string m_cgroup;
  static std::string s_base, s_why;
};

} // namespace vu::test
