// RPM: every file flagged RPMFILE_CONFIG in RPMTAG_FILEFLAGS, read with
// librpm.
//
// librpm opens databases by path and would follow a guest's symlinks, and
// its database path is resolved inside the root it is given (Debian's
// default is ~/.rpmdb, which is never the guest's). So the guest's database
// directory is copied file by file - each opened beneath it without
// following symlinks, sizes bounded - into a private 0700 directory, and
// librpm is pointed at that copy with an explicit _dbpath and _db_backend
// and root "/". Nothing of the guest is ever created or opened by librpm.
// librpm's macro context is process-global: one reader at a time.
//
// librpm is loaded with dlopen when the first rpm database is read, not
// linked: with what it loads it costs a program 3.4 MB of memory and most
// of a millisecond of start-up, and most hosts have no rpm guest
// (ARCHITECTURE.md, "Package libraries"). The function types come from
// librpm's own headers, so a mismatch fails to compile.
#include "pkgmgmt/config_files.h"

#include "kernel/fs.h"

#include <rpm/header.h>
#include <rpm/rpmdb.h>
#include <rpm/rpmlib.h>
#include <rpm/rpmlog.h>
#include <rpm/rpmmacro.h>
#include <rpm/rpmtd.h>
#include <rpm/rpmts.h>

#include <dirent.h>
#include <dlfcn.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <mutex>

