// vapt-get on real unified guests with real packages: bookworm's hello and
// uuid-runtime (fetched with apt-get download; uuid-runtime's postinst adds
// a system user and gives it files), a hello rebuilt as a newer version,
// and a package whose postinst records where it ran. Each guest gets its
// own file: repository in /srv/repo. Guests are unified with vhashify
// first, so dpkg meets shared, immutable files.
#include "tests/support/fixtures.h"
#include "tests/support/guest_fixture.h"

#include <gtest/gtest.h>

#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <map>
#include <sstream>
#include <thread>

using namespace vu::test;
namespace fs = std::filesystem;

namespace {

class VAptGet : public GuestTest {
protected:
  void SetUp() override {
    GuestTest::SetUp();
    if (IsSkipped()) return;
    m_hello = cached_deb("hello");
    m_uuid = cached_deb("uuid-runtime");
    if (m_hello.empty() || m_uuid.empty()) GTEST_SKIP() << "apt-get download hello failed";
    fs::create_directories(t.path("debs"));
    m_probe_deb = build_probe_deb();
    m_hello2 = rebuild_hello("2.10-3+vu1", "second build\n");
  }

  // A package whose postinst records the host name and PID namespace it
  // ran in, and whether it could write to the host's /tmp.
  std::string build_probe_deb() {
    const std::string d = t.path("debs/probe");
    put(d + "/DEBIAN/control", "Package: vu-script-probe\nVersion: 1.0\nArchitecture: all\n"
                               "Maintainer: vunify tests <root@localhost>\n"
                               "Description: records where its maintainer script ran\n");
    put(d + "/DEBIAN/postinst", "#!/bin/sh\nset -e\nhostname > /var/lib/vu-script-probe.out\n"
                                "readlink /proc/self/ns/pid >> /var/lib/vu-script-probe.out\n"
                                "echo written > /tmp/vu-script-probe-" +
                                    std::to_string(::getpid()) + "\n");
    ::chmod((d + "/DEBIAN/postinst").c_str(), 0755);
    put(d + "/usr/share/vu-script-probe/data.txt", "probe data shared by all guests\n");
    const std::string deb = t.path("debs/vu-script-probe_1.0_all.deb");
    EXPECT_EQ(sh("dpkg-deb -b " + d + " " + deb + " >/dev/null"), 0);
    return deb;
  }

  // hello with another version and one changed file.
  std::string rebuild_hello(const std::string& version, const std::string& extra) {
    const std::string d = t.path("debs/hello-" + version);
    EXPECT_EQ(sh("dpkg-deb -R " + m_hello + " " + d), 0);
    EXPECT_EQ(sh("sed -i 's/^Version: .*/Version: " + version + "/' " + d + "/DEBIAN/control"), 0);
    EXPECT_EQ(sh("printf '" + extra + "' >> " + d + "/usr/share/doc/hello/copyright"), 0);
    const std::string deb = t.path("debs/hello_" + version + "_amd64.deb");
    EXPECT_EQ(sh("dpkg-deb -b " + d + " " + deb + " >/dev/null"), 0);
    return deb;
  }

  // In the running guest `g`, its own dpkg --configure -a, and where dpkg
  // asks for it (a package killed while it was unpacked), its own apt-get
  // install --reinstall hello, leave dpkg --audit with nothing to say.
  void expect_own_dpkg_repairs(const std::string& g, const std::string& when) {
    auto fix = vserver({g, "exec", "dpkg", "--configure", "-a"});
    auto audit = vserver({g, "exec", "dpkg", "--audit"});
    if (fix.status != 0 || !audit.out.empty()) {
      EXPECT_NE((fix.err + audit.out).find("reinstall"), std::string::npos) << fix.err << audit.out;
      auto again = vserver(
          {g, "exec", "apt-get", "install", "-y", "--reinstall", "--allow-downgrades", "hello"});
      EXPECT_EQ(again.status, 0) << when << ": " << again.out << again.err;
      fix = vserver({g, "exec", "dpkg", "--configure", "-a"});
      audit = vserver({g, "exec", "dpkg", "--audit"});
    }
    EXPECT_EQ(fix.status, 0) << when << ": " << fix.out << fix.err;
    EXPECT_EQ(audit.out, "") << when;
  }

  // An empty package `name` with `fields` (e.g. "Depends: hello\n").
  std::string build_deb(const std::string& name, const std::string& fields) {
    const std::string d = t.path("debs/" + name);
    put(d + "/DEBIAN/control", "Package: " + name + "\nVersion: 1.0\nArchitecture: all\n" + fields +
                                   "Maintainer: vunify tests <root@localhost>\n" +
                                   "Description: a test package\n");
    put(d + "/usr/share/doc/" + name + "/README", name + "\n");
    const std::string deb = t.path("debs/" + name + "_1.0_all.deb");
    EXPECT_EQ(sh("dpkg-deb -b " + d + " " + deb + " >/dev/null"), 0);
    return deb;
  }

