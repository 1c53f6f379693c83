// Attribute back ends (see attr.h).
#include "kernel/attr.h"

#include <fcntl.h>
#include <linux/fs.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstddef>
#include <cstdlib>
#include <mutex>

namespace vu {

static_assert(offsetof(vserver_abi::IattrV1, name) == 0);
static_assert(offsetof(vserver_abi::IattrV1, tag) == sizeof(void*));
static_assert(offsetof(vserver_abi::IattrV1, flags) == sizeof(void*) + 4);
static_assert(offsetof(vserver_abi::IattrV1, mask) == sizeof(void*) + 8);

std::string render_attrs(const AttrState& s) {
  std::string out;
  for (const auto& c : k_attr_columns) {
    if (!(s.supported & c.bit))
      out += '-';
    else if (s.flags & c.bit)
      out += static_cast<char>(c.letter - 'a' + 'A');
    else
      out += c.letter;
  }
  return out;
}

namespace {

std::string unsupported_names(uint32_t bits) {
  std::string out;
  for (const auto& c : k_attr_columns)
    if (bits & c.bit) out += std::string(out.empty() ? "" : ", ") + c.name;
  return out;
}

class MainlineBackend : public AttrBackend {
public:
  const char* name() const override { return "mainline"; }

  Result<AttrState> get(int dirfd, const std::string& name, const FileStat& st) override {
    AttrState s;
    if (!st.is_regular() && !st.is_directory()) return s;
    if (st.is_directory()) {
      s.supported |= k_attr_barrier;
      if ((st.mode & 07777) == 0) s.flags |= k_attr_barrier;
    }
    VU_TRY_ASSIGN(fd, open_entry(dirfd, name, st));
    auto flags = get_inode_flags(fd.get());
    if (flags.ok()) {
      s.supported |= k_attr_immutable;
      if (*flags & FS_IMMUTABLE_FL) s.flags |= k_attr_immutable;
    } else if (flags.code() != ENOTTY && flags.code() != EOPNOTSUPP && flags.code() != EINVAL) {
      return flags.error();
    }
    return s;
  }

  Status set(int dirfd, const std::string& name, const FileStat& st, uint32_t set,
             uint32_t clear) override {
    VU_TRY_ASSIGN(cur, get(dirfd, name, st));
    uint32_t unsupported = (set | clear) & ~cur.supported;
    if (unsupported)
      return described_error(EOPNOTSUPP, unsupported_names(unsupported) +
                                             " not supported here (mainline back end)");
    if ((set | clear) & k_attr_immutable) {
      VU_TRY_ASSIGN(fd, open_entry(dirfd, name, st));
      VU_TRY(set_immutable(fd.get(),
                           (set & k_attr_immutable) != 0 ? Protection::on : Protection::off));
    }
    if ((set | clear) & k_attr_barrier) {
      mode_t mode = (set & k_attr_barrier) ? 0 : 0755;
      if (::fchmodat(dirfd, name.c_str(), mode, 0) != 0) return errno_error("chmod " + name);
    }
    return {};
  }

  Status protect(int fd, int, const std::string&, Protection p) override {
    return set_immutable(fd, p);
  }

private:
  static Result<UniqueFd> open_entry(int dirfd, const std::string& name, const FileStat& st) {
    int flags = O_RDONLY | O_NONBLOCK | O_NOCTTY | (st.is_directory() ? O_DIRECTORY : 0);
    VU_TRY_ASSIGN(fd, open_beneath(dirfd, name.empty() ? "." : name, flags));
    VU_TRY_ASSIGN(now, stat_fd(fd.get()));
    if (now.dev != st.dev || now.ino != st.ino)
      return described_error(ESTALE, name + " changed while being opened");
    return fd;
  }
};

// The VServer calls name files by path. The path given is relative to the
// working directory, so the directory descriptor becomes the working
// directory for the duration of the call; a process-wide lock keeps other
// threads of this back end from racing on it.
class VServerBackend : public AttrBackend {
public:
  explicit VServerBackend(long nr) : m_nr(nr) {}
  const char* name() const override { return "linux-vserver"; }

  Result<AttrState> get(int dirfd, const std::string& name, const FileStat&) override {
    vserver_abi::IattrV1 attr{};
    attr.name = name.empty() ? "." : name.c_str();
    attr.mask = ~0u;
    VU_TRY(call(dirfd, vserver_abi::k_get_iattr, &attr));
    return AttrState{attr.flags & attr.mask, attr.mask};
  }

  Status set(int dirfd, const std::string& name, const FileStat&, uint32_t set,
             uint32_t clear) override {
    vserver_abi::IattrV1 attr{};
    attr.name = name.empty() ? "." : name.c_str();
    attr.flags = set & ~clear;
    attr.mask = set | clear;
    return call(dirfd, vserver_abi::k_set_iattr, &attr);
  }

  Status protect(int, int dirfd, const std::string& name, Protection p) override {
    if (dirfd < 0)
      return described_error(EINVAL, "linux-vserver protection needs the file's directory");
    constexpr uint32_t bits = k_attr_immutable | k_attr_iunlink;
    const bool on = p == Protection::on;
    return set(dirfd, name, FileStat{}, on ? bits : 0, on ? 0 : bits);
  }
  bool protect_needs_path() const override { return true; }

private:
  Status call(int dirfd, uint32_t cmd, vserver_abi::IattrV1* attr) {
    std::lock_guard lock(g_cwd_mutex);
    int saved = ::open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (saved < 0) return errno_error("open .");
    UniqueFd restore(saved);
    if (::fchdir(dirfd) != 0) return errno_error("fchdir");
    long rc = ::syscall(m_nr, cmd, 0, attr);
    int err = errno;
    (void)!::fchdir(saved);
    if (rc < 0) return make_error(err, std::string("vserver iattr ") + attr->name);
    return {};
  }
  static inline std::mutex g_cwd_mutex;
  long m_nr;
};

} // namespace

std::unique_ptr<AttrBackend> make_mainline_attr_backend() {
  return std::make_unique<MainlineBackend>();
}

std::unique_ptr<AttrBackend> make_vserver_attr_backend(long nr) {
  return std::make_unique<VServerBackend>(nr);
}

std::unique_ptr<AttrBackend> detect_attr_backend() {
  const char* force = std::getenv("VU_ATTR_BACKEND");
  long nr = vserver_abi::syscall_number();
  // Probe only where the number is known to be unassigned on mainline
  // (x86_64: 236 answers ENOSYS); elsewhere it may be another system call.
  if ((!force || std::string(force) != "mainline") && nr == 236) {
    long version = ::syscall(nr, vserver_abi::k_get_version, 0, nullptr);
    if (version > 0) return make_vserver_attr_backend(nr);
  }
  return make_mainline_attr_backend();
}

long vserver_abi::syscall_number() {
#if defined(__x86_64__)
  return 236;
#elif defined(__i386__)
  return 273;
#elif defined(__arm__)
  return 313;
#elif defined(__powerpc__)
  return 257;
#elif defined(__s390__)
  return 263;
#elif defined(__sparc__)
  return 267;
#elif defined(__alpha__)
  return 428;
#elif defined(__ia64__)
  return 1269;
#else
  return -1;
#endif
}

} // namespace vu
