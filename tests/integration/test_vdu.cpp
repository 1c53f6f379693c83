// vdu on a tree with a known link structure: exact numbers in every
// format, the HTML page rendered by headless Chromium, the classic form.
#include "tests/support/run_program.h"
#include "tests/support/temp_tree.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <unistd.h>

#include <map>
#include <regex>

using namespace vu::test;

namespace {

ProgramResult vdu(const std::vector<std::string>& a) {
  return run_vdu(a);
}

// g1: private p1 (8 KiB, /usr/big), a hard link pair inside g1 (4 KiB,
// /usr/small), a sparse file (1 MiB apparent, 4 KiB allocated, /var), st
// (8 KiB) linked from the store; s2 (12 KiB) shared by g1 and g2; s3 (12 KiB)
// by all three; g2: private p2 (4 KiB); g3: dup, identical to p2, not linked.
class Vdu : public ::testing::Test {
protected:
  void SetUp() override {
    t.file("g1/usr/big/p1", random_bytes(8192, 1));
    t.file("g1/usr/s2", random_bytes(12288, 2));
    t.file("g1/usr/s3", random_bytes(12288, 3));
    t.file("g1/usr/small/h", random_bytes(4096, 4));
    t.file("g1/usr/st", random_bytes(8192, 5));
    t.file("g2/usr/p2", random_bytes(4096, 6));
    t.file("g3/usr/dup", random_bytes(4096, 6));
    t.mkdirs("g1/var");
    t.mkdirs("store/ab");
    ASSERT_EQ(sh("truncate -s 1M " + t.path("g1/var/sparse") +
                 " && head -c 4096 /dev/zero | tr '\\0' x >> " + t.path("g1/var/sparse")),
              0);
    for (auto [from, to] : {std::pair{"g1/usr/s2", "g2/usr/s2"},
                            {"g1/usr/s3", "g2/usr/s3"},
                            {"g1/usr/s3", "g3/usr/s3"},
                            {"g1/usr/small/h", "g1/usr/small/h2"},
                            {"g1/usr/st", "store/ab/entry"}})
      ASSERT_EQ(::link(t.path(from).c_str(), t.path(to).c_str()), 0);
    args = {"--store", t.path("store"), t.path("g1"), t.path("g2"), t.path("g3")};
  }
  std::vector<std::string> with(std::vector<std::string> extra) {
    extra.insert(extra.end(), args.begin(), args.end());
    return extra;
  }
  TempTree t;
  std::vector<std::string> args;
};

} // namespace

TEST_F(Vdu, ExactNumbersAsJson) {
  auto r = vdu(with({"--json", "--deep", "--top", "3"}));
  ASSERT_EQ(r.status, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["tool"], "vdu");
  EXPECT_EQ(j["errors"], nlohmann::json::object()) << "the shape of every tool's errors";
  EXPECT_EQ(j["error_count"], 0);
  auto g = j["guests"];
  ASSERT_EQ(g.size(), 3u);
  // name, files, private, shared (share), shared_full, alone, saved, possible
  struct Want {
    const char* name;
    int files, priv, shared, full, alone, saved, possible;
  } want[] = {{"g1", 7, 16384, 18432, 32768, 53248, 18432, 0},
              {"g2", 3, 4096, 10240, 24576, 28672, 14336, 0},
              {"g3", 2, 4096, 4096, 12288, 16384, 8192, 4096}};
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(g[i]["name"], want[i].name);
    EXPECT_EQ(g[i]["files"], want[i].files) << i;
    EXPECT_EQ(g[i]["private_bytes"], want[i].priv) << i;
    EXPECT_EQ(g[i]["shared_bytes"], want[i].shared) << i;
    EXPECT_EQ(g[i]["shared_full_bytes"], want[i].full) << i;
    EXPECT_EQ(g[i]["alone_bytes"], want[i].alone) << i;
    EXPECT_EQ(g[i]["saved_bytes"], want[i].saved) << i;
    EXPECT_EQ(g[i]["possible_bytes"], want[i].possible) << i;
  }
  EXPECT_EQ(g[0]["apparent_bytes"], 8192 + 12288 + 12288 + 4096 + 8192 + 1048576 + 4096);
  EXPECT_EQ(j["total"]["allocated_bytes"], 57344)
      << "each inode once; private + shared add up to it";
  EXPECT_EQ(j["total"]["alone_bytes"], 98304) << "every name as a file of its own";
  EXPECT_EQ(j["total"]["saved_bytes"], 40960);
  EXPECT_EQ(j["total"]["possible_bytes"], 4096);
  EXPECT_EQ(j["store"]["entries"], 1);
  EXPECT_EQ(j["store"]["allocated_bytes"], 8192);
  ASSERT_EQ(j["top"].size(), 3u);
  EXPECT_EQ(j["top"][0]["path"], "/usr/big");
  EXPECT_EQ(j["top"][0]["private_bytes"], 8192);
  EXPECT_EQ(j["top"][1]["path"], "/usr/small");
  EXPECT_EQ(j["top"][2]["path"], "/var") << "ties sorted by guest, then path";
  EXPECT_EQ(j["top"][2]["guest"], "g1");
}