  // A guest whose only apt source is /srv/repo holding `debs`.
  void make_apt_guest(const std::string& name, unsigned context,
                      const std::vector<std::string>& debs) {
    make_guest(name, context);
    publish(name, debs);
  }

  void publish(const std::string& name, const std::vector<std::string>& debs) {
    const std::string repo = root(name) + "/srv/repo";
    fs::create_directories(repo);
    for (const auto& d : debs)
      fs::copy_file(d, repo + "/" + fs::path(d).filename().string(),
                    fs::copy_options::overwrite_existing);
    ASSERT_EQ(sh("cd " + repo + " && dpkg-scanpackages -m . > Packages 2>/dev/null"), 0);
    put(root(name) + "/etc/apt/sources.list", "deb [trusted=yes] file:/srv/repo ./\n");
  }

  ProgramResult vapt_get(const std::vector<std::string>& args, int timeout_s = 300) {
    std::vector<std::string> argv{VAPT_GET_BIN};
    argv.insert(argv.end(), args.begin(), args.end());
    return run_program(argv, m_env, timeout_s);
  }

  void hashify(const std::vector<std::string>& guests) {
    auto r = run_vhashify(guests, m_env);
    ASSERT_EQ(r.status, 0) << r.err;
  }

  std::string m_hello, m_hello2, m_uuid, m_probe_deb;
};

} // namespace

// The whole cycle in two unified guests, one running and one stopped:
// install (a maintainer script adding a user), upgrade, remove. dpkg in a
// unified guest alone fails; through vapt-get it works, the scripts run in
// the guest, the guest's users own the files, the other guest keeps its
// files, and afterwards the updated files are shared again.
TEST_F(VAptGet, InstallUpgradeAndRemoveInUnifiedGuests) {
  make_apt_guest("a", 4201, {m_hello, m_uuid, m_probe_deb});
  make_apt_guest("b", 4202, {m_hello, m_uuid, m_probe_deb});
  hashify({"a", "b"});
  const std::vector<std::string> host_files{"/etc/passwd", "/etc/group", "/var/lib/dpkg/status"};
  std::vector<std::string> host_before;
  for (const auto& f : host_files) host_before.push_back(file_digest(f));
  ASSERT_EQ(vserver({"a", "start"}).status, 0);

  auto r = vapt_get({"a", "b", "--", "update"});
  ASSERT_EQ(r.status, 0) << r.out << r.err;
  r = vapt_get({"a", "b", "--", "install", "-y", "hello", "uuid-runtime", "vu-script-probe"});
  ASSERT_EQ(r.status, 0) << r.out << r.err;
  for (const char* g : {"a", "b"}) {
    // uuid-runtime's postinst added uuidd to the guest and gave it files.
    const long uuidd = uid_in(root(g) + "/etc/passwd", "uuidd");
    ASSERT_GT(uuidd, 0) << g;
    EXPECT_EQ(static_cast<long>(owner_of(root(g) + "/var/lib/libuuid")), uuidd) << g;
    // The probe's postinst ran in the guest: its host name, not the host's
    // PID namespace, and its /tmp.
    std::string out = read_all(root(g) + "/var/lib/vu-script-probe.out");
    EXPECT_EQ(out.substr(0, out.find('\n')), std::string(g) + "-host") << out;
    char host_ns[64] = {};
    ASSERT_GT(::readlink("/proc/self/ns/pid", host_ns, sizeof host_ns - 1), 0);
    EXPECT_EQ(out.find(host_ns), std::string::npos) << out;
    EXPECT_TRUE(fs_exists(root(g) + "/tmp/vu-script-probe-" + std::to_string(::getpid())));
  }
  EXPECT_FALSE(fs_exists("/tmp/vu-script-probe-" + std::to_string(::getpid())));
  // Installed files are shared at once.
  EXPECT_TRUE(same_inode(root("a") + "/usr/bin/hello", root("b") + "/usr/bin/hello"));
  EXPECT_TRUE(is_immutable_path(root("a") + "/usr/bin/hello"));

  // Upgrade: the guest's own apt-get cannot replace shared files ...
  publish("a", {m_hello2});
  publish("b", {m_hello2});
  ASSERT_EQ(vapt_get({"a", "b", "--", "update"}).status, 0);
  auto own = vserver({"a", "exec", "apt-get", "install", "-y", "hello"});
  EXPECT_NE(own.status, 0) << "dpkg replaced a shared file: " << own.out;
  EXPECT_NE((own.out + own.err).find("Operation not permitted"), std::string::npos)
      << own.out << own.err;
  // ... through vapt-get it can; b keeps the old version until its turn.
  const std::string copyright = "/usr/share/doc/hello/copyright";
  const std::string old_text = read_all(root("b") + copyright);
  r = vapt_get({"a", "--", "install", "-y", "hello"});
  ASSERT_EQ(r.status, 0) << r.out << r.err;
  EXPECT_NE(read_all(root("a") + copyright).find("second build"), std::string::npos);
  EXPECT_EQ(read_all(root("b") + copyright), old_text);
  EXPECT_TRUE(is_immutable_path(root("b") + copyright));
  r = vapt_get({"b", "--", "install", "-y", "hello"});
  ASSERT_EQ(r.status, 0) << r.out << r.err;
  EXPECT_TRUE(same_inode(root("a") + copyright, root("b") + copyright));
  EXPECT_TRUE(same_inode(root("a") + "/usr/bin/hello", root("b") + "/usr/bin/hello"));

  // Remove: gone from a, untouched in b.
  r = vapt_get({"a", "--", "remove", "-y", "hello"});
  ASSERT_EQ(r.status, 0) << r.out << r.err;
  EXPECT_FALSE(fs_exists(root("a") + "/usr/bin/hello"));
  EXPECT_TRUE(fs_exists(root("b") + "/usr/bin/hello"));
  EXPECT_TRUE(is_immutable_path(root("b") + "/usr/bin/hello"));
  for (const char* g : {"a", "b"})
    EXPECT_EQ(writable_shared_files(root(g)), std::vector<std::string>{}) << g;
  for (size_t i = 0; i < host_files.size(); ++i)
    EXPECT_EQ(file_digest(host_files[i]), host_before[i]) << host_files[i];
}

