// vserver NAME build (see build.h).
//
//   vserver NAME build -m debootstrap [--hostname H] [--interface [DEV:]IP[/PREFIX]]
//                      [--context N] [--rootdir DIR] -- -d SUITE [-m MIRROR] [-- ARGS]
//   vserver NAME build -m skeleton [the same options]
//
// Nothing is left behind when a step fails: the configuration directory
// and the root are made last-in-first-out and removed again.
#include "tools/vserver/build.h"

#include "core/guest.h"
#include "kernel/fs.h"
#include "kernel/ns.h"
#include "tools/common/cli.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <iostream>
#include <set>

namespace vu {

namespace {

struct BuildArgs {
  std::string method, hostname, rootdir, suite, mirror;
  std::vector<std::string> interfaces;
  unsigned context = 0;
  std::vector<std::string> extra; // after the method's own "--"
};

// The method's arguments: -d SUITE [-m MIRROR] [-- extra...].
Status parse_method_args(const std::vector<std::string>& a, BuildArgs& b) {
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i] == "--") {
      b.extra.assign(a.begin() + static_cast<long>(i) + 1, a.end());
      break;
    }
    if ((a[i] == "-d" || a[i] == "-m") && i + 1 < a.size() && !a[i + 1].empty()) {
      (a[i] == "-d" ? b.suite : b.mirror) = a[i + 1];
      ++i;
      continue;
    }
    return described_error(EINVAL, "build: unexpected method argument '" + a[i] + "'");
  }
  if (b.method == "debootstrap" && b.suite.empty())
    return described_error(EINVAL, "build -m debootstrap needs -- -d SUITE (e.g. -- -d bookworm)");
  return {};
}

// [DEV:]IP[/PREFIX] -> interfaces/N/{dev,ip,prefix}.
Status write_interface(const std::string& dir, size_t n, const std::string& spec) {
  std::string rest = spec, dev, prefix;
  if (auto colon = rest.find(':'); colon != std::string::npos && rest.find('.') > colon &&
                                   rest.find("::") == std::string::npos && colon < 16) {
    dev = rest.substr(0, colon);
    rest = rest.substr(colon + 1);
  }
  if (auto slash = rest.find('/'); slash != std::string::npos) {
    prefix = rest.substr(slash + 1);
    rest = rest.substr(0, slash);
  }
  const std::string idir = dir + "/interfaces/" + std::to_string(n);
  std::filesystem::create_directories(idir);
  VU_TRY(write_file_atomic(idir + "/ip", rest + "\n", 0644));
  if (!prefix.empty()) VU_TRY(write_file_atomic(idir + "/prefix", prefix + "\n", 0644));
  if (!dev.empty()) VU_TRY(write_file_atomic(idir + "/dev", dev + "\n", 0644));
  return {};
}

// The lowest context from 2 up that no guest of the configuration base
// names (1 and 0 are util-vserver's spectator and host). A guest's context
// names its veth devices (vs<context>.<N>) and its vps/vserver-stat rows.
unsigned free_context(const ConfigBase& base) {
  std::set<unsigned long> used;
  if (auto dir = open_directory(base.dir()); dir.ok())
    if (auto entries = read_directory(dir->get()); entries.ok())
      for (const auto& e : *entries) {
        auto text = read_file_beneath(dir->get(), e.name + "/context", 64);
        if (text.ok()) used.insert(std::strtoul(text->c_str(), nullptr, 10));
      }
  unsigned c = 2;
  while (used.count(c)) ++c;
  return c;
}

Status write_config(const std::string& dir, const std::string& root, const BuildArgs& b,
                    const std::string& name) {
  if (::mkdir(dir.c_str(), 0755) != 0) return make_error(errno, "mkdir " + dir);
  if (::symlink(root.c_str(), (dir + "/vdir").c_str()) != 0) return make_error(errno, "vdir");
  std::filesystem::create_directories(dir + "/uts");
  std::filesystem::create_directories(dir + "/apps/init");
  VU_TRY(write_file_atomic(dir + "/uts/nodename", b.hostname + "\n", 0644));
  VU_TRY(write_file_atomic(dir + "/name", name + "\n", 0644));
  VU_TRY(write_file_atomic(dir + "/context", std::to_string(b.context) + "\n", 0644));
  for (size_t i = 0; i < b.interfaces.size(); ++i) VU_TRY(write_interface(dir, i, b.interfaces[i]));
  return {};
}

