// Verify and link: the only pass that changes guests.
//
// For one group (canonical inode C, targets T1..Tn of equal hash):
//
//  1. Freeze C (FS_IMMUTABLE_FL) so it cannot change while it is compared.
//  2. Compare C with every Ti byte for byte from open descriptors, and
//     re-stat Ti afterwards (dev, ino, size, mtime, ctime unchanged).
//  3. Thaw C: on mainline Linux, link(2) and rename(2) refuse immutable
//     inodes, for root too. For every name of every Ti: link C to a random
//     temporary name in the same directory, then renameat2(RENAME_EXCHANGE)
//     the temporary with the name. The name always exists (old inode, then
//     C); the temporary now holds the old inode, which is checked to be Ti.
//  4. Freeze C again and prove it did not change while it was thawed: size
//     and mtime as before, no descriptor open for writing (a read lease can
//     be taken), and its content hashes to the group's seeded hash. If any
//     check fails every exchange of this round is undone.
//  5. Unlink the temporaries (the old inodes).
//
// A kill -9 at any instant leaves every name in place with its content;
// leftover temporaries (links to C, or old inodes) are removed by the next
// run (remove_temporaries). If the link count of C runs out (EMLINK), the
// round is finished and the next target becomes the canonical of the rest.
#include "unify/plan.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <random>

#include <deque>
#include <map>
#include <optional>

