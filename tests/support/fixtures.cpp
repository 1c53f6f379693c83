#include "tests/support/fixtures.h"

#include "tests/support/temp_tree.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <regex>

namespace fs = std::filesystem;

namespace vu::test {

namespace {

// Serialises cache builders across test processes.
class CacheLock {
public:
  CacheLock() {
    fs::create_directories(cache_dir());
    m_fd = ::open((cache_dir() + "/.lock").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    ::flock(m_fd, LOCK_EX);
  }
  ~CacheLock() { ::close(m_fd); }

private:
  int m_fd;
};

const char* k_spec_a = R"(Name: vu-test-a
Version: 1.0
Release: 1
Summary: vunify test package a
License: MIT
BuildArch: noarch
%description
Test package with %%config files.
%install
mkdir -p %{buildroot}/etc %{buildroot}/usr/share/vu-a
printf 'setting = 1\nanother setting = 2\n' > %{buildroot}/etc/vu-a.conf
printf '[section]\noption = a value long enough\n' > %{buildroot}/usr/share/vu-a/settings.ini
head -c 20000 /dev/zero | tr '\0' 'a' > %{buildroot}/usr/share/vu-a/data.bin
%files
%config /etc/vu-a.conf
%config /usr/share/vu-a/settings.ini
/usr/share/vu-a/data.bin
)";

const char* k_spec_b = R"(Name: vu-test-b
Version: 2.0
Release: 1
Summary: vunify test package b
License: MIT
BuildArch: noarch
%description
Test package with %%config(noreplace) files.
%install
mkdir -p %{buildroot}/etc %{buildroot}/usr/lib/vu-b
printf 'b-setting = yes\nmore = no\n' > %{buildroot}/etc/vu-b.conf
printf 'defaults for b, long enough\n' > %{buildroot}/usr/lib/vu-b/defaults.cfg
head -c 30000 /dev/zero | tr '\0' 'b' > %{buildroot}/usr/lib/vu-b/lib.bin
%files
%config(noreplace) /etc/vu-b.conf
%config(noreplace) /usr/lib/vu-b/defaults.cfg
/usr/lib/vu-b/lib.bin
)";

// A package whose %pre adds a system user (and records where it ran in
// /var/tmp/vu-c.pre), with a %config(noreplace) file and files that user
// owns; built as 1.0 and 1.1 (other data.bin content).
const char* k_spec_c = R"(Name: vu-test-c
Version: %{vuver}
Release: 1
Summary: vunify test package c
License: MIT
BuildArch: noarch
%description
Test package with a user, %%config(noreplace) and files of that user.
%pre
getent passwd vuc >/dev/null || useradd -r -M -d /var/lib/vu-c -s /usr/sbin/nologin vuc
hostname > /var/tmp/vu-c.pre
readlink /proc/self/ns/pid >> /var/tmp/vu-c.pre
%install
mkdir -p %{buildroot}/etc %{buildroot}/usr/share/vu-c %{buildroot}/var/lib/vu-c
printf 'c-setting = 1\n' > %{buildroot}/etc/vu-c.conf
printf 'the same in every version of vu-test-c\n' > %{buildroot}/usr/share/vu-c/README
head -c 30000 /dev/zero | tr '\0' '%{vufill}' > %{buildroot}/usr/share/vu-c/data.bin
printf 'state of vu-c\n' > %{buildroot}/var/lib/vu-c/state
%files
%config(noreplace) /etc/vu-c.conf
/usr/share/vu-c
%dir %attr(0750,vuc,vuc) /var/lib/vu-c
%attr(0640,vuc,vuc) /var/lib/vu-c/state
)";

} // namespace

// The first Debian mirror of the host's apt configuration.
std::string host_mirror() {
  std::vector<std::string> files{"/etc/apt/sources.list"};
  if (fs::exists("/etc/apt/sources.list.d"))
    for (auto& e : fs::directory_iterator("/etc/apt/sources.list.d")) files.push_back(e.path());
  std::regex uris(R"(^URIs:\s*(\S+))"), deb(R"(^deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+bookworm\s)");
  for (auto& f : files) {
    std::ifstream in(f);
    std::string line;
    while (std::getline(in, line)) {
      std::smatch m;
      if ((std::regex_search(line, m, uris) || std::regex_search(line, m, deb)) &&
          m[1].str().find("debian") != std::string::npos &&
          m[1].str().find("security") == std::string::npos)
        return m[1];
    }
  }
  return "http://deb.debian.org/debian";
}

std::string debootstrap_debs() {
  std::string dir = cache_dir() + "/debootstrap-debs";
  fs::create_directories(dir);
  return dir;
}