// The same update in five unified guests: its files exist once on disk
// afterwards, and what the guests use grows by that one copy plus their
// private files (vdu's figures).
TEST_F(VAptGet, AnUpdateOfFiveGuestsIsStoredOnce) {
  std::vector<std::string> names;
  for (int i = 1; i <= 5; ++i) {
    names.push_back("g" + std::to_string(i));
    make_apt_guest(names.back(), 4210 + i, {m_hello});
  }
  hashify(names);
  auto args = names;
  args.insert(args.end(), {"--", "update"});
  ASSERT_EQ(vapt_get(args).status, 0);
  auto usage = [&]() {
    auto a = names;
    a.push_back("--json");
    auto v = run_vdu(a, m_env);
    EXPECT_EQ(v.status, 0) << v.err;
    return json_of(v);
  };
  const auto before = usage();
  args = names;
  args.insert(args.end(), {"--json", "--", "install", "-y", "hello"});
  auto r = vapt_get(args);
  ASSERT_EQ(r.status, 0) << r.err;
  auto summary = json_of(r);
  ASSERT_EQ(summary["guests"].size(), 5u);
  for (const auto& g : summary["guests"]) {
    EXPECT_TRUE(g["ok"].get<bool>()) << g.dump();
    EXPECT_EQ(g["installs"], 1);
    EXPECT_GT(g["files_shared_again"].get<uint64_t>(), 0u) << g.dump();
  }
  const auto after = usage();

  // Every file of the package: one inode in all five guests.
  uint64_t package_bytes = 0;
  std::istringstream list(read_all(root("g1") + "/var/lib/dpkg/info/hello.list"));
  for (std::string path; std::getline(list, path);) {
    struct stat st {};
    if (::lstat((root("g1") + path).c_str(), &st) != 0 || !S_ISREG(st.st_mode)) continue;
    package_bytes += static_cast<uint64_t>(st.st_blocks) * 512;
    for (const auto& g : names)
      EXPECT_TRUE(same_inode(root("g1") + path, root(g) + path)) << g << path;
  }
  ASSERT_GT(package_bytes, 100u << 10);
  uint64_t private_growth = 0;
  for (size_t i = 0; i < names.size(); ++i) {
    const int64_t grew = after["guests"][i]["private_bytes"].get<int64_t>() -
                         before["guests"][i]["private_bytes"].get<int64_t>();
    private_growth += static_cast<uint64_t>(std::max<int64_t>(grew, 0));
  }
  const int64_t total_growth = after["total"]["allocated_bytes"].get<int64_t>() -
                               before["total"]["allocated_bytes"].get<int64_t>();
  EXPECT_LE(total_growth, static_cast<int64_t>(package_bytes + private_growth + (64 << 10)))
      << "package " << package_bytes << ", private " << private_growth;
  // Far less than five copies.
  EXPECT_LT(total_growth, static_cast<int64_t>(2 * package_bytes + private_growth));
}