TEST_F(Vdu, CsvAndTable) {
  auto csv = vdu(with({"--csv"}));
  ASSERT_EQ(csv.status, 0) << csv.err;
  EXPECT_EQ(csv.out,
            "row,guest,files,inodes,apparent_bytes,allocated_bytes,private_bytes,shared_bytes,"
            "shared_full_bytes,alone_bytes,saved_bytes\n"
            "guest,g1,7,6,1097728,49152,16384,18432,32768,53248,18432\n"
            "guest,g2,3,3,28672,28672,4096,10240,24576,28672,14336\n"
            "guest,g3,2,2,16384,16384,4096,4096,12288,16384,8192\n"
            "total,,12,,,57344,,,,98304,40960\n");
  auto table = vdu(with({}));
  // Without -h: KiB, as du counts, the unit in the header.
  EXPECT_NE(
      table.out.find("GUEST  FILES  APPARENT(KiB)  ALLOCATED(KiB)  PRIVATE(KiB)  SHARED(KiB)  "
                     "ALONE(KiB)  SAVED(KiB)\n"),
      std::string::npos)
      << table.out;
  EXPECT_NE(table.out.find("g2         3             28              28             4           "
                           "10          28          14\n"),
            std::string::npos)
      << table.out;
  EXPECT_NE(table.out.find("hash store " + t.path("store") + ": 1 entries, 8 KiB\n"),
            std::string::npos)
      << table.out;
  auto human = vdu(with({"-h"}));
  EXPECT_NE(human.out.find("g1         7      1.0M        48K      16K     18K    52K    18K"),
            std::string::npos)
      << human.out;
  auto si = vdu(with({"--si"}));
  EXPECT_NE(si.out.find("g1         7      1.1M        49K      16K     18K    53K    18K"),
            std::string::npos)
      << si.out;
}

