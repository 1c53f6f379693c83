// The state directory, the signed temporary names and the guest locks.
//
// Why a signature: a run killed at the wrong moment leaves temporary links
// in guest directories, and the next run must remove them - but a name in
// a guest's directory is the guest's to choose. A guest root that plants
// ".vunify-tmp.x" (a second name of a file it shares with the host, or its
// own unique data) must not have it deleted, or have its inode flagged.
// Only a name that carries a keyed hash of its directory, made with a key
// the guest cannot read, is taken for the suite's own.
#include "unify/state.h"

#include "kernel/fs.h"

#include <fcntl.h>
#include <sodium.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fmt/format.h>

namespace vu {

namespace {

constexpr std::string_view k_prefix = ".vunify-tmp.";
constexpr size_t k_name_len = k_prefix.size() + 16 + 1 + 16;

bool parse_hex64(std::string_view s, uint64_t& out) {
  if (s.size() != 16) return false;
  out = 0;
  for (char c : s) {
    int v = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
    if (v < 0) return false;
    out = out << 4 | static_cast<uint64_t>(v);
  }
  return true;
}

uint64_t random64() {
  uint64_t r = 0;
  while (::getrandom(&r, sizeof r, 0) != sizeof r) {
  }
  return r;
}

} // namespace

TempNames::TempNames(const Key& key) : m_key(key), m_valid(true) {
  static const bool ready = sodium_init() >= 0;
  (void)ready; // crypto_shorthash needs no initialised state; randombytes does
}

uint64_t TempNames::sign(uint64_t dir_dev, uint64_t dir_ino, uint64_t random) const {
  unsigned char in[24];
  std::memcpy(in, &dir_dev, 8);
  std::memcpy(in + 8, &dir_ino, 8);
  std::memcpy(in + 16, &random, 8);
  unsigned char out[crypto_shorthash_BYTES];
  static_assert(crypto_shorthash_KEYBYTES == sizeof(Key));
  crypto_shorthash(out, in, sizeof in, m_key.data());
  uint64_t v = 0;
  std::memcpy(&v, out, 8);
  return v;
}

std::string TempNames::make(uint64_t dir_dev, uint64_t dir_ino) const {
  uint64_t r = random64();
  return fmt::format("{}{:016x}.{:016x}", k_prefix, r, sign(dir_dev, dir_ino, r));
}

bool TempNames::has_prefix(std::string_view name) {
  return name.substr(0, k_prefix.size()) == k_prefix;
}

bool TempNames::is_ours(std::string_view name, uint64_t dir_dev, uint64_t dir_ino) const {
  if (!m_valid || name.size() != k_name_len || !has_prefix(name) ||
      name[k_prefix.size() + 16] != '.')
    return false;
  uint64_t r = 0, mac = 0;
  if (!parse_hex64(name.substr(k_prefix.size(), 16), r) ||
      !parse_hex64(name.substr(k_prefix.size() + 17), mac))
    return false;
  uint64_t want = sign(dir_dev, dir_ino, r);
  return sodium_memcmp(&want, &mac, sizeof mac) == 0;
}

std::string StateDir::default_path() {
  const char* env = std::getenv("VUNIFY_STATE_DIR");
  return env && *env ? env : "/var/lib/vunify";
}

Result<StateDir> StateDir::open(const std::string& path, Create create) {
  if (path.empty() || path[0] != '/')
    return described_error(EINVAL, "state directory '" + path + "' is not an absolute path");
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) {
    if (errno != ENOENT || create == Create::no)
      return make_error(errno, "state directory " + path);
    if (::mkdir(path.c_str(), 0700) != 0 && errno != EEXIST)
      return make_error(errno, "create state directory " + path +
                                   " (set VUNIFY_STATE_DIR to another place)");
    if (::lstat(path.c_str(), &st) != 0) return make_error(errno, "state directory " + path);
  }
  if (!S_ISDIR(st.st_mode))
    return described_error(ENOTDIR, "state directory " + path +
                                        " is not a directory (a symlink?); remove it or set "
                                        "VUNIFY_STATE_DIR");
  if (st.st_uid != ::geteuid() || (st.st_mode & 022))
    return described_error(EPERM, "state directory " + path +
                                      " must be owned by this user and writable by nobody else "
                                      "(chown root; chmod 0700)");
  int fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return make_error(errno, "open state directory " + path);
  StateDir s;
  s.m_path = path;
  s.m_fd.reset(fd);
  return s;
}

