#include "barrier/barrier.h"
#include "tests/support/temp_tree.h"

#include <gtest/gtest.h>

#include <sys/stat.h>
#include <unistd.h>

using namespace vu;
using vu::test::TempTree;

TEST(Barrier, GoodAndBadBases) {
  TempTree t;
  t.build("d good\nd open\nd owned\n");
  ASSERT_EQ(::chmod(t.path("good").c_str(), 0), 0);
  ASSERT_EQ(::chmod(t.path("owned").c_str(), 0), 0);
  ASSERT_EQ(::chown(t.path("owned").c_str(), 1000, 0), 0);
  ASSERT_EQ(::symlink(t.path("good").c_str(), t.path("link").c_str()), 0);
  EXPECT_TRUE(barrier_problems(t.path("good"))->empty());
  auto open = barrier_problems(t.path("open"));
  ASSERT_EQ(open->size(), 1u);
  EXPECT_NE((*open)[0].find("mode 755"), std::string::npos);
  EXPECT_EQ(barrier_problems(t.path("owned"))->size(), 1u);
  auto link = barrier_problems(t.path("link"));
  ASSERT_EQ(link->size(), 1u);
  EXPECT_NE((*link)[0].find("symlink"), std::string::npos);
  EXPECT_FALSE(barrier_problems(t.path("missing")).ok());
  ::chmod(t.path("good").c_str(), 0755);
  ::chmod(t.path("owned").c_str(), 0755);
}