namespace vu {

namespace {

std::mutex g_rpm_mutex;

// Every librpm function this reader calls.
#define VU_LIBRPM_FUNCTIONS(X)                                                                     \
  X(rpmReadConfigFiles)                                                                            \
  X(rpmlogSetCallback)                                                                             \
  X(rpmlogRecPriority)                                                                             \
  X(rpmlogRecMessage)                                                                              \
  X(rpmPushMacro)                                                                                  \
  X(rpmPopMacro)                                                                                   \
  X(rpmtsCreate)                                                                                   \
  X(rpmtsSetRootDir)                                                                               \
  X(rpmtsSetVSFlags)                                                                               \
  X(rpmtsOpenDB)                                                                                   \
  X(rpmtsCloseDB)                                                                                  \
  X(rpmtsFree)                                                                                     \
  X(rpmtsInitIterator)                                                                             \
  X(rpmdbNextIterator)                                                                             \
  X(rpmdbFreeIterator)                                                                             \
  X(headerGet)                                                                                     \
  X(rpmtdNew)                                                                                      \
  X(rpmtdFree)                                                                                     \
  X(rpmtdFreeData)                                                                                 \
  X(rpmtdCount)                                                                                    \
  X(rpmtdInit)                                                                                     \
  X(rpmtdNext)                                                                                     \
  X(rpmtdGetString)                                                                                \
  X(rpmtdGetUint32)

struct Librpm {
#define VU_LIBRPM_MEMBER(f) decltype(&::f) f = nullptr;
  VU_LIBRPM_FUNCTIONS(VU_LIBRPM_MEMBER)
#undef VU_LIBRPM_MEMBER
};

Result<Librpm> load_librpm(const char* soname) {
  const std::string hint = std::string("; install the package that has ") + soname +
                           " (librpm9 on Debian 12) to read rpm databases";
  // Never closed: librpm keeps global state and exit handlers.
  void* handle = ::dlopen(soname, RTLD_NOW | RTLD_LOCAL);
  if (!handle) {
    const char* why = ::dlerror();
    return described_error(ELIBACC, std::string("cannot load ") + soname + ": " +
                                        (why ? why : "unknown error") + hint);
  }
  Librpm lib;
#define VU_LIBRPM_RESOLVE(f)                                                                       \
  lib.f = reinterpret_cast<decltype(&::f)>(::dlsym(handle, #f));                                   \
  if (!lib.f) return described_error(ELIBACC, std::string(soname) + " has no " #f + hint);
  VU_LIBRPM_FUNCTIONS(VU_LIBRPM_RESOLVE)
#undef VU_LIBRPM_RESOLVE
  return lib;
}

// The library, loaded once; g_rpm_mutex held.
Result<const Librpm*> librpm() {
  static Result<Librpm> loaded = load_librpm(VU_LIBRPM_SONAME);
  if (!loaded.ok()) return loaded.error();
  return &loaded.value();
}

struct Backend {
  const char* file;
  const char* name;
};
// In the order rpm itself prefers them.
constexpr Backend k_backends[] = {
    {"rpmdb.sqlite", "sqlite"}, {"Packages.db", "ndb"}, {"Packages", "bdb_ro"}};

struct LogSink {
  const Librpm* rpm;
  std::string text;
};

int collect_log(rpmlogRec rec, rpmlogCallbackData data) {
  auto* sink = static_cast<LogSink*>(data);
  if (sink->rpm->rpmlogRecPriority(rec) <= RPMLOG_ERR) {
    std::string m = sink->rpm->rpmlogRecMessage(rec);
    while (!m.empty() && m.back() == '\n') m.pop_back();
    if (!sink->text.empty()) sink->text += "; ";
    sink->text += m;
  }
  return 0; // handled: do not print
}

class TempDir {
public:
  TempDir() {
    char tmpl[] = "/tmp/vunify-rpmdb.XXXXXX";
    if (::mkdtemp(tmpl)) m_path = tmpl;
  }
  ~TempDir() {
    if (!m_path.empty()) {
      std::error_code ec;
      std::filesystem::remove_all(m_path, ec);
    }
  }
  const std::string& path() const { return m_path; }

private:
  std::string m_path;
};

// Copies the regular files of the database directory (no subdirectories,
// no symlinks) into `to`, at most `budget` bytes in all.
Status copy_db_dir(int db_fd, const std::string& display, const std::string& to, uint64_t budget) {
  VU_TRY_ASSIGN(entries, read_directory(db_fd));
  for (const auto& e : entries) {
    if (e.type != DT_REG && e.type != DT_UNKNOWN) continue;
    if (e.name.rfind("__db.", 0) == 0 || e.name == ".rpm.lock" || e.name == ".dbenv.lock")
      continue; // environment and lock files of a live database
    FileStat st;
    auto data = read_file_beneath(db_fd, e.name, budget, &st);
    if (!data.ok()) {
      if (data.code() == EINVAL) continue; // raced into a non-regular file
      return described_error(data.code(), "rpm database " + display + "/" + e.name + ": " +
                                              data.error().message());
    }
    budget -= data->size();
    std::string dst = to + "/" + e.name;
    int fd = ::open(dst.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) return errno_error("create " + dst);
    UniqueFd out(fd);
    if (::write(fd, data->data(), data->size()) != static_cast<ssize_t>(data->size()))
      return errno_error("write " + dst);
  }
  return {};
}

// Each format's magic number, so that a file that is not a database is
// refused with a clear message before librpm sees it.
bool has_magic(const Backend& b, const unsigned char (&head)[16]) {
  const std::string_view name = b.name;
  if (name == "sqlite") return std::memcmp(head, "SQLite format 3", 16) == 0;
  if (name == "ndb") return std::memcmp(head, "RpmP", 4) == 0;
  // Berkeley DB hash or btree magic at offset 12, either byte order.
  uint32_t m = uint32_t(head[12]) | uint32_t(head[13]) << 8 | uint32_t(head[14]) << 16 |
               uint32_t(head[15]) << 24;
  uint32_t swapped = __builtin_bswap32(m);
  return m == 0x061561 || swapped == 0x061561 || m == 0x053162 || swapped == 0x053162;
}

struct FoundDb {
  const Backend* backend;
  FileStat st;
};

// The first database file present, in rpm's order of preference, checked
// to be a regular file of bounded size with its format's magic.
Result<FoundDb> find_database(int db_fd, const std::string& display, const ReadLimits& limits) {
  for (const auto& b : k_backends) {
    const std::string where = "rpm database " + display + "/" + b.file;
    auto fd = open_file_for_read(db_fd, b.file);
    if (!fd.ok()) {
      if (fd.code() == ENOENT) continue;
      return described_error(fd.code(), where + ": " + fd.error().message());
    }
    auto s = stat_fd(fd->get());
    if (!s.ok() || !s->is_regular())
      return described_error(EINVAL, where + " is not a regular file");
    if (s->size > limits.max_db_bytes) return described_error(EFBIG, where + " is too large");
    unsigned char head[16] = {};
    auto n = read_at(fd->get(), head, sizeof head, 0);
    if (!n.ok() || *n != sizeof head || !has_magic(b, head))
      return described_error(EINVAL, where + " is not a valid " + b.name + " database");
    return FoundDb{&b, *s};
  }
  return described_error(ENOENT, "no rpm database in " + display);
}

// Appends the config files of one package header to `found`.
Status config_files_of(const Librpm& rpm, Header h, const std::string& location,
                       const ReadLimits& limits, std::vector<std::string>& found) {
  Status status;
  rpmtd names = rpm.rpmtdNew();
  rpmtd flags = rpm.rpmtdNew();
  bool have_names = rpm.headerGet(h, RPMTAG_FILENAMES, names, HEADERGET_EXT);
  bool have_flags = rpm.headerGet(h, RPMTAG_FILEFLAGS, flags, HEADERGET_MINMEM);
  if (have_names != have_flags || (have_names && rpm.rpmtdCount(names) != rpm.rpmtdCount(flags))) {
    status = described_error(EINVAL, "rpm database " + location +
                                         ": a header's file names and flags disagree");
  } else if (have_names) {
    rpm.rpmtdInit(names);
    rpm.rpmtdInit(flags);
    while (rpm.rpmtdNext(names) >= 0 && rpm.rpmtdNext(flags) >= 0) {
      const char* fn = rpm.rpmtdGetString(names);
      const uint32_t* f = rpm.rpmtdGetUint32(flags);
      if (!fn || !f || !(*f & RPMFILE_CONFIG)) continue;
      std::string p = fn;
      if (p.empty() || p[0] != '/' || p.size() > 4096) {
        status = described_error(EINVAL, "rpm database " + location + ": bad file name");
        break;
      }
      found.push_back(std::move(p));
      if (found.size() > limits.max_entries) {
        status = described_error(E2BIG, "rpm database " + location + ": too many config files");
        break;
      }
    }
  }
  rpm.rpmtdFreeData(names);
  rpm.rpmtdFreeData(flags);
  rpm.rpmtdFree(names);
  rpm.rpmtdFree(flags);
  return status;
}

// Reads every package of the database copy in `dbpath` with librpm.
Status read_packages(const std::string& dbpath, const Backend& backend, const ReadLimits& limits,
                     PackageDbSource& src, std::vector<std::string>& found) {
  std::lock_guard lock(g_rpm_mutex);
  VU_TRY_ASSIGN(lib, librpm());
  const Librpm& rpm = *lib;
  static bool configured = rpm.rpmReadConfigFiles(nullptr, nullptr) == 0;
  if (!configured) return described_error(EIO, "librpm: cannot read its configuration");
  LogSink log{&rpm, {}};
  rpm.rpmlogSetCallback(collect_log, &log);
  rpm.rpmPushMacro(nullptr, "_dbpath", nullptr, dbpath.c_str(), RMIL_CMDLINE);
  rpm.rpmPushMacro(nullptr, "_db_backend", nullptr, backend.name, RMIL_CMDLINE);
  rpmts ts = rpm.rpmtsCreate();
  rpm.rpmtsSetRootDir(ts, "/");
  rpm.rpmtsSetVSFlags(ts, RPMVSF_MASK_NODIGESTS | RPMVSF_MASK_NOSIGNATURES);
  Status status;
  if (rpm.rpmtsOpenDB(ts, O_RDONLY) != 0) {
    status =
        described_error(EINVAL, "rpm database " + src.location + " cannot be opened: " + log.text);
  } else {
    rpmdbMatchIterator mi = rpm.rpmtsInitIterator(ts, RPMDBI_PACKAGES, nullptr, 0);
    if (!mi) status = described_error(EINVAL, "rpm database " + src.location + ": " + log.text);
    Header h = nullptr;
    while (status.ok() && mi && (h = rpm.rpmdbNextIterator(mi)) != nullptr) {
      ++src.packages;
      status = config_files_of(rpm, h, src.location, limits, found);
    }
    if (mi) rpm.rpmdbFreeIterator(mi);
    if (status.ok() && !log.text.empty())
      status = described_error(EINVAL, "rpm database " + src.location + ": " + log.text);
  }
  rpm.rpmtsCloseDB(ts); // before rpmtsFree, or a failed open's handle leaks
  rpm.rpmtsFree(ts);
  rpm.rpmPopMacro(nullptr, "_db_backend");
  rpm.rpmPopMacro(nullptr, "_dbpath");
  rpm.rpmlogSetCallback(nullptr, nullptr);
  return status;
}

} // namespace

Status check_librpm_loads(const char* soname) {
  std::lock_guard lock(g_rpm_mutex);
  VU_TRY(load_librpm(soname ? soname : VU_LIBRPM_SONAME));
  return {};
}

Result<PackageDbSource> read_rpm_config_files(int db_fd, const std::string& display,
                                              const ReadLimits& limits,
                                              std::vector<std::string>& paths) {
  VU_TRY_ASSIGN(db, find_database(db_fd, display, limits));
  TempDir tmp;
  if (tmp.path().empty()) return errno_error("mkdtemp for the rpm database copy");
  VU_TRY(copy_db_dir(db_fd, display, tmp.path(), limits.max_db_bytes));

  PackageDbSource src;
  src.kind = "rpm";
  src.location = display + "/" + db.backend->file;
  src.dev = db.st.dev;
  src.ino = db.st.ino;
  src.size = db.st.size;
  src.mtime_ns = db.st.mtime_ns;
  std::vector<std::string> found;
  VU_TRY(read_packages(tmp.path(), *db.backend, limits, src, found));

  std::sort(found.begin(), found.end());
  found.erase(std::unique(found.begin(), found.end()), found.end());
  src.config_files = found.size();
  paths.insert(paths.end(), found.begin(), found.end());
  return src;
}

} // namespace vu