Result<TempNames> StateDir::temp_names(Create create) const {
  TempNames::Key key{};
  auto read_key = [&]() -> Result<bool> {
    int fd = ::openat(m_fd.get(), "tempname.key", O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
      if (errno == ENOENT) return false;
      return make_error(errno, m_path + "/tempname.key");
    }
    UniqueFd owned(fd);
    auto st = stat_fd(fd);
    if (!st.ok() || !st->is_regular() || st->size != key.size())
      return described_error(EINVAL, m_path + "/tempname.key is damaged (not " +
                                         std::to_string(key.size()) + " bytes); remove it");
    auto n = read_at(fd, key.data(), key.size(), 0);
    if (!n.ok() || *n != key.size()) return make_error(EIO, m_path + "/tempname.key");
    return true;
  };
  VU_TRY_ASSIGN(have, read_key());
  if (have) return TempNames(key);
  if (create == Create::no) return TempNames();
  // Made once: written to an unnamed file, then linked under its name.
  // Two runs racing here both link; the second finds the first's key.
  if (sodium_init() < 0) return described_error(EIO, "libsodium cannot initialise");
  randombytes_buf(key.data(), key.size());
  int fd = ::openat(m_fd.get(), ".", O_TMPFILE | O_WRONLY | O_CLOEXEC, 0600);
  if (fd < 0) return make_error(errno, "create " + m_path + "/tempname.key");
  UniqueFd owned(fd);
  if (::write(fd, key.data(), key.size()) != static_cast<ssize_t>(key.size()) || ::fsync(fd) != 0)
    return make_error(errno, "write " + m_path + "/tempname.key");
  if (::linkat(fd, "", m_fd.get(), "tempname.key", AT_EMPTY_PATH) != 0 && errno != EEXIST)
    return make_error(errno, "create " + m_path + "/tempname.key");
  VU_TRY_ASSIGN(now, read_key());
  if (!now) return described_error(EIO, m_path + "/tempname.key vanished");
  return TempNames(key);
}

Result<TempNames> load_temp_names(Create create) {
  auto state = StateDir::open(StateDir::default_path(), create);
  if (!state.ok()) {
    if (create == Create::no && state.code() == ENOENT) return TempNames();
    return state.error();
  }
  return state->temp_names(create);
}

