#include "tests/support/temp_tree.h"

#include <sys/mount.h>

#include <gtest/gtest.h>

#include <cstdio>
#include <cstring>
#include <dirent.h>
#include <fcntl.h>
#include <fstream>
#include <ftw.h>
#include <linux/fs.h>
#include <random>
#include <sstream>
#include <stdexcept>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/xattr.h>
#include <unistd.h>
#include <vector>
#include <xxhash.h>

namespace vu::test {

namespace {

void check(bool ok, const std::string& what) {
  if (!ok) throw std::runtime_error(what + ": " + std::strerror(errno));
}

std::string hex128(const std::string& data) {
  XXH128_hash_t h = XXH3_128bits(data.data(), data.size());
  char buf[40];
  std::snprintf(buf, sizeof buf, "%016llx%016llx", (unsigned long long)h.high64,
                (unsigned long long)h.low64);
  return buf;
}

std::string file_bytes(const std::string& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string xattrs_of(const std::string& p) {
  std::vector<char> names(65536);
  ssize_t n = ::llistxattr(p.c_str(), names.data(), names.size());
  std::vector<std::string> list;
  for (ssize_t i = 0; i < n;) {
    std::string name(names.data() + i);
    i += static_cast<ssize_t>(name.size()) + 1;
    std::vector<char> v(65536);
    ssize_t len = ::lgetxattr(p.c_str(), name.c_str(), v.data(), v.size());
    list.push_back(name + "=" + hex128(std::string(v.data(), len > 0 ? len : 0)));
  }
  std::sort(list.begin(), list.end());
  std::string out;
  for (auto& s : list) out += s + ";";
  return out;
}

std::map<std::string, std::string> walk(const std::string& root, bool with_meta) {
  std::map<std::string, std::string> out;
  std::vector<std::string> stack{""};
  while (!stack.empty()) {
    std::string rel = stack.back();
    stack.pop_back();
    std::string dir = rel.empty() ? root : root + "/" + rel;
    DIR* d = ::opendir(dir.c_str());
    if (!d) continue;
    while (auto* e = ::readdir(d)) {
      std::string n = e->d_name;
      if (n == "." || n == "..") continue;
      std::string r = rel.empty() ? n : rel + "/" + n;
      std::string p = root + "/" + r;
      struct stat st {};
      if (::lstat(p.c_str(), &st) != 0) continue;
      std::string meta;
      if (with_meta)
        meta = " mode=" + std::to_string(st.st_mode) + " uid=" + std::to_string(st.st_uid) +
               " gid=" + std::to_string(st.st_gid) + " x=" + xattrs_of(p);
      if (S_ISDIR(st.st_mode)) {
        out[r] = "dir" + meta;
        stack.push_back(r);
      } else if (S_ISREG(st.st_mode)) {
        out[r] = "file:" + hex128(file_bytes(p)) + meta;
      } else if (S_ISLNK(st.st_mode)) {
        char buf[4096];
        ssize_t len = ::readlink(p.c_str(), buf, sizeof buf);
        out[r] = "link:" + std::string(buf, len > 0 ? len : 0);
      } else {
        out[r] = "other:" + std::to_string(st.st_mode & S_IFMT) + meta;
      }
    }
    ::closedir(d);
  }
  return out;
}

} // namespace

std::string random_bytes(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>(rng() & 0xff);
  return s;
}

TempTree::TempTree() {
  const char* tmp = std::getenv("TMPDIR");
  std::string tmpl = std::string(tmp && *tmp ? tmp : "/tmp") + "/vunify-test.XXXXXX";
  std::vector<char> buf(tmpl.begin(), tmpl.end());
  buf.push_back('\0');
  check(::mkdtemp(buf.data()) != nullptr, "mkdtemp");
  m_root = buf.data();
}

TempTree::~TempTree() {
  if (::testing::Test::HasFailure()) {
    std::fprintf(stderr, "TempTree kept for inspection: %s\n", m_root.c_str());
    return;
  }
  remove_tree(m_root);
}

void TempTree::mkdirs(const std::string& rel) {
  std::string cur = m_root;
  std::istringstream ss(rel);
  std::string part;
  while (std::getline(ss, part, '/')) {
    if (part.empty()) continue;
    cur += "/" + part;
    if (::mkdir(cur.c_str(), 0755) != 0 && errno != EEXIST) check(false, "mkdir " + cur);
  }
}

void TempTree::file(const std::string& rel, const std::string& content, mode_t mode) {
  auto slash = rel.rfind('/');
  if (slash != std::string::npos) mkdirs(rel.substr(0, slash));
  std::string p = path(rel);
  int fd = ::open(p.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW, mode);
  check(fd >= 0, "create " + p);
  check(::write(fd, content.data(), content.size()) == static_cast<ssize_t>(content.size()),
        "write " + p);
  ::fchmod(fd, mode);
  // One modification time for every file made here, as files unpacked
  // from the same package have: content-equal files differ in nothing a
  // link must preserve unless a test says so.
  struct timespec times[2] = {{k_file_time, 0}, {k_file_time, 0}};
  ::futimens(fd, times);
  ::close(fd);
}

void TempTree::write(const std::string& rel, const std::string& content) const {
  std::ofstream out(path(rel), std::ios::binary | std::ios::trunc);
  out << content;
}

std::string TempTree::read(const std::string& rel) const {
  return file_bytes(path(rel));
}

void TempTree::build(const std::string& spec) {
  std::istringstream lines(spec);
  std::string line;
  while (std::getline(lines, line)) {
    std::istringstream ws(line);
    std::vector<std::string> w;
    for (std::string t; ws >> t;) w.push_back(t);
    if (w.empty() || w[0][0] == '#') continue;
    const std::string& op = w[0];
    if (op == "d") {
      mkdirs(w.at(1));
    } else if (op == "f") {
      std::string content = w.at(2);
      if (content[0] == '@') {
        auto colon = content.find(':');
        content = random_bytes(std::stoul(content.substr(1, colon - 1)),
                               std::stoull(content.substr(colon + 1)));
      }
      mode_t mode = 0644;
      uid_t uid = 0;
      gid_t gid = 0;
      std::vector<std::pair<std::string, std::string>> xattrs;
      for (size_t i = 3; i < w.size(); ++i) {
        const std::string& o = w[i];
        if (o.rfind("mode=", 0) == 0)
          mode = std::stoul(o.substr(5), nullptr, 8);
        else if (o.rfind("uid=", 0) == 0)
          uid = std::stoul(o.substr(4));
        else if (o.rfind("gid=", 0) == 0)
          gid = std::stoul(o.substr(4));
        else if (o.rfind("x:", 0) == 0) {
          auto eq = o.find('=');
          xattrs.emplace_back(o.substr(2, eq - 2), o.substr(eq + 1));
        } else
          throw std::runtime_error("bad spec option " + o);
      }
      file(w.at(1), content, mode);
      check(::lchown(path(w[1]).c_str(), uid, gid) == 0, "chown");
      check(::chmod(path(w[1]).c_str(), mode) == 0, "chmod");
      for (auto& [n, v] : xattrs)
        check(::lsetxattr(path(w[1]).c_str(), n.c_str(), v.data(), v.size(), 0) == 0,
              "setxattr " + n);
    } else if (op == "l") {
      auto slash = w.at(1).rfind('/');
      if (slash != std::string::npos) mkdirs(w[1].substr(0, slash));
      check(::symlink(w.at(2).c_str(), path(w[1]).c_str()) == 0, "symlink");
    } else if (op == "h") {
      auto slash = w.at(1).rfind('/');
      if (slash != std::string::npos) mkdirs(w[1].substr(0, slash));
      check(::link(path(w.at(2)).c_str(), path(w[1]).c_str()) == 0, "link");
    } else if (op == "p") {
      check(::mkfifo(path(w.at(1)).c_str(), 0644) == 0, "mkfifo");
    } else {
      throw std::runtime_error("bad spec line: " + line);
    }
  }
}

std::map<std::string, std::string> snapshot(const std::string& root) {
  return walk(root, true);
}
std::map<std::string, std::string> content_snapshot(const std::string& root) {
  return walk(root, false);
}

void remove_tree(const std::string& path) {
  ::nftw(
      path.c_str(),
      [](const char* p, const struct stat* st, int type, struct FTW*) {
        if (type == FTW_F && S_ISREG(st->st_mode)) {
          int fd = ::open(p, O_RDONLY | O_NOFOLLOW | O_NONBLOCK);
          if (fd >= 0) {
            int flags = 0;
            if (::ioctl(fd, FS_IOC_GETFLAGS, &flags) == 0 && (flags & FS_IMMUTABLE_FL)) {
              flags &= ~FS_IMMUTABLE_FL;
              ::ioctl(fd, FS_IOC_SETFLAGS, &flags);
            }
            ::close(fd);
          }
        }
        return 0;
      },
      64, FTW_PHYS);
  std::string cmd = "rm -rf -- '" + path + "'";
  if (::system(cmd.c_str()) != 0) std::fprintf(stderr, "could not remove %s\n", path.c_str());
}

uint64_t allocated_of(const std::string& path) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) return 0;
  return static_cast<uint64_t>(st.st_blocks) * 512;
}

