#include "unify/exclude.h"

#include <gtest/gtest.h>

#include <cctype>
#include <random>
#include <regex>

using namespace vu;

TEST(Glob, StarStopsAtSlashDoubleStarCrosses) {
  EXPECT_TRUE(glob_match("/etc/*", "/etc/passwd"));
  EXPECT_FALSE(glob_match("/etc/*", "/etc/ssh/sshd_config"));
  EXPECT_TRUE(glob_match("/etc/**", "/etc/ssh/sshd_config"));
  EXPECT_TRUE(glob_match("/**/ls-R", "/usr/share/texmf/ls-R"));
  EXPECT_TRUE(glob_match("/**/ls-R", "/ls-R"));
  EXPECT_FALSE(glob_match("/**/ls-R", "/usr/ls-Rx"));
  EXPECT_TRUE(glob_match("/usr/*/bin", "/usr/local/bin"));
  EXPECT_FALSE(glob_match("/usr/*/bin", "/usr/a/b/bin"));
  EXPECT_TRUE(glob_match("/usr/**/bin", "/usr/a/b/bin"));
}

TEST(Glob, QuestionClassesAndEscapes) {
  EXPECT_TRUE(glob_match("/a?c", "/abc"));
  EXPECT_FALSE(glob_match("/a?c", "/a/c"));
  EXPECT_TRUE(glob_match("/f[0-9]", "/f7"));
  EXPECT_FALSE(glob_match("/f[!0-9]", "/f7"));
  EXPECT_TRUE(glob_match("/f[^0-9]", "/fx"));
  EXPECT_TRUE(glob_match("/a\\*", "/a*"));
  EXPECT_FALSE(glob_match("/a\\*", "/ab"));
  EXPECT_TRUE(glob_match("/[ab", "/[ab")); // malformed class is literal
  EXPECT_TRUE(glob_match("/x", "/x"));
  EXPECT_FALSE(glob_match("/x", "/xy"));
}

TEST(ExcludeList, FirstMatchWinsAndPlusReincludes) {
  auto list = ExcludeList::parse("# comment\n"
                                 "~/etc/shadow\n"
                                 "+/etc/gconf\n"
                                 "+/etc/gconf/schemas\n"
                                 "/etc/gconf/*\n"
                                 "-/etc/*\n"
                                 "  /var/  \n"
                                 "\n",
                                 "test");
  ASSERT_TRUE(list.ok()) << list.error().message();
  EXPECT_EQ(list->rules().size(), 6u);
  EXPECT_EQ(list->match("/etc/shadow"), MatchKind::skip);
  EXPECT_EQ(list->match("/etc/passwd"), MatchKind::exclude);
  EXPECT_EQ(list->match("/etc/gconf"), MatchKind::include);
  EXPECT_EQ(list->match("/etc/gconf/schemas"), MatchKind::include);
  EXPECT_EQ(list->match("/etc/gconf/other"), MatchKind::exclude);
  // util-vserver's fnmatch quirk would have excluded this one.
  EXPECT_EQ(list->match("/etc/gconf/schemas/x.schema"), MatchKind::include);
  EXPECT_EQ(list->match("/var"), MatchKind::exclude);
  EXPECT_EQ(list->match("/usr/bin/ls"), MatchKind::include);
  ASSERT_NE(list->matching_rule("/var"), nullptr);
  EXPECT_EQ(list->matching_rule("/var")->origin, "test:7");
}

TEST(ExcludeList, RejectsRelativePatterns) {
  auto list = ExcludeList::parse("/ok\netc/passwd\n", "f");
  ASSERT_FALSE(list.ok());
  EXPECT_NE(list.error().message().find("f:2"), std::string::npos);
}

TEST(ExcludeList, AppendKeepsPriority) {
  auto a = ExcludeList::parse("+/etc/keep\n", "a");
  auto b = ExcludeList::parse("/etc\n", "b");
  ExcludeList l = *a;
  l.append(*b);
  EXPECT_EQ(l.match("/etc/keep"), MatchKind::include);
  EXPECT_EQ(l.match("/etc"), MatchKind::exclude);
}