PreLinks::PreLinks(const StateDir& state) : m_mutex(std::make_shared<std::mutex>()) {
  if (::mkdirat(state.fd(), "prelinks", 0700) != 0 && errno != EEXIST) return;
  int fd = ::openat(state.fd(), "prelinks", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return;
  m_dirfd = std::make_shared<UniqueFd>(fd);
  m_dir = fd;
}

std::string PreLinks::file_name(std::pair<uint64_t, uint64_t> root_id) const {
  return fmt::format("guest-{:x}-{:x}", root_id.first, root_id.second);
}

void PreLinks::record(std::pair<uint64_t, uint64_t> root_id,
                      const std::vector<std::string>& paths) {
  if (m_dir < 0 || paths.size() < 2) return;
  uint64_t group = random64();
  std::string rec;
  for (const auto& p : paths) {
    uint32_t len = static_cast<uint32_t>(p.size());
    rec.append(reinterpret_cast<const char*>(&len), 4);
    rec += p;
    rec.append(reinterpret_cast<const char*>(&group), 8);
  }
  std::lock_guard lock(*m_mutex);
  int fd = ::openat(m_dir, file_name(root_id).c_str(),
                    O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, 0600);
  if (fd < 0) return;
  UniqueFd out(fd);
  (void)!::write(fd, rec.data(), rec.size());
}

std::map<std::string, uint64_t> PreLinks::load(std::pair<uint64_t, uint64_t> root_id) const {
  std::map<std::string, uint64_t> out;
  if (m_dir < 0) return out;
  std::lock_guard lock(*m_mutex);
  int fd =
      ::openat(m_dir, file_name(root_id).c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return out;
  UniqueFd in(fd);
  auto st = stat_fd(fd);
  if (!st.ok() || !st->is_regular() || st->size > (64ull << 20)) return out;
  std::string data(st->size, '\0');
  auto n = read_at(fd, data.data(), data.size(), 0);
  if (!n.ok()) return out;
  data.resize(*n);
  for (size_t i = 0; i + 4 <= data.size();) {
    uint32_t len = 0;
    std::memcpy(&len, data.data() + i, 4);
    if (len > 4096 || i + 4 + len + 8 > data.size()) break; // a torn last record
    std::string path = data.substr(i + 4, len);
    uint64_t group = 0;
    std::memcpy(&group, data.data() + i + 4 + len, 8);
    out[path] = group;
    i += 4 + len + 8;
  }
  return out;
}

void PreLinks::forget(std::pair<uint64_t, uint64_t> root_id, const std::set<std::string>& paths) {
  if (m_dir < 0 || paths.empty()) return;
  auto all = load(root_id);
  std::string rec;
  for (const auto& [p, group] : all) {
    if (paths.count(p)) continue;
    uint32_t len = static_cast<uint32_t>(p.size());
    rec.append(reinterpret_cast<const char*>(&len), 4);
    rec += p;
    rec.append(reinterpret_cast<const char*>(&group), 8);
  }
  std::lock_guard lock(*m_mutex);
  (void)write_file_atomic_at(m_dir, file_name(root_id), rec, 0600);
}

Result<GuestLocks>
GuestLocks::acquire(const StateDir& state, const std::vector<Guest>& guests,
                    const std::string& holder, bool wait,
                    const std::function<void(const std::string&, const std::string&)>& on_wait) {
  if (::mkdirat(state.fd(), "locks", 0700) != 0 && errno != EEXIST)
    return make_error(errno, "create " + state.path() + "/locks");
  int raw = ::openat(state.fd(), "locks", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (raw < 0) return make_error(errno, "open " + state.path() + "/locks");
  UniqueFd dir(raw);
  struct Want {
    uint64_t dev, ino;
    std::string name;
  };
  std::vector<Want> wants;
  for (const auto& g : guests) {
    struct stat st {};
    if (::stat(g.root.c_str(), &st) != 0) return make_error(errno, "stat " + g.root);
    wants.push_back({static_cast<uint64_t>(st.st_dev), static_cast<uint64_t>(st.st_ino), g.name});
  }
  std::sort(wants.begin(), wants.end(), [](const Want& a, const Want& b) {
    return std::tie(a.dev, a.ino) < std::tie(b.dev, b.ino);
  });
  wants.erase(
      std::unique(wants.begin(), wants.end(),
                  [](const Want& a, const Want& b) { return a.dev == b.dev && a.ino == b.ino; }),
      wants.end());
  GuestLocks locks;
  for (const auto& w : wants) {
    std::string file = fmt::format("guest-{:x}-{:x}.lock", w.dev, w.ino);
    int fd = ::openat(dir.get(), file.c_str(),
                      O_RDWR | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC, 0600);
    if (fd < 0) return make_error(errno, "open lock " + state.path() + "/locks/" + file);
    UniqueFd lock(fd);
    auto st = stat_fd(fd);
    if (!st.ok() || !st->is_regular())
      return described_error(EINVAL,
                             state.path() + "/locks/" + file + " is not a regular file; remove it");
    if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
      if (errno != EWOULDBLOCK) return make_error(errno, "lock " + state.path() + "/locks/" + file);
      char buf[256] = {};
      auto n = read_at(fd, buf, sizeof buf - 1, 0);
      std::string who = n.ok() && *n > 0 ? std::string(buf, *n) : std::string("another run");
      while (!who.empty() && who.back() == '\n') who.pop_back();
      if (!wait)
        return described_error(EWOULDBLOCK, "guest '" + w.name + "' is being changed by " + who +
                                                "; try again when it ends");
      if (on_wait) on_wait(w.name, who);
      while (::flock(fd, LOCK_EX) != 0)
        if (errno != EINTR) return make_error(errno, "lock " + state.path() + "/locks/" + file);
    }
    char since[32] = "?";
    time_t now = ::time(nullptr);
    struct tm tm_now {};
    if (::localtime_r(&now, &tm_now))
      std::strftime(since, sizeof since, "%Y-%m-%d %H:%M:%S", &tm_now);
    std::string me = fmt::format("{} (pid {}, since {})\n", holder, ::getpid(), since);
    if (::ftruncate(fd, 0) == 0) (void)!::pwrite(fd, me.data(), me.size(), 0);
    locks.m_locks.push_back(std::move(lock));
  }
  return locks;
}

} // namespace vu