uint64_t used_bytes(const std::string& dir) {
  sh("sync -f " + dir);
  struct statvfs s {};
  ::statvfs(dir.c_str(), &s);
  return (s.f_blocks - s.f_bfree) * s.f_frsize;
}

std::pair<uint64_t, uint64_t> inode_of(const std::string& path) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) return {0, 0};
  return {st.st_dev, st.st_ino};
}

uint32_t inode_flags_of(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK);
  if (fd < 0) return ~0u;
  int flags = 0;
  bool ok = ::ioctl(fd, FS_IOC_GETFLAGS, &flags) == 0;
  ::close(fd);
  return ok ? static_cast<uint32_t>(flags) : ~0u;
}

bool is_immutable_path(const std::string& path) {
  uint32_t flags = inode_flags_of(path);
  return flags != ~0u && (flags & FS_IMMUTABLE_FL);
}

int sh(const std::string& command) {
  int rc = ::system(command.c_str());
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

ScopedMount::ScopedMount(const std::string& type, const std::string& target,
                         const std::string& options)
    : m_target(target) {
  m_mounted = ::mount("none", target.c_str(), type.c_str(), 0,
                      options.empty() ? nullptr : options.c_str()) == 0;
}

ScopedMount ScopedMount::loop_image(const std::string& image, const std::string& target,
                                    const std::string& options) {
  ScopedMount m;
  m.m_target = target;
  m.m_mounted = sh("mount -o loop" + (options.empty() ? "" : "," + options) + " " + image + " " +
                   target + " 2>/dev/null") == 0;
  return m;
}

ScopedMount::ScopedMount(ScopedMount&& other) noexcept
    : m_target(std::move(other.m_target)), m_mounted(std::exchange(other.m_mounted, false)) {}

void ScopedMount::unmount() {
  if (m_mounted) ::umount2(m_target.c_str(), MNT_DETACH);
  m_mounted = false;
}

ScopedMount::~ScopedMount() {
  unmount();
}

} // namespace vu::test