TEST_F(Vdu, HtmlPageRendersInHeadlessChromium) {
  std::string page = t.path("report.html");
  auto r = vdu(with({"--deep", "--html", page}));
  ASSERT_EQ(r.status, 0) << r.err;
  std::string html = t.read("report.html");
  EXPECT_EQ(html.find("<script"), std::string::npos) << "no scripts";
  EXPECT_EQ(html.find("http://"), html.find("http://www.w3.org/2000/svg")) << "no network";
  std::regex group("<g class=\"guest\" data-guest=\"(g[123])\">");
  EXPECT_EQ(
      std::distance(std::sregex_iterator(html.begin(), html.end(), group), std::sregex_iterator()),
      6)
      << "a bar per guest in the disk-use chart and in the saved chart";
  // Where and when.
  char host[256] = {};
  ASSERT_EQ(::gethostname(host, sizeof host - 1), 0);
  EXPECT_NE(html.find("<p class=\"origin\">Host " + std::string(host) + ", "), std::string::npos);
  EXPECT_NE(html.find(" UTC, vdu "), std::string::npos);
  // Still possible is drawn inside private: each guest's bar is what it
  // uses (private + shared), the longest exactly the chart's width (g3's
  // private 4 KiB are all still possible).
  const std::string chart = html.substr(0, html.find("id=\"saved\""));
  std::regex rect("<g class=\"guest\" data-guest=\"(g[123])\">|<rect class=\"(private|possible|"
                  "shared)\" x=\"[0-9.]+\" y=\"[0-9]+\" width=\"([0-9.]+)\"");
  std::map<std::string, double> bar;
  std::string current;
  for (auto it = std::sregex_iterator(chart.begin(), chart.end(), rect);
       it != std::sregex_iterator(); ++it) {
    if ((*it)[1].matched)
      current = (*it)[1];
    else
      bar[current] += std::stod((*it)[3]);
  }
  ASSERT_EQ(bar.size(), 3u);
  EXPECT_NEAR(bar["g1"], 600.0, 0.5) << "g1 uses 16 KiB + 18 KiB, the most";
  EXPECT_NEAR(bar["g3"], 600.0 * (4096 + 4096) / (16384 + 18432), 0.5) << "not private + possible";
  EXPECT_NE(html.find("<rect class=\"saved\""), std::string::npos);
  if (sh("command -v chromium >/dev/null") != 0) GTEST_SKIP() << "chromium not installed";
  std::string flags = " --headless --no-sandbox --disable-gpu --disable-quic --no-first-run "
                      "--disable-background-networking --disable-component-update --disable-sync "
                      "--user-data-dir=" +
                      t.path("chromium") + " ";
  ASSERT_EQ(sh("timeout 120 chromium" + flags + "--dump-dom file://" + page + " > " +
               t.path("dom.html") + " 2>/dev/null"),
            0);
  std::string dom = t.read("dom.html");
  EXPECT_EQ(
      std::distance(std::sregex_iterator(dom.begin(), dom.end(), group), std::sregex_iterator()), 6)
      << "the rendered DOM has one bar group per guest in each chart";
  EXPECT_NE(dom.find("rect class=\"possible\""), std::string::npos);
  // The screenshot README refers to (build/vdu-report.png when run by ctest).
  std::string shot = t.path("vdu-report.png");
  ASSERT_EQ(sh("timeout 120 chromium" + flags + "--window-size=1000,640 --screenshot=" + shot +
               " file://" + page + " >/dev/null 2>&1"),
            0);
  EXPECT_GT(t.read("vdu-report.png").size(), 5000u);
  sh("cp " + shot + " " + std::string(VU_BINARY_DIR) + "/vdu-report.png");
}

TEST_F(Vdu, ClassicFormCountsEachInodeOnce) {
  auto r = vdu({"--space", "--inodes", t.path("g1"), t.path("g2")});
  ASSERT_EQ(r.status, 0) << r.err;
  // g1: dirs g1, usr, big, small, var (5 x 4 KiB) + files p1 8, s2 12, s3 12,
  // h 4 (once), st 8, sparse 4 KiB = 48 KiB + 20 KiB; 11 inodes.
  EXPECT_EQ(r.out, t.path("g1") + " 68 11\n" + t.path("g2") + " 36 5\n");
  auto script = vdu({"--space", "--blocksize", "4096", "--script", t.path("g2")});
  EXPECT_EQ(script.out, "9\n");
  // Whole-tree numbers for a context would be wrong data: refused.
  auto xid = vdu({"--xid", "42", "--inodes", t.path("g2")});
  EXPECT_EQ(xid.status, 2);
  EXPECT_EQ(xid.out, "");
  EXPECT_NE(xid.err.find("vdu: error: --xid: this kernel has no context tags"), std::string::npos)
      << xid.err;
  EXPECT_EQ(vdu({"--space"}).status, 2);
  // util-vserver's scripts abbreviate --inodes.
  EXPECT_EQ(vdu({"--inode", t.path("g2")}).out, t.path("g2") + " 5\n");
  // A path that cannot be examined prints no number, and fails.
  auto missing = vdu({"--space", t.path("missing"), t.path("g2")});
  EXPECT_EQ(missing.status, 1);
  EXPECT_EQ(missing.out, t.path("g2") + " 36\n");
  EXPECT_NE(missing.err.find(t.path("missing")), std::string::npos);
}

TEST_F(Vdu, DeepFindsExactlyTheUnlinkedDuplicates) {
  auto before = nlohmann::json::parse(vdu(with({"--json", "--deep"})).out);
  EXPECT_EQ(before["total"]["possible_bytes"], 4096);
  ASSERT_EQ(
      run_vunify({"-q", "--no-default-excludes", t.path("g1"), t.path("g2"), t.path("g3")}).status,
      0);
  auto after = nlohmann::json::parse(vdu(with({"--json", "--deep"})).out);
  EXPECT_EQ(after["total"]["possible_bytes"], 0);
  EXPECT_EQ(after["total"]["allocated_bytes"], 57344 - 4096);
  EXPECT_EQ(after["total"]["saved_bytes"], 40960 + 4096);
}
