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

struct Backend {
  const char* file;
  const char* name;
};
// In the order rpm itself prefers them.
constexpr Backend k_backends[] = {
    {"rpmdb.sqlite", "sqlite"}, {"Packages.db", "ndb"}, {"Packages", "bdb_ro"}};

int collect_log(rpmlogRec rec, rpmlogCallbackData data) {
  auto* out = static_cast<std::string*>(data);
  if (rpmlogRecPriority(rec) <= RPMLOG_ERR) {
    std::string m = rpmlogRecMessage(rec);
    while (!m.empty() && m.back() == '\n') m.pop_back();
    if (!out->empty()) *out += "; ";
    *out += m;
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
Status config_files_of(Header h, const std::string& location, const ReadLimits& limits,
                       std::vector<std::string>& found) {
  Status status;
  rpmtd names = rpmtdNew();
  rpmtd flags = rpmtdNew();
  bool have_names = headerGet(h, RPMTAG_FILENAMES, names, HEADERGET_EXT);
  bool have_flags = headerGet(h, RPMTAG_FILEFLAGS, flags, HEADERGET_MINMEM);
  if (have_names != have_flags || (have_names && rpmtdCount(names) != rpmtdCount(flags))) {
    status = described_error(EINVAL, "rpm database " + location +
                                         ": a header's file names and flags disagree");
  } else if (have_names) {
    rpmtdInit(names);
    rpmtdInit(flags);
    while (rpmtdNext(names) >= 0 && rpmtdNext(flags) >= 0) {
      const char* fn = rpmtdGetString(names);
      const uint32_t* f = rpmtdGetUint32(flags);
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
  rpmtdFreeData(names);
  rpmtdFreeData(flags);
  rpmtdFree(names);
  rpmtdFree(flags);
  return status;
}

// Reads every package of the database copy in `dbpath` with librpm.
Status read_packages(const std::string& dbpath, const Backend& backend, const ReadLimits& limits,
                     PackageDbSource& src, std::vector<std::string>& found) {
  std::lock_guard lock(g_rpm_mutex);
  static bool configured = rpmReadConfigFiles(nullptr, nullptr) == 0;
  if (!configured) return described_error(EIO, "librpm: cannot read its configuration");
  std::string log;
  rpmlogSetCallback(collect_log, &log);
  rpmPushMacro(nullptr, "_dbpath", nullptr, dbpath.c_str(), RMIL_CMDLINE);
  rpmPushMacro(nullptr, "_db_backend", nullptr, backend.name, RMIL_CMDLINE);
  rpmts ts = rpmtsCreate();
  rpmtsSetRootDir(ts, "/");
  rpmtsSetVSFlags(ts, RPMVSF_MASK_NODIGESTS | RPMVSF_MASK_NOSIGNATURES);
  Status status;
  if (rpmtsOpenDB(ts, O_RDONLY) != 0) {
    status = described_error(EINVAL, "rpm database " + src.location + " cannot be opened: " + log);
  } else {
    rpmdbMatchIterator mi = rpmtsInitIterator(ts, RPMDBI_PACKAGES, nullptr, 0);
    if (!mi) status = described_error(EINVAL, "rpm database " + src.location + ": " + log);
    Header h = nullptr;
    while (status.ok() && mi && (h = rpmdbNextIterator(mi)) != nullptr) {
      ++src.packages;
      status = config_files_of(h, src.location, limits, found);
    }
    if (mi) rpmdbFreeIterator(mi);
    if (status.ok() && !log.empty())
      status = described_error(EINVAL, "rpm database " + src.location + ": " + log);
  }
  rpmtsCloseDB(ts); // before rpmtsFree, or a failed open's handle leaks
  rpmtsFree(ts);
  rpmPopMacro(nullptr, "_db_backend");
  rpmPopMacro(nullptr, "_dbpath");
  rpmlogSetCallback(nullptr, nullptr);
  return status;
}

} // namespace

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
