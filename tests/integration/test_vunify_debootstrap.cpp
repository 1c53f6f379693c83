// Real guests: two minbase bookworm guests built by debootstrap from the
// mirror the host's apt sources name (cached across runs under
// $VU_TEST_CACHE, default /var/tmp/vunify-test-cache), one package added to
// one of them. The saving vunify reports must equal an independent count
// made here, and no file may change content.
#include "tests/support/fixtures.h"
#include "tests/support/run_program.h"
#include "tests/support/temp_tree.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>
#include <xxhash.h>

#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>

using namespace vu::test;
namespace fs = std::filesystem;

namespace {

std::string file_hash(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  std::string s = ss.str();
  XXH128_hash_t h = XXH3_128bits(s.data(), s.size());
  return std::to_string(h.high64) + ":" + std::to_string(h.low64);
}

std::string xattrs(const std::string& path) {
  char names[4096];
  ssize_t n = ::llistxattr(path.c_str(), names, sizeof names);
  std::string out;
  for (ssize_t i = 0; i < n;) {
    std::string name(names + i);
    i += static_cast<ssize_t>(name.size()) + 1;
    char v[4096];
    ssize_t len = ::lgetxattr(path.c_str(), name.c_str(), v, sizeof v);
    out += name + "=" + std::string(v, len > 0 ? len : 0) + ";";
  }
  return out;
}

// Every conffile path a guest's dpkg lists, read here with plain text tools
// (independently of vunify's readers), without the leading '/'.
std::set<std::string> conffiles_of(const std::string& root) {
  std::set<std::string> out;
  std::string list = root + "/../conffiles.txt";
  sh("cat " + root + "/var/lib/dpkg/info/*.conffiles > " + list + " 2>/dev/null");
  std::ifstream in(list);
  std::string line;
  while (std::getline(in, line))
    if (!line.empty() && line[0] == '/') out.insert(line.substr(1, line.find(' ') - 1));
  std::remove(list.c_str());
  return out;
}

// The rules of the built-in exclude list, written out independently.
bool private_path(const std::string& rel) {
  static const std::set<std::string> top{"dev",   "proc",    "sys",        "run",   "mnt",
                                         "media", "selinux", "lost+found", "var",   "tmp",
                                         "srv",   "home",    "root",       ".rpmdb"};
  auto slash = rel.find('/');
  std::string first = rel.substr(0, slash);
  if (top.count(first)) return true;
  if (first == "etc")
    return !(rel == "etc" || rel == "etc/termcap" || rel.rfind("etc/terminfo/", 0) == 0 ||
             rel == "etc/terminfo");
  return fs::path(rel).filename() == "ls-R";
}

// The files data/vunify-secrets names, written out independently: never
// linked, whatever the options.
bool secret_path(const std::string& rel) {
  auto starts = [&](const char* p) { return rel.rfind(p, 0) == 0; };
  std::string name = fs::path(rel).filename();
  if (starts("etc/shadow") || starts("etc/gshadow") || rel == "etc/security/opasswd" ||
      starts("etc/ssh/ssh_host_") || starts("root/") || rel == "root" || starts("home/") ||
      starts("etc/ssl/private") || starts("etc/ppp/chap-secrets") || starts("etc/ppp/pap-secrets"))
    return true;
  if (name.size() > 4 && name.compare(name.size() - 4, 4, ".key") == 0) return true;
  if (name.find("privkey") != std::string::npos) return true;
  for (const char* k : {"id_rsa", "id_dsa", "id_ecdsa", "id_ed25519"})
    if (name == k) return true;
  return rel.find(".ssh/") != std::string::npos || rel.find(".gnupg/") != std::string::npos;
}

struct Expected {
  uint64_t files_linked = 0;
  uint64_t bytes_saved = 0;
};

Expected independent_count(const std::vector<std::string>& roots, bool default_excludes = true) {
  struct Inode {
    uint64_t names = 0, nlink = 0;
  };
  // content class -> (dev, ino) -> names
  std::map<std::string, std::map<std::pair<uint64_t, uint64_t>, Inode>> classes;
  std::map<std::string, uint64_t> class_size;
  for (const auto& root : roots) {
    auto conffiles = conffiles_of(root);
    for (auto it = fs::recursive_directory_iterator(root); it != fs::recursive_directory_iterator();
         ++it) {
      std::string rel = it->path().string().substr(root.size() + 1); // no symlink resolution
      if (conffiles.count(rel)) continue;
      if ((default_excludes && private_path(rel)) || secret_path(rel)) {
        if (it->is_directory() && !it->is_symlink()) it.disable_recursion_pending();
        continue;
      }
      struct stat st {};
      if (::lstat(it->path().c_str(), &st) != 0 || !S_ISREG(st.st_mode) || st.st_size < 16)
        continue;
      // What a link must preserve, mtime included (files that differ only
      // in it stay apart).
      std::string key = std::to_string(st.st_dev) + " " + std::to_string(st.st_size) + " " +
                        std::to_string(st.st_mode) + " " + std::to_string(st.st_uid) + " " +
                        std::to_string(st.st_gid) + " " + std::to_string(st.st_mtim.tv_sec) + "." +
                        std::to_string(st.st_mtim.tv_nsec) + " " + xattrs(it->path()) + " " +
                        file_hash(it->path());
      auto& ino = classes[key][{st.st_dev, st.st_ino}];
      ++ino.names;
      ino.nlink = st.st_nlink;
      class_size[key] = static_cast<uint64_t>(st.st_blocks) * 512; // what du sees freed
    }
  }
  Expected e;
  for (auto& [key, inodes] : classes) {
    std::vector<uint64_t> eligible;
    for (auto& [id, ino] : inodes)
      if (ino.names == ino.nlink) eligible.push_back(ino.names);
    if (eligible.size() < 2) continue;
    std::sort(eligible.rbegin(), eligible.rend());
    for (size_t i = 1; i < eligible.size(); ++i) e.files_linked += eligible[i];
    e.bytes_saved += (eligible.size() - 1) * class_size[key];
  }
  return e;
}

} // namespace