// A hostile guest changes nothing outside itself: its apt.conf.d turns
// dpkg's chroot off and adds a hook, symlinks (absolute and relative)
// stand where the package installs, then its dpkg-deb prints garbage and
// its dpkg writes where it should not. The other guest of the same call
// is updated all the same.
TEST_F(VAptGet, AHostileGuestChangesNothingOutsideItself) {
  make_apt_guest("h", 4221, {m_hello, m_uuid});
  make_apt_guest("g", 4222, {m_hello, m_uuid});
  const std::string tag = std::to_string(::getpid());
  const std::string host_passwd = file_digest("/etc/passwd");
  put(root("h") + "/etc/apt/apt.conf.d/99evil",
      "DPkg::Chroot-Directory \"/\";\nDPkg::Pre-Invoke {\"hostname > /tmp/vu-hook-" + tag +
          "\";};\n");
  fs::create_symlink("/etc", root("h") + "/usr/share/doc/hello");
  fs::remove_all(root("h") + "/usr/share/info");
  fs::create_symlink("../../../../../../../../tmp", root("h") + "/usr/share/info");
  hashify({"h", "g"});
  ASSERT_EQ(vapt_get({"h", "g", "--", "update"}).status, 0);
  ASSERT_FALSE(fs_exists("/etc/copyright"));
  ASSERT_FALSE(fs_exists("/tmp/hello.info.gz"));
  auto r = vapt_get({"h", "g", "--", "install", "-y", "hello"});
  ASSERT_EQ(r.status, 0) << r.out << r.err;
  // The hook ran in the guest; the files went where the guest's symlinks
  // lead inside the guest.
  EXPECT_EQ(read_all(root("h") + "/tmp/vu-hook-" + tag), "h-host\n");
  EXPECT_TRUE(fs_exists(root("h") + "/etc/copyright"));
  EXPECT_TRUE(fs_exists(root("h") + "/tmp/hello.info.gz"));
  EXPECT_FALSE(fs_exists("/tmp/vu-hook-" + tag));
  EXPECT_FALSE(fs_exists("/etc/copyright"));
  EXPECT_FALSE(fs_exists("/tmp/hello.info.gz"));
  EXPECT_TRUE(fs_exists(root("g") + "/usr/bin/hello"));

  // Garbage instead of a tar stream (a dpkg-deb of the guest's own, found
  // first on its PATH): h is refused before apt-get runs, g is updated,
  // the exit status says something failed.
  const std::string fake = root("h") + "/usr/local/bin/dpkg-deb";
  put(fake, "#!/bin/sh\nhead -c 20000 /dev/urandom\n");
  ::chmod(fake.c_str(), 0755);
  r = vapt_get({"h", "g", "--json", "--", "install", "-y", "uuid-runtime"});
  EXPECT_EQ(r.status, 1) << r.out << r.err;
  auto summary = json_of(r);
  ASSERT_EQ(summary["guests"].size(), 2u);
  EXPECT_FALSE(summary["guests"][0]["ok"].get<bool>());
  EXPECT_NE(summary["guests"][0].value("error", "").find("tar"), std::string::npos)
      << summary.dump();
  EXPECT_TRUE(summary["guests"][0]["exit_status"].is_null());
  EXPECT_TRUE(summary["guests"][1]["ok"].get<bool>()) << summary.dump();
  EXPECT_FALSE(fs_exists(root("h") + "/usr/sbin/uuidd"));
  EXPECT_TRUE(fs_exists(root("g") + "/usr/sbin/uuidd"));
  fs::remove(fake);

  // A dpkg of its own that writes a mark (apt told to use it): the mark
  // lands in the guest; the user its postinst adds is the guest's.
  const std::string dpkg = root("h") + "/usr/local/bin/dpkg";
  put(dpkg, "#!/bin/sh\necho \"$(hostname) $*\" >> /tmp/vu-dpkg-" + tag +
                "\nexec /usr/bin/dpkg \"$@\"\n");
  ::chmod(dpkg.c_str(), 0755);
  put(root("h") + "/etc/apt/apt.conf.d/98dpkg", "Dir::Bin::dpkg \"/usr/local/bin/dpkg\";\n");
  r = vapt_get({"h", "--", "install", "-y", "uuid-runtime"});
  EXPECT_EQ(r.status, 0) << r.out << r.err;
  EXPECT_NE(read_all(root("h") + "/tmp/vu-dpkg-" + tag).find("h-host"), std::string::npos);
  EXPECT_FALSE(fs_exists("/tmp/vu-dpkg-" + tag));
  EXPECT_GT(uid_in(root("h") + "/etc/passwd", "uuidd"), 0);
  EXPECT_EQ(file_digest("/etc/passwd"), host_passwd);
  for (const char* g : {"h", "g"})
    EXPECT_EQ(writable_shared_files(root(g)), std::vector<std::string>{}) << g;
}

