// Attribute back ends (see attr.h).
#include "kernel/attr.h"

#include "kernel/bpf_lsm.h"

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

// EOPNOTSUPP naming every bit of `wanted` that `cur` does not support.
Status check_supported(const AttrState& cur, uint32_t wanted, const char* backend) {
  uint32_t unsupported = wanted & ~cur.supported;
  if (!unsupported) return {};
  return described_error(EOPNOTSUPP, unsupported_names(unsupported) + " not supported here (" +
                                         backend + " back end)");
}

Result<UniqueFd> open_entry(int dirfd, const std::string& name, const FileStat& st);

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
    VU_TRY(check_supported(cur, set | clear, "mainline"));
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
  Result<bool> is_protected(int fd) override { return is_immutable(fd); }
};

// The entry (dirfd, name) as it was stat'ed: a regular file or directory,
// opened without following anything, the same inode as `st`.
Result<UniqueFd> open_entry(int dirfd, const std::string& name, const FileStat& st) {
  int flags = O_RDONLY | O_NONBLOCK | O_NOCTTY | (st.is_directory() ? O_DIRECTORY : 0);
  VU_TRY_ASSIGN(fd, open_beneath(dirfd, name.empty() ? "." : name, flags));
  VU_TRY_ASSIGN(now, stat_fd(fd.get()));
  if (now.dev != st.dev || now.ino != st.ino)
    return described_error(ESTALE, name + " changed while being opened");
  return fd;
}

// Sets `on` and clears `off` among an open inode's flags, in one call.
Status change_inode_flags(int fd, uint32_t on, uint32_t off) {
  VU_TRY_ASSIGN(flags, get_inode_flags(fd));
  uint32_t wanted = (flags | on) & ~off;
  if (wanted == flags) return {};
  return set_inode_flags(fd, wanted);
}

// On a file the mark is util-vserver's IMMUTABLE|IUNLINK (read-only
// content, names free), shown as both bits; FS_IMMUTABLE_FL alone is
// IMMUTABLE. On a directory the mark is the barrier.
class BpfBackend : public AttrBackend {
public:
  const char* name() const override { return "bpf"; }

  Result<AttrState> get(int dirfd, const std::string& name, const FileStat& st) override {
    AttrState s;
    if (!st.is_regular() && !st.is_directory()) return s;
    VU_TRY_ASSIGN(fd, open_entry(dirfd, name, st));
    VU_TRY_ASSIGN(flags, get_inode_flags(fd.get()));
    const bool marked = (flags & k_bpf_mark) == k_bpf_mark;
    s.supported = k_attr_immutable | (st.is_directory() ? k_attr_barrier : k_attr_iunlink);
    if (flags & FS_IMMUTABLE_FL) s.flags |= k_attr_immutable;
    if (marked) s.flags |= st.is_directory() ? k_attr_barrier : k_attr_immutable | k_attr_iunlink;
    return s;
  }

  // iunlink (with or without immutable) sets the mark; immutable alone
  // sets FS_IMMUTABLE_FL; clearing either clears the mark.
  Status set(int dirfd, const std::string& name, const FileStat& st, uint32_t set,
             uint32_t clear) override {
    VU_TRY_ASSIGN(cur, get(dirfd, name, st));
    VU_TRY(check_supported(cur, set | clear, "bpf"));
    const uint32_t mark_bits = k_attr_iunlink | k_attr_barrier;
    uint32_t on = 0, off = 0;
    if (set & mark_bits)
      on |= k_bpf_mark;
    else if (set & k_attr_immutable)
      on |= FS_IMMUTABLE_FL;
    if (clear & (mark_bits | k_attr_immutable)) off |= k_bpf_mark;
    if (clear & k_attr_immutable) off |= FS_IMMUTABLE_FL;
    VU_TRY_ASSIGN(fd, open_entry(dirfd, name, st));
    VU_TRY(change_inode_flags(fd.get(), on, off & ~on));
    // A barrier keeps mode 000 too: it holds (for processes without
    // CAP_DAC_OVERRIDE) while the program is not loaded.
    if ((set | clear) & k_attr_barrier)
      if (::fchmod(fd.get(), (set & k_attr_barrier) ? 0 : 0755) != 0)
        return errno_error("chmod " + name);
    return {};
  }

  // A shared inode gets the iunlink mark and loses FS_IMMUTABLE_FL (which
  // a mainline run gave it, and which would refuse link and rename).
  Status protect(int fd, int, const std::string&, Protection p) override {
    if (p == Protection::on) return change_inode_flags(fd, k_bpf_mark, FS_IMMUTABLE_FL);
    return change_inode_flags(fd, 0, k_bpf_mark | FS_IMMUTABLE_FL);
  }
  Result<bool> is_protected(int fd) override {
    VU_TRY_ASSIGN(flags, get_inode_flags(fd));
    return (flags & k_bpf_mark) == k_bpf_mark;
  }
  bool looks_protected(const FileStat& st) const override { return st.nodump || st.immutable; }
  bool names_while_protected() const override { return true; }
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
  Result<bool> is_protected(int fd) override { return is_immutable(fd); }

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

std::unique_ptr<AttrBackend> make_bpf_attr_backend() {
  return std::make_unique<BpfBackend>();
}

namespace {

// Whether the kernel is Linux-VServer's: probed only where the number is
// known to be unassigned on mainline (x86_64: 236 answers ENOSYS);
// elsewhere it may be another system call.
bool vserver_kernel() {
  long nr = vserver_abi::syscall_number();
  return nr == 236 && ::syscall(nr, vserver_abi::k_get_version, 0, nullptr) > 0;
}

} // namespace

std::unique_ptr<AttrBackend> select_attr_backend(const std::string& wanted, std::string* notice) {
  std::string choice = wanted;
  if (choice.empty() || choice == "auto") {
    const char* env = std::getenv("VU_ATTR_BACKEND");
    choice = env && *env ? env : "auto";
  }
  if (choice == "mainline") return make_mainline_attr_backend();
  if (choice == "bpf") {
    auto state = bpf_lsm_state();
    if (!state.loaded && notice)
      *notice = "bpf back end: marks are set but not enforced until the program is loaded: " +
                state.why_not;
    return make_bpf_attr_backend();
  }
  if (choice == "linux-vserver") {
    if (vserver_kernel()) return make_vserver_attr_backend(vserver_abi::syscall_number());
    if (notice) *notice = "this kernel is not Linux-VServer's; shared files are made immutable";
    return make_mainline_attr_backend();
  }
  if (vserver_kernel()) return make_vserver_attr_backend(vserver_abi::syscall_number());
  if (bpf_lsm_loaded()) return make_bpf_attr_backend();
  return make_mainline_attr_backend();
}

std::unique_ptr<AttrBackend> detect_attr_backend() {
  return select_attr_backend("auto", nullptr);
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
