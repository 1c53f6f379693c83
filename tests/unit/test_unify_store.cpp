#include "tests/support/temp_tree.h"
#include "unify/store.h"

#include <gtest/gtest.h>

#include <tuple>
#include <vector>

using namespace vu;

TEST(StoreNames, StableFormatAndStrictParse) {
  StoreKey k{Hash128{0x0123456789abcdefull, 0xfedcba9876543210ull}, 0755, 0, 1000, 0xabcull};
  std::string n = store_entry_name(k, 3);
  EXPECT_EQ(n, "fe/fedcba98765432100123456789abcdef-0755-0-1000-0000000000000abc-3");
  auto p = parse_store_entry(n);
  ASSERT_TRUE(p.has_value());
  EXPECT_EQ(p->first, k);
  EXPECT_EQ(p->second, 3u);
  for (const char* bad : {"fedcba98765432100123456789abcdef-0755-0-1000-0000000000000abc-3",
                          "ff/fedcba98765432100123456789abcdef-0755-0-1000-0000000000000abc-3",
                          "fe/fedcba98765432100123456789abcdef-0755-0-1000-0000000000000abc",
                          "fe/fedcba98765432100123456789abcdef-0855-0-1000-0000000000000abc-3",
                          "fe/fedcba98765432100123456789abcdeF-0755-0-1000-0000000000000abc-3",
                          "fe/fedcba98765432100123456789abcdef-0755-00-1000-0000000000000abc-3",
                          "fe/.vunify-tmp.0123", "fe/x"})
    EXPECT_FALSE(parse_store_entry(bad).has_value()) << bad;
}

TEST(HashCache, RoundTripCorruptionAndAgeGuard) {
  vu::test::TempTree t;
  HashCache c;
  FileStat old_file;
  old_file.dev = 1, old_file.ino = 2, old_file.size = 3, old_file.mtime_ns = 4,
  old_file.ctime_ns = 5;
  FileStat young = old_file;
  young.ino = 9;
  c.put(old_file, Hash128{7, 8}, 9, 5 + HashCache::k_min_age_ns);
  c.put(young, Hash128{1, 1}, 0, 5 + HashCache::k_min_age_ns - 1);
  ASSERT_TRUE(c.save(t.path("cache"), 10).ok());
  HashCache d;
  d.load(t.path("cache"));
  EXPECT_EQ(d.size(), 2u);
  auto hit = d.lookup(old_file);
  ASSERT_TRUE(hit.has_value());
  EXPECT_EQ(hit->hash, (Hash128{7, 8}));
  EXPECT_EQ(hit->xattrs, 9u);
  EXPECT_FALSE(d.lookup(young).has_value()) << "hashed too soon after its last change";
  FileStat changed = old_file;
  changed.ctime_ns += 1; // e.g. written, then its mtime restored
  EXPECT_FALSE(d.lookup(changed).has_value());
  // Any damage makes the cache empty, never wrong.
  std::string data = t.read("cache");
  data[30] ^= 1;
  t.write("cache", data);
  HashCache e;
  e.load(t.path("cache"));
  EXPECT_EQ(e.size(), 0u);
  EXPECT_TRUE(e.loaded_corrupt());
  t.write("cache", "garbage");
  e.load(t.path("cache"));
  EXPECT_EQ(e.size(), 0u);
  e.load(t.path("missing"));
  EXPECT_FALSE(e.loaded_corrupt());
}

TEST(HashCache, ARunOverOneSizeRangeKeepsTheRecordsOfOtherSizes) {
  vu::test::TempTree t;
  auto file = [](uint64_t ino, uint64_t size) {
    FileStat st;
    st.dev = 1, st.ino = ino, st.size = size, st.mtime_ns = 4, st.ctime_ns = 5;
    return st;
  };
  const int64_t at = 5 + HashCache::k_min_age_ns;
  HashCache whole;
  whole.put(file(1, 100), Hash128{1, 1}, 0, at);
  whole.put(file(2, 5000), Hash128{2, 2}, 0, at);
  whole.put(file(3, 70000), Hash128{3, 3}, 0, at);
  whole.put(file(5, 100), Hash128{5, 5}, 0, at);
  ASSERT_TRUE(whole.save(t.path("cache"), at).ok());
  // The part over sizes 1000..9999 holds only its own entry...
  HashCache part;
  part.load(t.path("cache"), 1000, 9999);
  EXPECT_EQ(part.size(), 1u);
  EXPECT_TRUE(part.lookup(file(2, 5000)).has_value());
  // ...changes it, adds one, hashes one whose size moved into the range,
  // and keeps the file's other records on save.
  part.put(file(2, 5000), Hash128{9, 9}, 0, at);
  part.put(file(4, 2000), Hash128{4, 4}, 0, at);
  part.put(file(5, 6000), Hash128{6, 6}, 0, at); // 100 bytes before
  ASSERT_TRUE(part.save(t.path("cache"), at, 1000, 9999).ok());
  HashCache after;
  after.load(t.path("cache"));
  EXPECT_FALSE(after.loaded_corrupt());
  EXPECT_EQ(after.size(), 5u);
  const std::vector<std::tuple<uint64_t, uint64_t, Hash128>> want = {{1, 100, Hash128{1, 1}},
                                                                     {2, 5000, Hash128{9, 9}},
                                                                     {3, 70000, Hash128{3, 3}},
                                                                     {4, 2000, Hash128{4, 4}},
                                                                     {5, 6000, Hash128{6, 6}}};
  for (const auto& [ino, size, hash] : want) {
    auto hit = after.lookup(file(ino, size));
    ASSERT_TRUE(hit.has_value()) << ino;
    EXPECT_EQ(hit->hash, hash) << ino;
  }
  // A damaged file loses the other sizes' records, never gives wrong ones.
  std::string data = t.read("cache");
  data[40] ^= 1;
  t.write("cache", data);
  HashCache damaged;
  damaged.put(file(2, 5000), Hash128{9, 9}, 0, at);
  ASSERT_TRUE(damaged.save(t.path("cache"), at, 1000, 9999).ok());
  HashCache rest;
  rest.load(t.path("cache"));
  EXPECT_FALSE(rest.loaded_corrupt());
  EXPECT_EQ(rest.size(), 1u);
}