// kill -9 of vapt-get at random moments of an update of a stopped guest:
// nothing of the guest keeps running, no shared inode is left writable,
// and the guest's own dpkg --configure -a brings its database back (after
// the reinstallation dpkg asks for when the kill came while it unpacked).
TEST_F(VAptGet, KillNineLeavesAStateDpkgRecoversFrom) {
  make_apt_guest("k", 4231, {m_hello, m_hello2});
  hashify({"k"});
  ASSERT_EQ(vapt_get({"k", "--", "update"}).status, 0);
  ASSERT_EQ(vapt_get({"k", "--", "install", "-y", "hello=2.10-3"}).status, 0);
  const std::vector<std::string> argv{VAPT_GET_BIN, "-q", "k", "--", "install", "-y", "hello"};
  const auto t0 = std::chrono::steady_clock::now();
  ASSERT_EQ(run_program(argv, m_env).status, 0); // timed: the window of the kills
  const double full_us =
      std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count();
  KillDelay delay(full_us, 1.0, 1234);
  // Starting and stopping the guest for dpkg --configure -a runs nothing else.
  put(conf("k") + "/apps/init/style", "none\n");
  put(conf("k") + "/apps/init/cmd.start", "/bin/true\n");
  put(conf("k") + "/apps/init/cmd.stop", "/bin/true\n");
  int killed = 0;
  for (int round = 0; round < 8; ++round) {
    auto a = argv;
    a.back() = round % 2 ? "hello=2.10-3+vu1" : "hello=2.10-3";
    a.insert(a.end() - 1, "--allow-downgrades");
    killed += kill_and_check(delay, a, "k", round);
    // The guest's own dpkg puts its database right. A package killed
    // while dpkg unpacked it is half-installed, as after a killed plain
    // dpkg: dpkg says to reinstall it, and the guest's own apt-get can
    // (the files of the update are private by then).
    auto started = vserver({"k", "start"});
    ASSERT_EQ(started.status, 0) << "round " << round << ": " << started.out << started.err;
    expect_own_dpkg_repairs("k", "round " + std::to_string(round));
    ASSERT_EQ(vserver({"k", "stop"}).status, 0);
  }
  EXPECT_GE(killed, 3);
  auto r = vapt_get({"k", "--", "install", "-y", "--allow-downgrades", "hello=2.10-3+vu1"});
  EXPECT_EQ(r.status, 0) << r.out << r.err;
  EXPECT_NE(read_all(root("k") + "/usr/share/doc/hello/copyright").find("second build"),
            std::string::npos);
  EXPECT_EQ(writable_shared_files(root("k")), std::vector<std::string>{});
}

