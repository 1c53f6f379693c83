// The main() of both test binaries: GoogleTest with an environment that
// keeps the programs under test away from the host's state and runs them
// the way systemd starts services.
//
//  - VUNIFY_STATE_DIR points at a fresh temporary directory (the suite's
//    state - temporary-name key, guest locks - never lands in
//    /var/lib/vunify), removed at the end;
//  - the soft limit of open descriptors is 1024, systemd's default, so every
//    program under test starts as a service would (they raise it
//    themselves where the hard limit allows);
//  - without root every test is skipped, and says why: the suite sets
//    immutable flags, mounts, chroots and changes owners.
#include "tests/support/temp_tree.h"

#include <gtest/gtest.h>

#include <sys/resource.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>

namespace {

class SuiteEnvironment : public ::testing::Environment {
public:
  void SetUp() override {
    char tmpl[] = "/tmp/vunify-test-state.XXXXXX";
    if (::mkdtemp(tmpl)) m_state = tmpl;
    ::setenv("VUNIFY_STATE_DIR", m_state.c_str(), 1);
    struct rlimit rl {};
    if (::getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur > 1024) {
      rl.rlim_cur = 1024;
      ::setrlimit(RLIMIT_NOFILE, &rl);
    }
  }
  void TearDown() override {
    if (!m_state.empty()) vu::test::remove_tree(m_state);
  }

private:
  std::string m_state;
};

} // namespace

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  if (::geteuid() != 0 && !GTEST_FLAG_GET(list_tests)) {
    // ctest counts a test whose output has this mark as skipped.
    std::printf("[  SKIPPED ] the tests need root (immutable flags, mounts, chroot)\n");
    return 0;
  }
  ::testing::AddGlobalTestEnvironment(new SuiteEnvironment);
  return RUN_ALL_TESTS();
}
