// De-unification: a guest gets private copies of the files it shares.
//
// For each inode S of the guest that is immutable or has links outside it,
// in batches that fit the descriptor budget:
//  1. lease S (an open for writing now waits in the kernel);
//  2. for every name of S in the guest, a private copy (copy.h: O_TMPFILE
//     beside the name, data with holes, owner, xattrs, mode, times,
//     compared byte for byte). Names that were one inode before the suite
//     linked them (PreLinks) get one copy between them; every other name
//     its own, so files the suite joined are independent again;
//  3. thaw S (rename(2) refuses immutable inodes) and swap each name to its
//     copy (swap.h), still undoable;
//  4. a process that tried to open S for writing meanwhile is still
//     waiting: if it is of this guest, the names go back to S and the other
//     guests move to a fresh copy instead (thaw.h); otherwise the swaps are
//     committed and the others still move away from the writer;
//  5. commit (unlink the temporaries, S's old names) and freeze S again if
//     others still share it.
// A kill -9 leaves names with either S or a copy (same content) and signed
// temporaries that the next run of vunify or vunify -R removes.
#include "unify/deunify.h"

#include "kernel/path.h"
#include "unify/copy.h"
#include "unify/hash.h"
#include "unify/passes.h"
#include "unify/swap.h"
#include "unify/thaw.h"
#include "unify/workers.h"

#include <fcntl.h>
#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <mutex>
#include <string_view>

namespace vu {

namespace {

// One name of S on its way to a private copy.
struct Move {
  uint32_t file;
  UniqueFd copy; // shared by the names of one pre-existing link group
  UniqueFd dir;  // the name's directory, until swapped
  std::optional<Swapped> swap;
};

// What became of S when a process waited to open it for writing.
enum class WriterOutcome {
  none,      // nobody did
  elsewhere, // another guest's process: S is that guest's, this guest's names go on
  ours,      // a process of this guest: its names stay on S
  host,      // a host process: nothing to move, reported
};

class Deunifier {
public:
  explicit Deunifier(RunContext& rc) : m_rc(rc), m_groups(rc.prelinks.load(rc.root_ids[0])) {}

  void run(const InodeRec& s) {
    const std::string where = m_rc.display(m_rc.names_of(s).front());
    auto fd = open_inode(m_rc, s);
    if (!fd.ok()) return;
    auto lease = LeasedInode::take(fd->get());
    if (!lease.ok()) {
      if (lease.code() == EAGAIN || lease.code() == EBUSY)
        m_rc.log.skip(Skip::busy, where, "shared and open for writing: left alone");
      else
        m_rc.log.add(Failure::open, where, lease.error().message());
      return;
    }
    const bool frozen = s.frozen && m_rc.needs_thaw(*s.st);
    std::vector<uint32_t> names(m_rc.names_of(s).begin(), m_rc.names_of(s).end());
    for (size_t from = 0; from < names.size(); from += m_rc.budget.names_per_batch) {
      size_t to = std::min(names.size(), from + m_rc.budget.names_per_batch);
      std::vector<uint32_t> batch(names.begin() + static_cast<ptrdiff_t>(from),
                                  names.begin() + static_cast<ptrdiff_t>(to));
      if (!batch_of(s, fd->get(), *lease, frozen, batch)) break;
    }
  }