TEST(ExcludeList, DefaultListKeepsStatePrivate) {
  auto list = ExcludeList::parse(default_exclude_text(), "default");
  ASSERT_TRUE(list.ok()) << list.error().message();
  for (const char* p : {"/var", "/tmp", "/run", "/home", "/root", "/dev", "/proc", "/sys",
                        "/etc/passwd", "/etc/ssh", "/srv", "/usr/share/texmf/ls-R"})
    EXPECT_NE(list->match(p), MatchKind::include) << p;
  EXPECT_EQ(list->match("/etc/shadow"), MatchKind::skip);
  for (const char* p :
       {"/usr", "/usr/bin/ls", "/etc/terminfo", "/etc/terminfo/x/xterm", "/opt/app/lib.so", "/lib"})
    EXPECT_EQ(list->match(p), MatchKind::include) << p;
}

namespace {

// An independent statement of the glob semantics, as a regular expression:
// '*' and '?' never cross '/', '**' does, "/**/" also matches "/".
std::string glob_to_regex(const std::string& pat) {
  std::string re;
  for (size_t i = 0; i < pat.size();) {
    char c = pat[i];
    if (c == '*') {
      size_t j = i;
      while (j < pat.size() && pat[j] == '*') ++j;
      if (j - i == 1)
        re += "[^/]*";
      else if (i > 0 && pat[i - 1] == '/' && j < pat.size() && pat[j] == '/')
        re += "(.*/)?", ++j;
      else
        re += ".*";
      i = j;
    } else if (c == '?') {
      re += "[^/]", ++i;
    } else {
      re += std::isalnum(static_cast<unsigned char>(c)) ? std::string(1, c) : std::string("\\") + c;
      ++i;
    }
  }
  return re;
}

} // namespace

TEST(Glob, AgreesWithARegularExpressionOracle) {
  std::mt19937 rng(7);
  const char alphabet[] = {'a', 'b', '/', '*', '?'};
  for (int round = 0; round < 20000; ++round) {
    std::string pat, path;
    size_t plen = rng() % 9, slen = rng() % 10;
    for (size_t i = 0; i < plen; ++i) pat += alphabet[rng() % 5];
    for (size_t i = 0; i < slen; ++i) path += alphabet[rng() % 3];
    bool want = std::regex_match(path, std::regex(glob_to_regex(pat)));
    ASSERT_EQ(glob_match(pat, path), want) << "pattern '" << pat << "' path '" << path << "'";
  }
}

TEST(Glob, ManyDoubleStarsTakeLinearTime) {
  // A backtracking matcher took 20 s for 400 of these and over 100 s for 800.
  std::string pat = "/";
  for (int i = 0; i < 800; ++i) pat += "**/";
  pat += "nomatch";
  std::string path;
  for (int i = 0; i < 200; ++i) path += "/d" + std::to_string(i);
  // No clock here: an exponential matcher does not finish (the suite's
  // per-test timeout fails it); a linear one takes milliseconds.
  auto list = ExcludeList::parse(pat + "\n", "test");
  ASSERT_TRUE(list.ok());
  for (int i = 0; i < 20; ++i) EXPECT_EQ(list->match(path), MatchKind::include);
  EXPECT_TRUE(glob_match("/**/**/**/**/x", "/a/b/c/d/e/f/x"));
  EXPECT_FALSE(glob_match("/**/**/**/**/x", "/a/b/c/d/e/f/y"));
}

TEST(Glob, ClassesNeverMatchSlashAndRangesUseUnsignedBytes) {
  EXPECT_FALSE(glob_match("/a[!x]b", "/a/b"));
  EXPECT_TRUE(glob_match("/a[\x80-\xff]", "/a\xe9"));
  EXPECT_TRUE(glob_match("/a[]]", "/a]"));
  EXPECT_TRUE(glob_match("/a[\\]]", "/a]"));
}