TEST(RealGuests, TwoDebootstrappedGuestsSaveWhatAnIndependentCountExpects) {
  std::string why;
  std::string minbase = cached_minbase(why);
  if (minbase.empty()) GTEST_SKIP() << why;
  std::string deb = cached_deb("tree");
  if (deb.empty()) GTEST_SKIP() << "apt-get download tree failed (no mirror reachable?)";

  TempTree t;
  ASSERT_EQ(sh("cp -a " + minbase + " " + t.path("g1")), 0);
  ASSERT_EQ(sh("cp -a " + minbase + " " + t.path("g2")), 0);
  ASSERT_EQ(sh("cp " + deb + " " + t.path("g2/tmp/pkg.deb") + " && chroot " + t.path("g2") +
               " dpkg -i /tmp/pkg.deb >/dev/null && rm " + t.path("g2/tmp/pkg.deb")),
            0);
  ASSERT_TRUE(fs::exists(t.path("g2/usr/bin/tree")));
  ASSERT_FALSE(fs::exists(t.path("g1/usr/bin/tree")));

  auto before1 = content_snapshot(t.path("g1"));
  auto before2 = content_snapshot(t.path("g2"));
  Expected want = independent_count({t.path("g1"), t.path("g2")});
  ASSERT_GT(want.bytes_saved, 50u << 20) << "a minbase guest has more than 50 MiB to share";

  // du (each inode once across its arguments) as the independent measure.
  auto du_bytes = [&] {
    sh("du -s -B1 " + t.path("g1") + " " + t.path("g2") + " | awk '{s+=$1} END {print s}' > " +
       t.path("du.txt"));
    return std::stoull(t.read("du.txt"));
  };
  auto vdu_json = [&] {
    auto out = run_program({VDU_BIN, "--json", "--no-store", t.path("g1"), t.path("g2")});
    EXPECT_EQ(out.status, 0) << out.err;
    return nlohmann::json::parse(out.out);
  };
  uint64_t du_before = du_bytes();
  auto vdu_before = vdu_json();
  uint64_t saved_before =
      vdu_before["total"]["saved_bytes"].get<uint64_t>(); // the guests' own hard links

  auto r = run_vunify({"--json", t.path("g1"), t.path("g2")});
  ASSERT_EQ(r.status, 0) << r.err << r.out;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["bytes_saved"].get<uint64_t>(), want.bytes_saved);

  // vdu sees the disk du sees disappear, and attributes it to the guests.
  uint64_t du_after = du_bytes();
  auto vdu_after = vdu_json();
  uint64_t freed = vdu_before["total"]["allocated_bytes"].get<uint64_t>() -
                   vdu_after["total"]["allocated_bytes"].get<uint64_t>();
  EXPECT_EQ(freed, du_before - du_after) << "vdu and du agree on what unification freed";
  EXPECT_EQ(vdu_after["total"]["saved_bytes"].get<uint64_t>() - saved_before, freed);
  uint64_t sum = 0;
  for (const auto& g : vdu_after["guests"])
    sum += g["private_bytes"].get<uint64_t>() + g["shared_bytes"].get<uint64_t>();
  EXPECT_EQ(sum, vdu_after["total"]["allocated_bytes"].get<uint64_t>());
  EXPECT_EQ(j["files_linked"].get<uint64_t>(), want.files_linked);
  EXPECT_EQ(j["error_count"], 0);

  EXPECT_EQ(content_snapshot(t.path("g1")), before1);
  EXPECT_EQ(content_snapshot(t.path("g2")), before2);
  EXPECT_EQ(inode_of(t.path("g1/usr/bin/bash")), inode_of(t.path("g2/usr/bin/bash")));
  EXPECT_TRUE(is_immutable_path(t.path("g2/usr/bin/bash")));
  for (const char* p : {"etc/passwd", "etc/debian_version", "var/lib/dpkg/status"})
    EXPECT_NE(inode_of(t.path(std::string("g1/") + p)), inode_of(t.path(std::string("g2/") + p)))
        << p;
  // The unified guests still run their programs.
  EXPECT_EQ(sh("chroot " + t.path("g1") + " /usr/bin/ls / >/dev/null"), 0);
  EXPECT_EQ(sh("chroot " + t.path("g2") + " /usr/bin/tree -L 1 / >/dev/null"), 0);

  auto again = nlohmann::json::parse(run_vunify({"--json", t.path("g1"), t.path("g2")}).out);
  EXPECT_EQ(again["files_linked"], 0);
  EXPECT_EQ(again["error_count"], 0);
}