  std::set<std::string> done_paths() {
    std::lock_guard lock(m_mutex);
    return m_done;
  }

private:
  // Steps 2 to 5 for some names of S. False when S must not be touched
  // any more (a writer of this guest took it).
  bool batch_of(const InodeRec& s, int fd_s, LeasedInode& lease, bool frozen,
                const std::vector<uint32_t>& batch) {
    std::vector<Move> moves = copies_for(s, fd_s, batch); // 2.
    if (moves.empty()) return true;
    // 3. thaw S, swap every name to its copy - its metadata noted first
    // (frozen, it cannot change): the guests that keep sharing S must see
    // it unchanged after the window.
    const FileRec& f0 = m_rc.scan.files[m_rc.names_of(s).front()];
    auto before = frozen ? stat_fd(fd_s) : Result<FileStat>(FileStat{});
    auto xattrs = frozen ? xattr_blob(fd_s) : Result<std::string>(std::string());
    if (frozen && (!before.ok() || !xattrs.ok())) {
      m_rc.log.add(Failure::stat, m_rc.display(m_rc.names_of(s).front()),
                   !before.ok() ? before.error().message() : xattrs.error().message());
      return false;
    }
    if (frozen) {
      auto r = m_rc.protect(fd_s, f0.guest(), std::string(f0.path), Protection::off);
      if (!r.ok()) {
        m_rc.log.add(Failure::attr, m_rc.display(m_rc.names_of(s).front()), r.error().message());
        return false;
      }
    }
    if (m_rc.options.hooks.in_link_window)
      m_rc.options.hooks.in_link_window(m_rc.guests[0].guest.root + "/" + std::string(f0.path));
    swap_to_copies(s, moves);
    // 4. writers that came while S was thawed
    WriterOutcome writers =
        lease.writer_seen() ? writers_came(s, fd_s, lease, moves) : WriterOutcome::none;
    commit_moves(moves); // 5.
    auto now = stat_fd(fd_s);
    // Frozen again for the guests that still share it - unless a writer's
    // guest took it (relocate_for_writers decided its flag).
    bool taken = writers == WriterOutcome::ours || writers == WriterOutcome::elsewhere;
    if (frozen && !taken && now.ok() && now->nlink > 1) {
      // Its names here are gone: the descriptor addresses it.
      auto r = m_rc.protect_fd(fd_s, Protection::on);
      if (!r.ok())
        m_rc.log.add(Failure::attr, m_rc.display(m_rc.names_of(s).front()), r.error().message());
      // A guest's root may have changed S's mode, owner, times or xattrs
      // while it was thawed (a lease keeps out writers only): the guests
      // still sharing it get its metadata back.
      if (r.ok())
        take_back_metadata(m_rc, fd_s, *before, *xattrs, m_rc.display(m_rc.names_of(s).front()),
                           "this shared inode while it was thawed");
    }
    return writers != WriterOutcome::ours;
  }

  // 2. A private copy of S for each name of `batch` - one per group of
  // names that were one inode before the suite linked them.
  std::vector<Move> copies_for(const InodeRec& s, int fd_s, const std::vector<uint32_t>& batch) {
    std::vector<Move> moves;
    std::map<uint64_t, size_t> copy_of_group; // group -> index into moves holding its copy
    for (uint32_t n : batch) {
      const std::string path(m_rc.scan.files[n].path);
      auto dir = open_beneath(m_rc.roots[0].get(), parent_of(path), O_RDONLY | O_DIRECTORY);
      if (!dir.ok()) {
        m_rc.log.add(Failure::open, m_rc.display(n), dir.error().message());
        continue;
      }
      auto g = m_groups.find(path);
      UniqueFd copy;
      if (g != m_groups.end() && copy_of_group.count(g->second)) {
        copy = dup_fd(moves[copy_of_group[g->second]].copy.get());
      } else {
        uint64_t copied = 0;
        auto c = make_private_copy(fd_s, dir->get(), s.st->size, copied);
        if (!c.ok()) {
          if (c.code() == ESTALE)
            m_rc.log.skip(Skip::changed);
          else
            m_rc.log.add(Failure::read, m_rc.display(n), c.error().message());
          continue;
        }
        copy = std::move(*c);
        m_bytes.fetch_add(copied, std::memory_order_relaxed);
        if (g != m_groups.end()) copy_of_group[g->second] = moves.size();
      }
      moves.push_back(Move{n, std::move(copy), std::move(*dir), {}});
    }
    return moves;
  }

  // 3. Each name of S in `moves` exchanged with its copy (not committed).
  void swap_to_copies(const InodeRec& s, std::vector<Move>& moves) {
    for (auto& m : moves) {
      const std::string name = name_of(m_rc.scan.files[m.file].path.view());
      auto s2 = swap_name(m.copy.get(), std::move(m.dir), name, s.st->dev, s.st->ino, m_rc.temps);
      if (!s2.ok()) {
        if (is_race(s2.code()))
          m_rc.log.skip(Skip::changed);
        else
          m_rc.log.add(Failure::rename, m_rc.display(m.file), s2.error().message());
        continue;
      }
      m.swap = std::move(*s2);
    }
  }

  // 5. The swaps committed: S's names here are the copies for good.
  void commit_moves(std::vector<Move>& moves) {
    for (auto& m : moves) {
      if (!m.swap) continue;
      auto c = commit_swap(*m.swap);
      if (!c.ok()) m_rc.log.add(Failure::unlink, m_rc.display(m.file), c.error().message());
      m_names.fetch_add(1, std::memory_order_relaxed);
      {
        std::lock_guard lock(m_mutex);
        m_done.insert(std::string(m_rc.scan.files[m.file].path));
      }
      if (m_rc.options.log_actions)
        m_rc.log.action("private copy " + printable_path(m_rc.display(m.file)));
    }
  }