std::string cache_dir() {
  const char* env = std::getenv("VU_TEST_CACHE");
  return env && *env ? env : "/var/tmp/vunify-test-cache";
}

std::string cached_minbase(std::string& why) {
  if (sh("command -v debootstrap >/dev/null") != 0) {
    why = "debootstrap is not installed";
    return "";
  }
  CacheLock lock;
  std::string dir = cache_dir();
  std::string tree = dir + "/bookworm-minbase-sysv-webfs";
  if (!fs::exists(tree + ".complete")) {
    sh("rm -rf " + tree + " " + tree + ".tmp");
    int rc = sh("timeout 1200 debootstrap --variant=minbase --include=sysv-rc,webfs --cache-dir=" +
                debootstrap_debs() + " bookworm " + tree + ".tmp " + host_mirror() + " > " + dir +
                "/debootstrap.log 2>&1");
    if (rc != 0 || ::rename((tree + ".tmp").c_str(), tree.c_str()) != 0) {
      why = "debootstrap failed (no mirror reachable?), see " + dir + "/debootstrap.log";
      return "";
    }
    std::ofstream(tree + ".complete") << "ok\n";
  }
  return tree;
}

std::string cached_deb(const std::string& pkg) {
  CacheLock lock;
  std::string dir = cache_dir() + "/debs";
  fs::create_directories(dir);
  auto find = [&]() -> std::string {
    for (auto& e : fs::directory_iterator(dir))
      if (e.path().filename().string().rfind(pkg + "_", 0) == 0) return e.path();
    return "";
  };
  if (find().empty()) sh("cd " + dir + " && apt-get download " + pkg + " >/dev/null 2>&1");
  return find();
}

namespace {

// A spec and the --define arguments of one rpmbuild.
struct RpmBuild {
  const char* spec;
  std::string defines;
};

// Builds the packages into cache_dir()/<subdir> unless `rpms` are there.
std::vector<std::string> cached_rpms(const std::string& subdir, std::vector<std::string> rpms,
                                     const std::vector<RpmBuild>& builds, std::string& why) {
  if (sh("command -v rpmbuild >/dev/null && command -v rpm >/dev/null") != 0) {
    why = "rpmbuild/rpm not installed";
    return {};
  }
  CacheLock lock;
  const std::string dir = cache_dir() + "/" + subdir;
  for (auto& r : rpms) r = dir + "/" + r;
  if (std::all_of(rpms.begin(), rpms.end(), [](const auto& r) { return fs::exists(r); }))
    return rpms;
  const std::string top = dir + "/top";
  fs::create_directories(top + "/SPECS");
  for (size_t i = 0; i < builds.size(); ++i) {
    const std::string spec = top + "/SPECS/" + std::to_string(i) + ".spec";
    std::ofstream(spec) << builds[i].spec;
    if (sh("rpmbuild --quiet --nodeps --define '_topdir " + top +
           "' --define '_build_id_links none' " + builds[i].defines + " -bb " + spec + " >" + dir +
           "/rpmbuild.log 2>&1") != 0) {
      why = "rpmbuild failed, see " + dir + "/rpmbuild.log";
      return {};
    }
  }
  sh("cp " + top + "/RPMS/noarch/*.rpm " + dir + "/");
  if (!std::all_of(rpms.begin(), rpms.end(), [](const auto& r) { return fs::exists(r); })) {
    why = "rpmbuild made no packages";
    return {};
  }
  return rpms;
}

} // namespace

std::vector<std::string> cached_test_rpms(std::string& why) {
  return cached_rpms("rpms-v1", {"vu-test-a-1.0-1.noarch.rpm", "vu-test-b-2.0-1.noarch.rpm"},
                     {{k_spec_a, ""}, {k_spec_b, ""}}, why);
}

std::vector<std::string> cached_user_rpms(std::string& why) {
  return cached_rpms("rpms-user-v1", {"vu-test-c-1.0-1.noarch.rpm", "vu-test-c-1.1-1.noarch.rpm"},
                     {{k_spec_c, "--define 'vuver 1.0' --define 'vufill c'"},
                      {k_spec_c, "--define 'vuver 1.1' --define 'vufill d'"}},
                     why);
}

bool install_rpms(const std::string& root, const std::vector<std::string>& rpms) {
  std::string cmd = "rpm --root " + root + " --dbpath /var/lib/rpm --initdb && rpm --root " + root +
                    " --dbpath /var/lib/rpm -i --nodeps --noscripts --notriggers " +
                    "--nosignature";
  for (const auto& r : rpms) cmd += " " + r;
  return sh(cmd + " >/dev/null 2>&1") == 0;
}

} // namespace vu::test
