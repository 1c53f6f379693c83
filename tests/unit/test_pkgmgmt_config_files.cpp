#include "pkgmgmt/config_files.h"

#include <gtest/gtest.h>

using namespace vu;

TEST(PathList, ParsesSortsAndDropsFlagWords) {
  auto r = parse_path_list("/etc/b\n/etc/a obsolete\n\n/etc/b\n/etc/c remove-on-upgrade\r\n", "x");
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_EQ(*r, (std::vector<std::string>{"/etc/a", "/etc/b", "/etc/c"}));
}

TEST(PathList, RejectsHostileInput) {
  EXPECT_FALSE(parse_path_list("etc/relative\n", "x").ok());
  EXPECT_FALSE(parse_path_list(std::string("/etc/a\0b\n", 9), "x").ok());
  EXPECT_FALSE(parse_path_list("/" + std::string(5000, 'a') + "\n", "x").ok());
  auto many = parse_path_list("/a\n/b\n/c\n", "x", 2);
  ASSERT_FALSE(many.ok());
  EXPECT_EQ(many.code(), E2BIG);
  EXPECT_NE(many.error().message().find("x:3"), std::string::npos);
}