  // A process waits to open S for writing. Its guest keeps S: if that is
  // this guest, its names come back to S; every other guest's names move
  // to an unchanged copy.
  WriterOutcome writers_came(const InodeRec& s, int fd_s, LeasedInode& lease,
                             std::vector<Move>& moves) {
    WriterGuests writers = writer_guests(m_rc, lease, *s.st);
    if (writers.host || writers.roots.empty()) {
      m_rc.log.add(Failure::verify, m_rc.display(m_rc.names_of(s).front()),
                   "a process outside the guests opened a shared inode for writing while it was "
                   "thawed; every guest sharing it sees its writes");
      return WriterOutcome::host;
    }
    bool ours = writers.roots.count(m_rc.root_ids[0]) != 0;
    if (ours) {
      for (auto& m : moves) {
        if (!m.swap) continue;
        auto u = undo_swap(*m.swap);
        if (!u.ok())
          m_rc.log.add(Failure::rename, m_rc.display(m.file), "undo: " + u.error().message());
        m.swap.reset();
      }
    }
    std::vector<NameAt> names;
    if (ours)
      for (uint32_t n : m_rc.names_of(s)) names.push_back(name_at(m_rc, n));
    relocate_for_writers(m_rc, fd_s, *s.st, std::move(names), writers);
    return ours ? WriterOutcome::ours : WriterOutcome::elsewhere;
  }

  static UniqueFd dup_fd(int fd) { return UniqueFd(::fcntl(fd, F_DUPFD_CLOEXEC, 0)); }

  RunContext& m_rc;
  std::map<std::string, uint64_t> m_groups; // this guest's pre-existing links
  std::mutex m_mutex;
  std::set<std::string> m_done;

public:
  std::atomic<uint64_t> m_names{0}, m_bytes{0};
};

Result<Report> deunify_on_workers(const UnifyGuest& guest, const std::vector<std::string>& paths,
                                  const DeunifyOptions& options) {
  UnifyGuest g = guest;
  g.excludes = ExcludeList{}; // every file, whatever the unify excludes say
  g.pkgmgmt = PkgmgmtUse::ignored;
  VU_TRY_ASSIGN(rc, RunContext::open({g}, options));
  // The names to consider: the whole guest, or the given paths.
  ScanOptions scan;
  scan.min_size = 1;
  scan_pass(*rc, {}, scan);
  if (!paths.empty()) {
    std::vector<std::string> wanted;
    for (auto p : paths) {
      while (!p.empty() && p.front() == '/') p.erase(0, 1);
      wanted.push_back(p);
    }
    std::sort(wanted.begin(), wanted.end());
    wanted.erase(std::unique(wanted.begin(), wanted.end()), wanted.end());
    std::vector<bool> found(wanted.size());
    MappedVector<FileRec> keep;
    for (auto& f : rc->scan.files) {
      const std::string_view path = f.path.view();
      auto at = std::lower_bound(wanted.begin(), wanted.end(), path);
      if (at == wanted.end() || *at != path) continue;
      keep.push_back(f);
      found[at - wanted.begin()] = true;
    }
    rc->scan.files = std::move(keep);
    // A path that names no regular file of the guest is a failure, not a
    // silent no-op (a typo would otherwise look like success).
    for (size_t i = 0; i < wanted.size(); ++i)
      if (!found[i])
        rc->log.add(Failure::open, guest.guest.name + ":/" + wanted[i],
                    "no regular file of the guest");
  }
  // In path mode, names of the guest that were not asked for count as
  // outside: they keep the shared inode.
  inodes_pass(*rc, {});
  if (!options.dry_run) rc->report.temporaries_removed = remove_temporaries(*rc);
  std::vector<const InodeRec*> shared;
  for (const auto& rec : rc->inodes)
    if (rec.st->nlink > rc->names_of(rec).size() || rec.frozen) shared.push_back(&rec);
  if (options.dry_run) {
    for (const auto* s : shared) {
      rc->report.files_deunified += rc->names_of(*s).size();
      rc->report.bytes_copied += s->st->size;
    }
    return rc->finish();
  }
  Deunifier d(*rc);
  {
    PassTimer timer(*rc, "deunify");
    rc->stage(ProgressStage::link);
    // One worker per core: each inode is thawed for a moment, and fewer
    // thawed at once means fewer left unprotected by a kill.
    for_each_on_cores(options.threads, shared.begin(), shared.end(),
                      [&](const InodeRec* s) { d.run(*s); });
  }
  rc->prelinks.forget(rc->root_ids[0], d.done_paths());
  rc->report.files_deunified = d.m_names.load();
  rc->report.bytes_copied = d.m_bytes.load();
  return rc->finish();
}

} // namespace

Result<Report> run_deunify(const UnifyGuest& guest, const std::vector<std::string>& paths,
                           const DeunifyOptions& options) {
  return with_workers(options.threads, [&]() -> Result<Report> {
    return deunify_on_workers(guest, paths, options);
  });
}

} // namespace vu