TEST(RealGuests, ConffilesAreNeverSharedEvenWithoutTheDefaultList) {
  std::string why;
  std::string minbase = cached_minbase(why);
  if (minbase.empty()) GTEST_SKIP() << why;
  TempTree t;
  ASSERT_EQ(sh("cp -a " + minbase + " " + t.path("g1")), 0);
  ASSERT_EQ(sh("cp -a " + minbase + " " + t.path("g2")), 0);
  auto conffiles = conffiles_of(t.path("g1"));
  ASSERT_GT(conffiles.size(), 30u);
  Expected want = independent_count({t.path("g1"), t.path("g2")}, false);

  auto r = run_vunify({"--json", "-v", "--no-default-excludes", t.path("g1"), t.path("g2")});
  ASSERT_EQ(r.status, 0) << r.err << r.out;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["bytes_saved"].get<uint64_t>(), want.bytes_saved);
  EXPECT_EQ(j["files_linked"].get<uint64_t>(), want.files_linked);
  EXPECT_EQ(j["guests"][0]["config_files"].get<size_t>(), conffiles.size());
  EXPECT_EQ(j["guests"][0]["pkgmgmt"], "used");
  EXPECT_NE(j["guests"][0]["config_sources"][0].get<std::string>().find("dpkg"), std::string::npos);
  for (const auto& c : conffiles) {
    if (!fs::is_regular_file(fs::symlink_status(t.path("g1/" + c)))) continue;
    EXPECT_NE(inode_of(t.path("g1/" + c)), inode_of(t.path("g2/" + c))) << c;
    EXPECT_FALSE(is_immutable_path(t.path("g1/" + c))) << c;
  }
  EXPECT_EQ(inode_of(t.path("g1/usr/bin/dpkg")), inode_of(t.path("g2/usr/bin/dpkg")));
  // Editing a conffile in one guest changes nothing else.
  auto before2 = content_snapshot(t.path("g2"));
  auto before1 = content_snapshot(t.path("g1"));
  {
    std::ofstream out(t.path("g1/etc/debian_version"), std::ios::app);
    out << "local edit\n";
  }
  EXPECT_NE(t.read("g1/etc/debian_version").find("local edit"), std::string::npos);
  EXPECT_EQ(content_snapshot(t.path("g2")), before2);
  auto after1 = content_snapshot(t.path("g1"));
  before1.erase("etc/debian_version");
  after1.erase("etc/debian_version");
  EXPECT_EQ(after1, before1);
}

