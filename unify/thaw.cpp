// Leases, writers and their relocation (see thaw.h).
#include "unify/thaw.h"

#include "kernel/path.h"
#include "kernel/proc.h"
#include "unify/copy.h"
#include "unify/hash.h"
#include "unify/swap.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>

namespace vu {

Result<LeasedInode> LeasedInode::take(int fd) {
  LeasedInode l;
  auto r = take_read_lease(fd);
  if (r.ok()) {
    l.m_fd = fd;
    return l;
  }
  if (r.code() == EINVAL) return l; // no leases here: unguarded
  return r.error();
}

LeasedInode::LeasedInode(LeasedInode&& o) noexcept : m_fd(std::exchange(o.m_fd, -1)) {}

LeasedInode& LeasedInode::operator=(LeasedInode&& o) noexcept {
  if (this != &o) {
    release();
    m_fd = std::exchange(o.m_fd, -1);
  }
  return *this;
}

LeasedInode::~LeasedInode() {
  release();
}

void LeasedInode::release() {
  if (m_fd >= 0) release_lease(m_fd);
  m_fd = -1;
}

bool LeasedInode::writer_seen() const {
  if (m_fd < 0) return false;
  // A writer waiting for the lease shows as "breaking"; one that already
  // holds a writable descriptor (it passed its permission check before the
  // inode was frozen) makes taking the lease again fail.
  return !lease_unbroken(m_fd) || !take_read_lease(m_fd).ok();
}

std::vector<pid_t> LeasedInode::waiting_writers(uint64_t dev, uint64_t ino) const {
  if (m_fd < 0) return {};
  return lease_waiters(::getpid(), dev, ino);
}

std::string metadata_change(int fd, const FileStat& st, const std::string& xattrs) {
  auto now = stat_fd(fd);
  if (!now.ok()) return "metadata (unreadable)";
  if (now->mode != st.mode) return "mode";
  if (now->uid != st.uid || now->gid != st.gid) return "owner";
  if (now->size != st.size || now->mtime_ns != st.mtime_ns) return "size or mtime";
  auto blob = xattr_blob(fd);
  if (!blob.ok() || *blob != xattrs) return "xattrs";
  return {};
}

bool restore_metadata(int fd, const FileStat& st, const std::string& xattrs,
                      const std::function<bool(Protection)>& protect) {
  const struct timespec times[2] = {
      {0, UTIME_OMIT},
      {static_cast<time_t>(st.mtime_ns / 1000000000), static_cast<long>(st.mtime_ns % 1000000000)}};
  for (int attempt = 0; attempt < 3; ++attempt) {
    if (!protect(Protection::off)) return false;
    const bool set = ::fchown(fd, st.uid, st.gid) == 0 && set_xattr_blob(fd, xattrs).ok() &&
                     ::fchmod(fd, st.mode & 07777) == 0 && ::futimens(fd, times) == 0;
    if (!protect(Protection::on)) return false;
    if (set && metadata_change(fd, st, xattrs).empty()) return true;
  }
  return false;
}

void take_back_metadata(RunContext& rc, int fd, const FileStat& st, const std::string& xattrs,
                        const std::string& where, const std::string& subject) {
  auto what = metadata_change(fd, st, xattrs);
  if (what.empty()) return;
  const bool restored =
      restore_metadata(fd, st, xattrs, [&](Protection p) { return rc.protect_fd(fd, p).ok(); });
  rc.log.add(Failure::verify, where,
             "a guest changed the " + what + " of " + subject + "; " +
                 (restored ? "its metadata was restored"
                           : "restoring it failed, so the guests sharing it show the change: "
                             "check them"));
}

NameAt name_at(const RunContext& rc, uint32_t file) {
  const FileRec& f = rc.scan.files[file];
  NameAt n;
  n.root = rc.roots[f.guest()].get();
  n.path = std::string(f.path);
  n.display = rc.display(file);
  auto st = stat_fd(n.root);
  if (st.ok()) n.root_id = {st->dev, st->ino};
  return n;
}

namespace {

// (dev, ino) of every root the run knows: its guests and the other guests.
std::vector<std::pair<uint64_t, uint64_t>> known_roots(const RunContext& rc) {
  std::vector<std::pair<uint64_t, uint64_t>> out;
  for (const auto& r : rc.roots)
    if (auto st = stat_fd(r.get()); st.ok()) out.push_back({st->dev, st->ino});
  for (const auto& g : rc.options.other_guests) {
    struct stat st {};
    if (::stat(g.root.c_str(), &st) == 0)
      out.push_back({static_cast<uint64_t>(st.st_dev), static_cast<uint64_t>(st.st_ino)});
  }
  return out;
}

// The names of inode (dev, ino) in the other guests (not the run's):
// their roots are opened here and kept in `holders` for the NameAts.
std::vector<NameAt> search_other_guests(RunContext& rc, const FileStat& st,
                                        std::vector<UniqueFd>& holders) {
  std::vector<UnifyGuest> others;
  for (const auto& g : rc.options.other_guests) {
    bool in_run = std::any_of(rc.guests.begin(), rc.guests.end(),
                              [&](const UnifyGuest& u) { return u.guest.root == g.root; });
    if (in_run) continue;
    auto fd = open_directory(g.root);
    if (!fd.ok()) continue;
    auto rst = stat_fd(fd->get());
    if (!rst.ok() || rst->dev != st.dev) continue; // no name of it can be there
    UnifyGuest u;
    u.guest = g;
    others.push_back(std::move(u));
    holders.push_back(std::move(*fd));
  }
  std::vector<NameAt> out;
  if (others.empty()) return out;
  ScanOptions o;
  o.min_size = st.size; // the inode's size: a cheap filter, statx is needed anyway
  Report ignored;
  FailureLog log;
  ScanResult found = scan_guests(others, holders, {}, o, ignored, log);
  for (const auto& f : found.files) {
    if (f.st.dev != st.dev || f.st.ino != st.ino) continue;
    NameAt n;
    n.root = holders[f.guest()].get();
    n.path = std::string(f.path);
    n.display = others[f.guest()].guest.name + ":/" + n.path;
    auto rs = stat_fd(n.root);
    if (rs.ok()) n.root_id = {rs->dev, rs->ino};
    out.push_back(std::move(n));
  }
  return out;
}

} // namespace

WriterGuests writer_guests(const RunContext& rc, const LeasedInode& lease, const FileStat& st) {
  WriterGuests w;
  w.pids = lease.waiting_writers(st.dev, st.ino);
  auto roots = known_roots(rc);
  for (pid_t pid : w.pids) {
    auto root = process_root(pid);
    if (!root.ok()) continue; // gone meanwhile: it wrote nothing
    if (std::find(roots.begin(), roots.end(), *root) != roots.end())
      w.roots.insert(*root);
    else
      w.host = true;
  }
  // A writer seen but not listed (it holds the file open already): unknown.
  if (w.pids.empty() && lease.writer_seen()) w.host = true;
  return w;
}

namespace {

// The names of a written inode, by who keeps them: names in the writers'
// guests stay on the inode, every other name moves to a copy.
struct NameSplit {
  std::vector<NameAt> moving;
  std::set<std::pair<uint64_t, uint64_t>> staying_roots;
  std::string written; // a name the writers' guests keep, for the report
};

NameSplit split_by_writers(std::vector<NameAt> names, const WriterGuests& writers) {
  NameSplit split;
  for (auto& n : names) {
    if (writers.roots.count(n.root_id)) {
      split.staying_roots.insert(n.root_id);
      if (split.written.empty()) split.written = n.display;
    } else {
      split.moving.push_back(std::move(n));
    }
  }
  return split;
}

// A verified private copy of `fd`, made beside `beside` (same file
// system), leased: it gets names in guests before it can be frozen
// (mainline refuses to link an immutable inode).
struct LeasedCopy {
  UniqueFd fd;
  LeasedInode lease;
};

Result<LeasedCopy> leased_copy_beside(const NameAt& beside, int fd, uint64_t size) {
  auto dir = open_beneath(beside.root, parent_of(beside.path), O_RDONLY | O_DIRECTORY);
  if (!dir.ok())
    return described_error(dir.code(), "cannot move names away from a written "
                                       "shared inode: " +
                                           dir.error().message());
  uint64_t copied = 0;
  auto copy = make_private_copy(fd, dir->get(), size, copied);
  if (!copy.ok())
    return described_error(copy.code(),
                           "cannot copy a written shared inode: " + copy.error().message());
  auto lease = LeasedInode::take(copy->get());
  if (!lease.ok())
    return described_error(lease.code(), "cannot lease the copy of a written "
                                         "shared inode: " +
                                             lease.error().message());
  return LeasedCopy{std::move(*copy), std::move(*lease)};
}

// Gives each of `moving` the copy in place of the inode `st`; returns how
// many moved. A name that cannot move is logged and left.
uint64_t move_names(RunContext& rc, int copy, const std::vector<NameAt>& moving,
                    const FileStat& st) {
  uint64_t moved = 0;
  for (const auto& n : moving) {
    auto dir = open_beneath(n.root, parent_of(n.path), O_RDONLY | O_DIRECTORY);
    if (!dir.ok()) {
      rc.log.add(Failure::verify, n.display,
                 "left on a written shared inode: " + dir.error().message());
      continue;
    }
    auto s = swap_name(copy, std::move(*dir), name_of(n.path), st.dev, st.ino, rc.temps);
    if (!s.ok()) {
      rc.log.add(Failure::verify, n.display,
                 "left on a written shared inode: " + s.error().message());
      continue;
    }
    auto c = commit_swap(*s);
    if (!c.ok()) rc.log.add(Failure::unlink, n.display, c.error().message());
    if (moved == 0 && rc.options.hooks.in_relocation)
      rc.options.hooks.in_relocation("/proc/self/fd/" + std::to_string(n.root) + "/" + n.path);
    ++moved;
  }
  return moved;
}

std::string pid_list(const std::vector<pid_t>& pids) {
  std::string out;
  for (pid_t p : pids) out += (out.empty() ? "" : ", ") + std::to_string(p);
  return out.empty() ? "?" : out;
}

} // namespace

uint64_t relocate_for_writers(RunContext& rc, int fd, const FileStat& st, std::vector<NameAt> names,
                              const WriterGuests& writers) {
  // Every name of the inode: the ones the run knows, and when that is not
  // all of them, the others' (searched only now: this is rare).
  std::vector<UniqueFd> holders;
  auto now = stat_fd(fd);
  if (now.ok() && now->nlink > names.size()) {
    auto more = search_other_guests(rc, st, holders);
    for (auto& n : more) names.push_back(std::move(n));
  }
  NameSplit split = split_by_writers(std::move(names), writers);
  if (split.moving.empty()) return 0;
  const std::string where = split.moving.front().display;
  // The copy is made from the inode while its writers still wait - so
  // from unchanged bytes.
  auto copy = leased_copy_beside(split.moving.front(), fd, st.size);
  if (!copy.ok()) {
    rc.log.add(Failure::verify, where, copy.error().message());
    return 0;
  }
  // Its metadata while nobody else reaches it: what the moving names must
  // show once it is frozen (a guest's root with a name of it may chmod or
  // setxattr it until then).
  auto copy_st = stat_fd(copy->fd.get());
  auto copy_xattrs = xattr_blob(copy->fd.get());
  if (!copy_st.ok() || !copy_xattrs.ok()) {
    rc.log.add(Failure::verify, where, "the copy's metadata could not be read");
    return 0;
  }
  auto thaw = rc.protect_fd(fd, Protection::off);
  if (!thaw.ok() && rc.options.protect == Protect::immutable) {
    rc.log.add(Failure::attr, where, thaw.error().message());
    return 0;
  }
  uint64_t moved = move_names(rc, copy->fd.get(), split.moving, st);
  // The copy is what the others share now; the inode stays with the
  // writers' guests - theirs alone when one guest keeps it.
  auto cp = rc.protect_fd(copy->fd.get(), Protection::on);
  if (!cp.ok() && rc.options.protect == Protect::immutable)
    rc.log.add(Failure::attr, where, "the copy: " + cp.error().message());
  if (cp.ok())
    take_back_metadata(rc, copy->fd.get(), *copy_st, *copy_xattrs, where,
                       "the copy of a written shared inode while names moved to it");
  if (copy->lease.writer_seen())
    rc.log.add(Failure::verify, where,
               "the copy of a written shared inode was opened for writing too; its sharers may "
               "see those writes");
  if (split.staying_roots.size() > 1 && rc.options.protect == Protect::immutable)
    (void)rc.protect_fd(fd, Protection::on);
  rc.log.skip(Skip::written, split.written.empty() ? where : split.written,
              fmt::format("opened for writing by pid {}; {} names of other guests moved to an "
                          "unchanged copy",
                          pid_list(writers.pids), moved));
  return moved;
}

} // namespace vu