namespace vu {

std::string temp_name() {
  thread_local std::mt19937_64 rng([] {
    std::random_device rd;
    return (static_cast<uint64_t>(rd()) << 32) ^ rd();
  }());
  return fmt::format("{}{:016x}", k_temp_prefix, rng());
}

Status protect_inode(RunState& rs, int fd, uint32_t guest, const std::string& path, bool on) {
  if (!rs.attrs.protect_needs_path()) return rs.attrs.protect(fd, -1, path, on);
  VU_TRY_ASSIGN(dir, open_beneath(rs.roots[guest].get(), parent_of(path), O_RDONLY | O_DIRECTORY));
  return rs.attrs.protect(fd, dir.get(), name_of(path), on);
}

Result<std::string> link_to_temp(int fd, int dirfd) {
  for (int attempt = 0;; ++attempt) {
    std::string tmp = temp_name();
    auto linked = link_fd(fd, dirfd, tmp);
    if (linked.ok()) return tmp;
    if (linked.code() != EEXIST || attempt == 7) return linked.error();
  }
}

bool no_writers(int fd) {
  if (::fcntl(fd, F_SETLEASE, F_RDLCK) == 0) {
    ::fcntl(fd, F_SETLEASE, F_UNLCK);
    return true;
  }
  return errno != EAGAIN && errno != EBUSY;
}

namespace {

// Same inode, same content version; ctime is not compared because our own
// rename changes it.
bool same_identity(const FileStat& a, const FileStat& b) {
  return a.dev == b.dev && a.ino == b.ino && a.size == b.size && a.mtime_ns == b.mtime_ns;
}

bool is_race(int code) {
  return code == ENOENT || code == ELOOP || code == ENOTDIR || code == EXDEV || code == ESTALE;
}

struct Swapped {
  UniqueFd dir;
  std::string tmp;  // after the exchange: the old inode
  std::string name; // after the exchange: C
  uint32_t file;
};

struct Verified {
  uint32_t inode;
  UniqueFd fd;
  std::vector<Swapped> swapped;
};

// Undo one exchange: the name gets its old inode back, the C link goes.
void undo_swap(RunState& rs, Swapped& s) {
  auto r = rename_at(s.dir.get(), s.tmp, s.dir.get(), s.name, RENAME_EXCHANGE);
  if (!r.ok()) {
    rs.log.add(Failure::rename, rs.display(s.file), "undo: " + r.error().message());
    return;
  }
  auto u = unlink_at(s.dir.get(), s.tmp);
  if (!u.ok()) rs.log.add(Failure::unlink, rs.display(s.file), u.error().message());
}

// Swaps every name of target `v` to C. Returns false (with nothing of v
// left swapped) on a race or failure; sets `emlink` when C is full.
bool swap_target(RunState& rs, int fd_c, Verified& v, bool& emlink) {
  const InodeRec& t = rs.inodes[v.inode];
  for (uint32_t n : t.names) {
    const FileRec& f = rs.scan.files[n];
    bool ok = false;
    do {
      auto dir = open_beneath(rs.roots[f.guest].get(), parent_of(f.path), O_RDONLY | O_DIRECTORY);
      if (!dir.ok()) {
        if (is_race(dir.code())) rs.log.skip(Skip::changed);
        else rs.log.add(Failure::open, rs.display(n), dir.error().message());
        break;
      }
      std::string name = name_of(f.path);
      // No stat of the name first: the exchange below is checked (and
      // undone) anyway, and a stat per name is measurable.
      if (rs.options.max_links) {
        auto cs = stat_fd(fd_c);
        if (cs.ok() && cs->nlink >= rs.options.max_links) {
          emlink = true;
          break;
        }
      }
      auto linked = link_to_temp(fd_c, dir->get());
      if (!linked.ok()) {
        if (linked.code() == EMLINK) emlink = true;
        else rs.log.add(Failure::link, rs.display(n), linked.error().message());
        break;
      }
      const std::string tmp = *linked;
      auto ex = rename_at(dir->get(), tmp, dir->get(), name, RENAME_EXCHANGE);
      if (!ex.ok()) {
        if (ex.code() == ENOENT) rs.log.skip(Skip::changed); // the name went away
        else rs.log.add(Failure::rename, rs.display(n), ex.error().message());
        (void)unlink_at(dir->get(), tmp);
        break;
      }
      Swapped s{std::move(*dir), tmp, name, n};
      // The name might have been replaced between the stat and the exchange.
      auto old = stat_at(s.dir.get(), tmp);
      if (!old.ok() || !same_identity(*old, t.st)) {
        rs.log.skip(Skip::changed);
        undo_swap(rs, s);
        break;
      }
      v.swapped.push_back(std::move(s));
      ok = true;
    } while (false);
    if (!ok) {
      for (auto& s : v.swapped) undo_swap(rs, s);
      v.swapped.clear();
      return false;
    }
  }
  return true;
}

// One round with canonical `canon`; returns the next canonical when C ran
// out of links, with `pending` holding the targets left for it.
std::optional<uint32_t> link_round(RunState& rs, uint32_t canon, std::deque<uint32_t>& pending) {
  InodeRec& c = rs.inodes[canon];
  const std::string c_name = rs.display(c.names.front());
  auto fd_c = open_inode(rs, c);
  if (!fd_c.ok()) {
    pending.clear();
    return std::nullopt;
  }
  bool protect = rs.options.protect == Protect::immutable;
  auto imm = is_immutable(fd_c->get());
  bool was_immutable = imm.ok() && *imm;
  if (!imm.ok()) {
    // No inode flags on this file system (e.g. some FUSE or NFS mounts).
    if (protect) rs.log.add(Failure::attr, c_name, imm.error().message());
    protect = false;
  }
  const FileRec& c_file = rs.scan.files[c.names.front()];
  auto set_c = [&](bool on) {
    auto s = protect_inode(rs, fd_c->get(), c_file.guest, c_file.path, on);
    if (!s.ok()) rs.log.add(Failure::attr, c_name, s.error().message());
    return s.ok();
  };
  bool frozen = was_immutable;
  if (protect && !frozen) {
    if (!set_c(true)) {
      pending.clear();
      return std::nullopt;
    }
    frozen = true;
  }
  auto c_before = stat_fd(fd_c->get());
  if (!c_before.ok()) {
    rs.log.add(Failure::stat, c_name, c_before.error().message());
    pending.clear();
    return std::nullopt;
  }

  // 2. compare. A small C is read once (it is frozen) and every target is
  // compared with those bytes; a large one is read along with each target.
  std::vector<char> c_bytes;
  if (c.st.size <= k_small_file) {
    c_bytes.resize(c.st.size);
    auto n = read_at(fd_c->get(), c_bytes.data(), c_bytes.size(), 0);
    if (!n.ok() || *n != c.st.size) {
      if (!n.ok()) rs.log.add(Failure::read, c_name, n.error().message());
      else rs.log.skip(Skip::changed);
      if (frozen && !was_immutable) set_c(false);
      pending.clear();
      return std::nullopt;
    }
  }
  std::vector<Verified> verified;
  while (!pending.empty()) {
    uint32_t idx = pending.front();
    pending.pop_front();
    InodeRec& t = rs.inodes[idx];
    auto fd_t = open_inode(rs, t);
    if (!fd_t.ok()) continue;
    rs.files_compared.fetch_add(1, std::memory_order_relaxed);
    auto eq = c.st.size <= k_small_file
                  ? same_as_bytes(fd_t->get(), c_bytes.data(), c_bytes.size())
                  : same_content(fd_c->get(), fd_t->get(), c.st.size);
    if (!eq.ok()) {
      rs.log.add(Failure::read, rs.display(t.names.front()), eq.error().message());
      continue;
    }
    auto again = stat_fd(fd_t->get());
    if (!*eq || !again.ok() || !again->same_version(t.st)) {
      rs.log.skip(Skip::changed);
      continue;
    }
    verified.push_back(Verified{idx, std::move(*fd_t), {}});
  }
  if (verified.empty()) {
    if (frozen && !was_immutable) set_c(false); // nothing shared: leave C as it was
    return std::nullopt;
  }

  // 3. thaw, swap names
  if (frozen && !set_c(false)) return std::nullopt;
  if (rs.options.in_link_window) {
    const FileRec& f = rs.scan.files[c.names.front()];
    rs.options.in_link_window(rs.guests[f.guest].guest.root + "/" + f.path);
  }
  std::optional<uint32_t> overflow;
  size_t done_count = 0;
  for (size_t k = 0; k < verified.size(); ++k) {
    Verified& v = verified[k];
    InodeRec& t = rs.inodes[v.inode];
    const FileRec& t_file = rs.scan.files[t.names.front()];
    if (t.immutable) {
      auto s = protect_inode(rs, v.fd.get(), t_file.guest, t_file.path, false);
      if (!s.ok()) {
        rs.log.add(Failure::attr, rs.display(t.names.front()), s.error().message());
        continue;
      }
    }
    bool emlink = false;
    bool ok = swap_target(rs, fd_c->get(), v, emlink);
    if (!ok && t.immutable) (void)protect_inode(rs, v.fd.get(), t_file.guest, t_file.path, true);
    if (emlink) {
      overflow = v.inode;
      for (size_t r = k + 1; r < verified.size(); ++r) pending.push_back(verified[r].inode);
      verified.resize(k);
      break;
    }
    if (ok) ++done_count;
  }

  // 4. freeze again and prove C did not change while thawed
  bool c_ok = true;
  std::string why;
  if (frozen && !set_c(true)) c_ok = false, why = "cannot set the immutable flag again";
  if (c_ok) {
    auto now = stat_fd(fd_c->get());
    if (!now.ok() || now->size != c_before->size || now->mtime_ns != c_before->mtime_ns)
      c_ok = false, why = "size or mtime changed";
  }
  if (c_ok && frozen && !no_writers(fd_c->get()))
    c_ok = false, why = "opened for writing while links were added";
  if (c_ok && frozen) {
    auto h = content_hash(fd_c->get(), c.st.size, rs.seed);
    if (!h.ok() || *h != c.hash) c_ok = false, why = "content changed while links were added";
  }
  if (!c_ok) {
    rs.log.add(Failure::verify, c_name, "shared inode " + why + "; links undone");
    if (frozen) (void)protect_inode(rs, fd_c->get(), c_file.guest, c_file.path, false);
    for (auto& v : verified)
      for (auto& s : v.swapped) undo_swap(rs, s);
    if (was_immutable) (void)protect_inode(rs, fd_c->get(), c_file.guest, c_file.path, true);
    pending.clear();
    return std::nullopt;
  }

  // 5. drop the old inodes
  for (auto& v : verified) {
    if (v.swapped.empty()) continue;
    const InodeRec& t = rs.inodes[v.inode];
    for (auto& s : v.swapped) {
      auto u = unlink_at(s.dir.get(), s.tmp);
      if (!u.ok()) rs.log.add(Failure::unlink, rs.display(s.file), u.error().message());
      rs.files_linked.fetch_add(1, std::memory_order_relaxed);
      if (rs.options.progress)
        rs.options.progress->files_linked.fetch_add(1, std::memory_order_relaxed);
      if (rs.options.log_actions)
        rs.log.action(fmt::format("linked {} -> {}", printable_path(rs.display(s.file)),
                                  printable_path(c_name)));
    }
    auto st = stat_fd(v.fd.get());
    if (st.ok() && st->nlink == 0) {
      rs.bytes_saved.fetch_add(t.st.size, std::memory_order_relaxed);
      rs.reaper.give(std::move(v.fd)); // the last reference: closing it frees the inode
    }
  }
  if (frozen && !was_immutable && done_count > 0)
    rs.inodes_protected.fetch_add(1, std::memory_order_relaxed);
  if (done_count == 0 && frozen && !was_immutable) set_c(false);
  if (overflow) {
    c.immutable = true;
    rs.inodes[*overflow].immutable = false;
  }
  return overflow;
}

} // namespace

void link_group(RunState& rs, const Group& group) {
  std::deque<uint32_t> pending(group.inodes.begin() + 1, group.inodes.end());
  std::optional<uint32_t> canon = group.inodes.front();
  while (canon && !pending.empty()) canon = link_round(rs, *canon, pending);
}

uint64_t remove_temporaries(RunState& rs) {
  uint64_t removed = 0;
  if (rs.scan.temporaries.empty()) return 0; // the usual case: no maps over every inode
  // Removing a name changes the inode's ctime and link count; inodes the
  // plan still uses get their recorded version refreshed, but only when
  // it was unchanged since the scan up to the unlink.
  std::map<std::pair<uint64_t, uint64_t>, uint32_t> by_inode;
  for (uint32_t i = 0; i < rs.inodes.size(); ++i)
    by_inode[{rs.inodes[i].st.dev, rs.inodes[i].st.ino}] = i;
  for (const TempRec& t : rs.scan.temporaries) {
    std::string where = rs.guests[t.guest].guest.name + ":/" + t.path;
    auto dir = open_beneath(rs.roots[t.guest].get(), parent_of(t.path), O_RDONLY | O_DIRECTORY);
    if (!dir.ok()) continue;
    std::string name = name_of(t.path);
    auto fd = open_beneath(dir->get(), name, O_RDONLY | O_NONBLOCK | O_NOCTTY);
    if (!fd.ok()) continue; // a symlink or gone: not ours
    auto st = stat_fd(fd->get());
    if (!st.ok() || !st->is_regular()) continue;
    // A leftover link to a shared inode: thaw it for the unlink, and prove
    // afterwards that nothing wrote to it meanwhile.
    std::optional<Hash128> before;
    if (st->immutable) {
      auto h = hash_fd(fd->get(), st->size, rs.seed, nullptr);
      if (!h.ok()) {
        rs.log.add(Failure::read, where, h.error().message());
        continue;
      }
      before = *h;
      auto s = protect_inode(rs, fd->get(), t.guest, t.path, false);
      if (!s.ok()) {
        rs.log.add(Failure::attr, where, s.error().message());
        continue;
      }
    }
    auto known = by_inode.find({st->dev, st->ino});
    bool refresh = known != by_inode.end() && rs.inodes[known->second].st.same_version(*st);
    auto u = unlink_at(dir->get(), name);
    if (!u.ok()) rs.log.add(Failure::unlink, where, u.error().message());
    else ++removed;
    if (!before && u.ok() && rs.options.protect == Protect::immutable) {
      // A run killed while a shared inode was thawed leaves it without the
      // flag. If the inode still has links beyond the names this run sees
      // (other guests, a store), it is shared: protect it again.
      auto after = stat_fd(fd->get());
      auto seen = by_inode.find({st->dev, st->ino});
      size_t n = seen == by_inode.end() ? 0 : rs.inodes[seen->second].names.size();
      if (after.ok() && after->nlink > 1 && after->nlink > n) {
        auto s = protect_inode(rs, fd->get(), t.guest, t.path, true);
        if (!s.ok()) rs.log.add(Failure::attr, where, s.error().message());
        else rs.inodes_protected.fetch_add(1, std::memory_order_relaxed);
      }
    }
    if (before) {
      auto after = stat_fd(fd->get());
      if (after.ok() && after->nlink > 0) {
        // The leftover's name is gone: address the inode by its descriptor.
        auto s = rs.attrs.protect_needs_path() ? described_error(ENOTSUP, "")
                                               : rs.attrs.protect(fd->get(), -1, "", true);
        if (!s.ok()) rs.log.add(Failure::attr, where, s.error().message());
        auto h = hash_fd(fd->get(), after->size, rs.seed, nullptr);
        if (!no_writers(fd->get()) || !h.ok() || *h != *before || after->size != st->size) {
          rs.log.add(Failure::verify, where,
                     "shared inode changed while a leftover temporary was removed");
          refresh = false;
        }
      }
    }
    if (refresh) {
      auto now = stat_fd(fd->get());
      if (now.ok() && now->mtime_ns == st->mtime_ns && now->size == st->size) {
        InodeRec& rec = rs.inodes[known->second];
        rec.st.ctime_ns = now->ctime_ns;
        rec.st.nlink = now->nlink;
      }
    }
  }
  return removed;
}

} // namespace vu