TEST(RealGuests, DebianTwelvesConffileFlagsAreReadNotRejected) {
  // pkgconf's info/pkgconf.conffiles says "remove-on-upgrade /etc/...", its
  // status entry "... newconffile remove-on-upgrade": Debian 12's dpkg.
  std::string why;
  std::string minbase = cached_minbase(why);
  if (minbase.empty()) GTEST_SKIP() << why;
  std::vector<std::string> debs;
  for (const char* p : {"pkgconf", "pkgconf-bin", "libpkgconf3"}) {
    debs.push_back(cached_deb(p));
    if (debs.back().empty()) GTEST_SKIP() << "apt-get download " << p << " failed";
  }
  TempTree t;
  for (const char* g : {"g1", "g2"}) {
    ASSERT_EQ(sh("cp -a " + minbase + " " + t.path(g)), 0);
    std::string copy = "mkdir -p " + t.path(std::string(g) + "/tmp/debs");
    for (const auto& d : debs) copy += " && cp " + d + " " + t.path(std::string(g) + "/tmp/debs/");
    ASSERT_EQ(sh(copy + " && chroot " + t.path(g) + " sh -c 'dpkg -i /tmp/debs/*.deb' >/dev/null" +
                 " && rm -r " + t.path(std::string(g) + "/tmp/debs")),
              0)
        << g;
  }
  const std::string flagged = "etc/dpkg/dpkg.cfg.d/pkgconf-hook-config";
  ASSERT_EQ(sh("grep -q '^remove-on-upgrade /" + flagged + "' " +
               t.path("g1/var/lib/dpkg/info/pkgconf:amd64.conffiles") + " || grep -q " +
               "'^remove-on-upgrade /" + flagged + "' " +
               t.path("g1/var/lib/dpkg/info/pkgconf.conffiles")),
            0)
      << "the installed package carries the flag this test is about";
  auto r = run_vunify({"--json", "--no-default-excludes", t.path("g1"), t.path("g2")});
  ASSERT_EQ(r.status, 0) << r.err;
  auto j = json_of(r);
  for (int g : {0, 1}) EXPECT_EQ(j["guests"][g]["pkgmgmt"], "used");
  EXPECT_FALSE(same_inode(t.path("g1/" + flagged), t.path("g2/" + flagged)));
  EXPECT_TRUE(same_inode(t.path("g1/usr/bin/pkgconf"), t.path("g2/usr/bin/pkgconf")));
}