// --dry-run counts and changes nothing; usage errors exit 2; a guest that
// does not exist fails alone.
TEST_F(VAptGet, DryRunChangesNothingAndErrorsAreReported) {
  make_apt_guest("d", 4241, {m_hello, m_hello2});
  ASSERT_EQ(vapt_get({"d", "--", "update"}).status, 0);
  ASSERT_EQ(vapt_get({"d", "--", "install", "-y", "hello=2.10-3"}).status, 0);
  hashify({"d"});
  const std::string copyright = root("d") + "/usr/share/doc/hello/copyright";
  ASSERT_TRUE(is_immutable_path(copyright));
  const std::string status_before = read_all(root("d") + "/var/lib/dpkg/status");
  auto r = vapt_get({"--dry-run", "--json", "d", "--", "install", "-y", "hello"});
  ASSERT_EQ(r.status, 0) << r.err;
  auto j = json_of(r);
  EXPECT_TRUE(j["dry_run"].get<bool>());
  const auto& g = j["guests"][0];
  EXPECT_EQ(g["installs"], 1);
  EXPECT_GT(g["files_planned"].get<uint64_t>(), 10u) << g.dump();     // hello's installed files
  EXPECT_GT(g["files_made_private"].get<uint64_t>(), 0u) << g.dump(); // counted, not done
  EXPECT_TRUE(g["exit_status"].is_null());
  EXPECT_TRUE(is_immutable_path(copyright));
  EXPECT_EQ(read_all(root("d") + "/var/lib/dpkg/status"), status_before);

  EXPECT_EQ(vapt_get({"d"}).status, 2);            // no apt-get arguments
  EXPECT_EQ(vapt_get({"--", "update"}).status, 2); // no guest
  EXPECT_EQ(vapt_get({"--no-such-option", "d", "--", "update"}).status, 2);
  EXPECT_EQ(j["errors"], nlohmann::json::object());
  EXPECT_EQ(j["error_count"], 0);
  EXPECT_EQ(j["tool"], "vapt-get");
  auto failed = vapt_get({"--json", "nope", "--", "install", "-y", "hello"});
  EXPECT_EQ(failed.status, 1) << failed.err;
  auto fj = json_of(failed);
  EXPECT_EQ(fj["error_count"], 1);
  EXPECT_EQ(fj["errors"]["guest"]["example"], "nope") << fj.dump();
  r = vapt_get({"nope", "d", "--", "install", "-y", "hello"});
  EXPECT_EQ(r.status, 1) << r.err;
  EXPECT_NE(r.err.find("nope"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("vapt-get: error: d:"), std::string::npos) << r.err;
  EXPECT_NE(read_all(copyright).find("second build"), std::string::npos);
}

namespace {

class VAptGetExternal : public VAptGet {
protected:
  // Guest `name` with apps/pkgmgmt/base in the test's tree, and a host
  // repository holding `debs`.
  void make_external_guest(const std::string& name, unsigned context,
                           const std::vector<std::string>& debs) {
    make_apt_guest(name, context, debs);
    fs::create_directories(conf(name) + "/apps/pkgmgmt");
    fs::create_directories(base(name));
    fs::create_symlink(base(name), conf(name) + "/apps/pkgmgmt/base");
    host_publish(debs);
  }
  std::string base(const std::string& name) { return t.path("vservers/.pkg/" + name); }
  std::string host_repo() { return t.path("hostrepo"); }

  void host_publish(const std::vector<std::string>& debs) {
    fs::create_directories(host_repo());
    for (const auto& d : debs)
      fs::copy_file(d, host_repo() + "/" + fs::path(d).filename().string(),
                    fs::copy_options::overwrite_existing);
    ASSERT_EQ(sh("cd " + host_repo() + " && dpkg-scanpackages -m . > Packages 2>/dev/null"), 0);
  }
  // Exactly one copy of the dpkg database: in the guest or outside it.
  void expect_one_database(const std::string& name, const std::string& when) {
    const bool inside = fs_exists(root(name) + "/var/lib/dpkg/status");
    const bool outside = fs_exists(base(name) + "/dpkg/state/status");
    EXPECT_NE(inside, outside) << when;
  }
};

} // namespace

// An external dpkg database (vserver NAME pkgmgmt externalize): the host's
// apt resolves and downloads with the host's directories, the guest's dpkg
// installs, upgrades and removes with the database shown to it for that
// step alone - in a running and in a stopped guest; a hostile layout is
// refused; internalize gives the guest its database back; kill -9 during
// either move leaves exactly one copy.
TEST_F(VAptGetExternal, ExternalDatabaseInstallUpgradeRemove) {
  const std::string needs_hello = build_deb("vu-needs-hello", "Depends: hello\n");
  make_external_guest("e", 4251, {m_hello, m_probe_deb, m_uuid, needs_hello});
  put(root("e") + "/etc/apt/sources.list.d/web.list",
      "deb [signed-by=/etc/shadow trusted=yes arch=amd64] http://deb.debian.org/debian bookworm "
      "main\n");
  // A guest apt.conf.d file that would run a hook and move apt's cache:
  // the host's apt never reads the guest's configuration.
  const std::string hook = "/tmp/vu-external-hook-" + std::to_string(::getpid());
  put(root("e") + "/etc/apt/apt.conf.d/99hostile",
      "DPkg::Pre-Invoke {\"touch " + hook + "\";};\nDir::Cache \"/tmp\";\n");
  make_apt_guest("f", 4252, {m_hello});
  const std::vector<std::string> host_files{"/etc/passwd", "/etc/group", "/var/lib/dpkg/status"};
  std::vector<std::string> host_before;
  for (const auto& f : host_files) host_before.push_back(file_digest(f));
  ASSERT_EQ(vapt_get({"f", "--", "update"}).status, 0);
  ASSERT_EQ(vapt_get({"f", "--", "install", "-y", "hello"}).status, 0);

  auto r = vserver({"e", "pkgmgmt", "externalize"});
  ASSERT_EQ(r.status, 0) << r.err;
  expect_one_database("e", "externalized");
  EXPECT_TRUE(fs::is_empty(root("e") + "/var/lib/dpkg"));
  // The guest's file: source names a path the host's apt would read on the
  // host: not copied.
  EXPECT_EQ(read_all(base("e") + "/apt/etc/sources.list"),
            "deb [arch=amd64] http://deb.debian.org/debian bookworm main\n");
  EXPECT_NE(r.err.find("not copied"), std::string::npos) << r.err;
  EXPECT_EQ(vserver({"e", "pkgmgmt", "externalize"}).status, 0); // already: nothing to do
  put(base("e") + "/apt/etc/sources.list", "deb [trusted=yes] file:" + host_repo() + " ./\n");

  r = vapt_get({"e", "--", "update"}); // the host's apt, the host's lists
  ASSERT_EQ(r.status, 0) << r.out << r.err;
  ASSERT_FALSE(fs::is_empty(base("e") + "/apt/state/lists"));
  ASSERT_EQ(vserver({"e", "start"}).status, 0);
  r = vapt_get({"e", "--", "install", "-y", "hello", "vu-script-probe", "uuid-runtime"});
  ASSERT_EQ(r.status, 0) << r.out << r.err;
  // uuid-runtime's postinst added uuidd to the guest, which owns its files.
  const long uuidd = uid_in(root("e") + "/etc/passwd", "uuidd");
  ASSERT_GT(uuidd, 0);
  EXPECT_EQ(static_cast<long>(owner_of(root("e") + "/var/lib/libuuid")), uuidd);
  EXPECT_TRUE(fs_exists(root("e") + "/usr/bin/hello"));
  std::string probe = read_all(root("e") + "/var/lib/vu-script-probe.out");
  EXPECT_EQ(probe.substr(0, probe.find('\n')), "e-host") << probe;
  char host_ns[64] = {};
  ASSERT_GT(::readlink("/proc/self/ns/pid", host_ns, sizeof host_ns - 1), 0);
  EXPECT_EQ(probe.find(host_ns), std::string::npos) << probe;
  EXPECT_FALSE(fs_exists(hook));
  EXPECT_FALSE(fs_exists(root("e") + hook));
  EXPECT_NE(read_all(base("e") + "/dpkg/state/status").find("Package: hello\n"), std::string::npos);
  // The running guest does not see its database outside the transaction.
  auto seen = vserver({"e", "exec", "ls", "-A", "/var/lib/dpkg", "/var/cache/apt/archives"});
  EXPECT_EQ(seen.out.find("status"), std::string::npos) << seen.out;
  EXPECT_EQ(seen.out.find("000-hello"), std::string::npos) << seen.out;

  // Upgrade, with f sharing hello's files: f keeps its copy, e's
  // unchanged files are shared with f again afterwards.
  ASSERT_EQ(vserver({"e", "stop"}).status, 0);
  hashify({"e", "f"});
  const std::string f_copyright = root("f") + "/usr/share/doc/hello/copyright";
  const std::string f_before = file_digest(f_copyright);
  host_publish({m_hello2});
  ASSERT_EQ(vapt_get({"e", "--", "update"}).status, 0);
  r = vapt_get({"e", "--", "install", "-y", "hello"}); // the stopped guest
  ASSERT_EQ(r.status, 0) << r.out << r.err;
  EXPECT_NE(read_all(root("e") + "/usr/share/doc/hello/copyright").find("second build"),
            std::string::npos);
  EXPECT_EQ(file_digest(f_copyright), f_before);
  struct stat st {};
  ASSERT_EQ(::stat((root("e") + "/usr/bin/hello").c_str(), &st), 0);
  EXPECT_GT(st.st_nlink, 1u); // shared again
  EXPECT_EQ(writable_shared_files(root("e")), std::vector<std::string>{});
  r = vapt_get({"e", "--", "remove", "-y", "hello"});
  ASSERT_EQ(r.status, 0) << r.out << r.err;
  EXPECT_FALSE(fs_exists(root("e") + "/usr/bin/hello"));
  EXPECT_TRUE(fs_exists(root("f") + "/usr/bin/hello"));
  // A dependency apt pulls in is marked automatic in the host's state, as
  // apt marks it, and autoremove takes it away with what needed it.
  r = vapt_get({"e", "--", "install", "-y", "vu-needs-hello"});
  ASSERT_EQ(r.status, 0) << r.out << r.err;
  EXPECT_NE(read_all(base("e") + "/apt/state/extended_states").find("Package: hello\n"),
            std::string::npos);
  r = vapt_get({"e", "--", "purge", "-y", "--autoremove", "vu-needs-hello"});
  ASSERT_EQ(r.status, 0) << r.out << r.err;
  EXPECT_FALSE(fs_exists(root("e") + "/usr/bin/hello"));
  // A simulation is the host's apt alone: nothing is installed.
  r = vapt_get({"e", "--", "install", "-s", "vu-needs-hello"});
  ASSERT_EQ(r.status, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("Inst hello"), std::string::npos) << r.out;
  EXPECT_FALSE(fs_exists(root("e") + "/usr/bin/hello"));

  // Hostile layouts: a status file that is a symlink to the host's shadow
  // (what the guest's dpkg could leave there), a state directory in the
  // guest's own tree.
  const std::string status = base("e") + "/dpkg/state/status";
  fs::rename(status, status + ".real");
  fs::create_symlink("/etc/shadow", status);
  r = vapt_get({"e", "--", "install", "-y", "hello"});
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("status"), std::string::npos) << r.err;
  fs::remove(status);
  fs::rename(status + ".real", status);
  fs::create_directories(root("e") + "/var/lib/fake-state");
  fs::create_symlink(root("e") + "/var/lib/fake-state", conf("e") + "/apps/pkgmgmt/dpkgstate");
  r = vapt_get({"e", "--", "install", "-y", "hello"});
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("guest's root"), std::string::npos) << r.err;
  fs::remove(conf("e") + "/apps/pkgmgmt/dpkgstate");
  // The guest's mount point a symlink to the host's /etc (seen from the
  // host): refused, not followed.
  const std::string point = root("e") + "/var/lib/dpkg";
  fs::rename(point, point + ".away");
  fs::create_symlink("/etc", point);
  const std::string host_etc = file_digest("/etc/passwd");
  r = vapt_get({"e", "--", "install", "-y", "hello"});
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("not a symlink"), std::string::npos) << r.err;
  EXPECT_EQ(file_digest("/etc/passwd"), host_etc);
  fs::remove(point);
  fs::rename(point + ".away", point);

  // kill -9 at random moments of updates: nothing keeps running, no shared
  // file is writable (the guest's dpkg repairs the rest, below).
  const std::vector<std::string> update{
      VAPT_GET_BIN, "-q", "e", "--", "install", "-y", "--allow-downgrades", "hello=2.10-3"};
  const auto t0 = std::chrono::steady_clock::now();
  ASSERT_EQ(run_program(update, m_env).status, 0);
  KillDelay update_delay(
      std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count(), 1.0,
      4321);
  for (int round = 0; round < 4; ++round) {
    auto a = update;
    if (round % 2) a.back() = "hello=2.10-3+vu1";
    kill_and_check(update_delay, a, "e", round);
  }
  // The next run removes the directories the killed ones left.
  ASSERT_EQ(vapt_get({"e", "--", "update"}).status, 0);
  for (const auto& entry : fs::directory_iterator(base("e") + "/apt/state"))
    EXPECT_NE(entry.path().filename().string().rfind("vunify-apt.", 0), 0u) << entry.path();

  EXPECT_FALSE(fs_exists(hook));
  fs::remove(root("e") + "/etc/apt/apt.conf.d/99hostile"); // the guest's own apt comes next

  // kill -9 at random moments of the moves: one copy, always.
  KillDelay delay(3000, 1.0, 99);
  for (int round = 0; round < 6; ++round) {
    std::vector<std::string> argv{VSERVER_BIN, "e", "pkgmgmt",
                                  round % 2 ? "externalize" : "internalize"};
    auto pid = spawn_quiet(argv, m_env);
    delay.kill_after_delay(pid);
    expect_one_database("e", "round " + std::to_string(round));
  }
  r = vserver({"e", "pkgmgmt", "internalize"});
  ASSERT_EQ(r.status, 0) << r.err;
  expect_one_database("e", "internalized");
  EXPECT_FALSE(fs_exists(base("e") + "/dpkg/state"));
  EXPECT_NE(read_all(root("e") + "/var/lib/dpkg/status").find("Package: vu-script-probe\n"),
            std::string::npos);
  // The guest's own tools put right what the kills left: a package killed
  // while dpkg unpacked it is reinstalled (from the guest's own source,
  // which now has both versions), dpkg --configure -a and --audit find
  // nothing more.
  publish("e", {m_hello, m_hello2});
  ASSERT_EQ(vapt_get({"e", "--", "update"}).status, 0);
  ASSERT_EQ(vserver({"e", "start"}).status, 0);
  expect_own_dpkg_repairs("e", "after the kills");
  EXPECT_EQ(writable_shared_files(root("e")), std::vector<std::string>{});
  for (size_t i = 0; i < host_files.size(); ++i)
    EXPECT_EQ(file_digest(host_files[i]), host_before[i]) << host_files[i];
}