// The guest's own /etc/hostname (debootstrap copies the host's), written
// beneath the new root without following a link.
Status write_guest_hostname(const std::string& root, const std::string& hostname) {
  VU_TRY_ASSIGN(rootfd, open_directory(root));
  VU_TRY_ASSIGN(etc, open_beneath(rootfd.get(), "etc", O_RDONLY | O_DIRECTORY));
  return write_file_atomic_at(etc.get(), "hostname", hostname + "\n", 0644);
}

Status make_skeleton(const std::string& root) {
  for (const char* d : {"dev", "proc", "sys", "etc", "root", "tmp", "var", "run", "bin", "usr"})
    if (::mkdir((root + "/" + d).c_str(), 0755) != 0)
      return make_error(errno, std::string("mkdir ") + d);
  ::chmod((root + "/tmp").c_str(), 01777);
  ::chmod((root + "/root").c_str(), 0700);
  return {};
}

Status run_debootstrap(const std::string& root, const BuildArgs& b) {
  std::vector<std::string> argv{"debootstrap", "--include=sysv-rc"};
  argv.insert(argv.end(), b.extra.begin(), b.extra.end());
  argv.insert(argv.end(), {b.suite, root});
  if (!b.mirror.empty()) argv.push_back(b.mirror);
  pid_t pid = ::fork();
  if (pid < 0) return make_error(errno, "fork");
  if (pid == 0) {
    std::vector<char*> a;
    for (auto& s : argv) a.push_back(s.data());
    a.push_back(nullptr);
    ::execvp("debootstrap", a.data());
    std::cerr << "vserver: debootstrap is not installed (apt-get install debootstrap)\n";
    ::_exit(127);
  }
  VU_TRY_ASSIGN(code, wait_exit_code(pid));
  if (code != 0) return described_error(EIO, "debootstrap exited with " + std::to_string(code));
  return {};
}

Status build(const std::string& confdir, const std::string& name, BuildArgs b) {
  ConfigBase base(confdir);
  if (b.context == 0) b.context = free_context(base);
  if (b.hostname.empty()) b.hostname = name;
  const std::string dir = base.dir() + "/" + name;
  const std::string root = (b.rootdir.empty() ? base.vdirbase() : b.rootdir) + "/" + name;
  if (path_exists(dir))
    return described_error(EEXIST, "guest '" + name + "' exists already: " + dir);
  if (path_exists(root)) return described_error(EEXIST, "the root " + root + " exists already");
  if (::mkdir(root.c_str(), 0755) != 0) return make_error(errno, "mkdir " + root);
  Status r = write_config(dir, root, b, name);
  if (r.ok()) r = b.method == "skeleton" ? make_skeleton(root) : run_debootstrap(root, b);
  if (r.ok()) r = write_guest_hostname(root, b.hostname);
  if (!r.ok()) {
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
    std::filesystem::remove_all(root, ec);
  }
  return r;
}

} // namespace

int run_build(const std::string& confdir, const std::string& name,
              const std::vector<std::string>& args) {
  CLI::App app{"vserver NAME build: make a new guest", "vserver NAME build"};
  BuildArgs b;
  std::vector<std::string> method_args;
  app.add_option("-m,--method", b.method, "debootstrap or skeleton")
      ->required()
      ->check(CLI::IsMember({"debootstrap", "skeleton"}));
  app.add_option("--hostname", b.hostname, "the guest's host name (default: NAME)")
      ->check(non_empty());
  app.add_option("--interface", b.interfaces, "[DEV:]IP[/PREFIX], repeatable")->check(non_empty());
  app.add_option("--context", b.context, "context number")->check(CLI::Range(2u, 4294967294u));
  app.add_option("--rootdir", b.rootdir, "where the root goes (default: the vdirbase)")
      ->check(non_empty());
  app.add_option("method_args", method_args, "after --: -d SUITE [-m MIRROR] [-- ARGS]");
  app.allow_extras(false);
  std::vector<std::string> reversed(args.rbegin(), args.rend());
  if (auto done = parse_command_line(app, reversed)) return *done;
  if (auto p = parse_method_args(method_args, b); !p.ok()) {
    print_error("vserver", p.error().message());
    return exit_status(ExitCode::usage);
  }
  if (auto r = build(confdir, name, b); !r.ok()) {
    print_error("vserver", "build '" + name + "': " + r.error().message());
    return exit_status(ExitCode::partial);
  }
  std::cout << "guest '" << name << "' built; start it with 'vserver " << name << " start'\n";
  return exit_status(ExitCode::ok);
}

} // namespace vu
