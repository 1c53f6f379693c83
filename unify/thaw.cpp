// Leases, writers and their relocation (see thaw.h).
#include "unify/thaw.h"

#include "kernel/path.h"
#include "kernel/proc.h"
#include "unify/copy.h"
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

LeasedInode::~LeasedInode() { release(); }

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

NameAt name_at(const RunContext& rc, uint32_t file) {
  const FileRec& f = rc.scan.files[file];
  NameAt n;
  n.root = rc.roots[f.guest].get();
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
    n.root = holders[f.guest].get();
    n.path = std::string(f.path);
    n.display = others[f.guest].guest.name + ":/" + n.path;
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
    if (std::find(roots.begin(), roots.end(), *root) != roots.end()) w.roots.insert(*root);
    else w.host = true;
  }
  // A writer seen but not listed (it holds the file open already): unknown.
  if (w.pids.empty() && lease.writer_seen()) w.host = true;
  return w;
}

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
  std::vector<NameAt> moving;
  std::set<std::pair<uint64_t, uint64_t>> staying_roots;
  std::string written; // a name the writers' guests keep, for the report
  for (auto& n : names) {
    if (writers.roots.count(n.root_id)) {
      staying_roots.insert(n.root_id);
      if (written.empty()) written = n.display;
    } else {
      moving.push_back(std::move(n));
    }
  }
  const std::string where = moving.empty() ? std::string() : moving.front().display;
  if (moving.empty()) return 0;
  // The copy: made beside the first name that moves (same file system),
  // from the inode while its writers still wait - so from unchanged bytes.
  auto dir0 = open_beneath(moving.front().root, parent_of(moving.front().path), O_RDONLY | O_DIRECTORY);
  if (!dir0.ok()) {
    rc.log.add(Failure::verify, where, "cannot move names away from a written shared inode: " +
                                           dir0.error().message());
    return 0;
  }
  uint64_t copied = 0;
  auto copy = make_private_copy(fd, dir0->get(), st.size, copied);
  if (!copy.ok()) {
    rc.log.add(Failure::verify, where, "cannot copy a written shared inode: " + copy.error().message());
    return 0;
  }
  // The copy gets names in guests before it can be frozen (mainline
  // refuses to link an immutable inode): it is leased meanwhile, too.
  auto copy_lease = LeasedInode::take(copy->get());
  if (!copy_lease.ok()) {
    rc.log.add(Failure::verify, where, "cannot lease the copy of a written shared inode: " +
                                           copy_lease.error().message());
    return 0;
  }
  auto thaw = rc.attrs->protect_needs_path() ? Status(described_error(ENOTSUP, "by descriptor"))
                                             : rc.attrs->protect(fd, -1, "", false);
  if (!thaw.ok() && rc.options.protect == Protect::immutable) {
    rc.log.add(Failure::attr, where, thaw.error().message());
    return 0;
  }
  uint64_t moved = 0;
  for (auto& n : moving) {
    auto dir = open_beneath(n.root, parent_of(n.path), O_RDONLY | O_DIRECTORY);
    if (!dir.ok()) {
      rc.log.add(Failure::verify, n.display, "left on a written shared inode: " + dir.error().message());
      continue;
    }
    auto s = swap_name(copy->get(), std::move(*dir), name_of(n.path), st.dev, st.ino, rc.temps);
    if (!s.ok()) {
      rc.log.add(Failure::verify, n.display, "left on a written shared inode: " + s.error().message());
      continue;
    }
    auto c = commit_swap(*s);
    if (!c.ok()) rc.log.add(Failure::unlink, n.display, c.error().message());
    ++moved;
  }
  // The copy is what the others share now; the inode stays with the
  // writers' guests - theirs alone when one guest keeps it.
  auto cp = rc.attrs->protect_needs_path() ? Status(described_error(ENOTSUP, "by descriptor"))
                                           : rc.attrs->protect(copy->get(), -1, "", true);
  if (!cp.ok() && rc.options.protect == Protect::immutable)
    rc.log.add(Failure::attr, where, "the copy: " + cp.error().message());
  if (copy_lease->writer_seen())
    rc.log.add(Failure::verify, where,
               "the copy of a written shared inode was opened for writing too; its sharers may "
               "see those writes");
  if (staying_roots.size() > 1 && rc.options.protect == Protect::immutable)
    (void)rc.attrs->protect(fd, -1, "", true);
  std::string pids;
  for (pid_t p : writers.pids) pids += (pids.empty() ? "" : ", ") + std::to_string(p);
  rc.log.skip(Skip::written, written.empty() ? where : written,
              fmt::format("opened for writing by pid {}; {} names of other guests moved to an "
                          "unchanged copy",
                          pids.empty() ? "?" : pids, moved));
  return moved;
}

} // namespace vu
