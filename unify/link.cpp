// Verify and link: the pass that changes guests.
//
// For one group (canonical inode C, targets T1..Tn of equal hash), in
// rounds, each round in batches that fit the run's descriptor budget:
//
//  1. Lease C (fs/leases: while the lease is held, an open for writing
//     waits in the kernel); if C is open for writing right now, it cannot
//     be shared - the next target becomes the canonical. Freeze C
//     (FS_IMMUTABLE_FL) so it cannot change while it is compared.
//  2. For each target of the batch: lease it too (open for writing now:
//     left alone, a write through that descriptor would be lost), compare
//     it with C byte for byte, re-stat it (dev, ino, size, mtime, ctime).
//  3. Thaw C - on mainline, link(2) and rename(2) refuse immutable inodes,
//     for root too - and swap every name of every verified target to C
//     (swap.h: signed temporary link, RENAME_EXCHANGE, check, undo).
//  4. Freeze C again. A process that tried to open C for writing while it
//     was thawed is still waiting for the lease, and C is unchanged: it
//     gets C, and the names of every other guest move to a fresh copy
//     (thaw.h). A target some process opened for writing meanwhile gets
//     its names back.
//  5. Commit: unlink the temporaries, which held the targets' old inodes;
//     a freed inode's last descriptor goes to the reaper when its file
//     system trims on freeing (reaper.h), else it is closed at once.
//
// Under the bpf attribute back end, C's protection is the iunlink mark,
// which link(2) and rename(2) accept: C is marked in step 1 and stays
// marked, so there is no thaw in steps 3 and 4 and no moment at which a
// process could open it for writing.
//
// A kill -9 at any instant leaves every name in place with its content;
// leftover temporaries (links to C, or old inodes) carry this host's
// signature and are removed by the next run (remove_temporaries). If C runs
// out of links (EMLINK), the next target becomes the canonical of the rest.
#include "unify/passes.h"

#include "kernel/path.h"
#include "unify/swap.h"
#include "unify/thaw.h"
#include "unify/workers.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>

#include <algorithm>
#include <deque>
#include <map>
#include <optional>

namespace vu {

namespace {

// A target compared equal to C, its lease held until its last name is
// committed. A target with more names than a batch may hold spreads over
// several windows: `next` is its first name not swapped yet.
struct Verified {
  uint32_t inode;
  UniqueFd fd;
  std::optional<LeasedInode> lease;
  std::vector<std::pair<Swapped, uint32_t>> swapped; // this window's, with each name's file index
  size_t next = 0;
  bool abandoned = false; // a race or failure: its remaining names stay
};

// A round's canonical inode: open, leased, frozen.
struct Canonical {
  uint32_t inode;
  UniqueFd fd;
  std::optional<LeasedInode> lease;
  bool protect = false;        // we freeze it
  bool thaw = false;           // and thaw it to add names (mainline)
  bool was_immutable = false;  // it was frozen before this round
  FileStat before;             // after freezing, before any window
  std::string xattrs;          // its xattr list then (xattr_blob)
  std::vector<char> bytes;     // the whole content, when small
  std::string name;            // for messages
  std::vector<uint32_t> on_it; // every file index whose name is (now) C
};

void undo_all(RunContext& rc, Verified& v) {
  for (auto& [s, file] : v.swapped) {
    auto r = undo_swap(s);
    if (!r.ok()) rc.log.add(Failure::rename, rc.display(file), "undo: " + r.error().message());
  }
  v.swapped.clear();
}

// Swaps the name `n` of target `t` to C.
Result<Swapped> swap_one(RunContext& rc, Canonical& c, const InodeRec& t, uint32_t n) {
  const FileRec& f = rc.scan.files[n];
  if (rc.options.hooks.max_links) {
    auto cs = stat_fd(c.fd.get());
    if (cs.ok() && cs->nlink >= rc.options.hooks.max_links)
      return described_error(EMLINK, "test limit");
  }
  VU_TRY_ASSIGN(dir,
                open_beneath(rc.roots[f.guest()].get(), parent_of(f.path), O_RDONLY | O_DIRECTORY));
  return swap_name(c.fd.get(), std::move(dir), name_of(f.path), t.st->dev, t.st->ino, rc.temps);
}

// Swaps up to `room` more names of target `v` to C. False (with nothing of
// this window left swapped) on a race or failure; sets `emlink` when C is
// full.
bool swap_target(RunContext& rc, Canonical& c, Verified& v, size_t room, bool& emlink) {
  const InodeRec& t = rc.inodes[v.inode];
  for (; v.next < rc.names_of(t).size() && room > 0; ++v.next, --room) {
    uint32_t n = rc.names_of(t)[v.next];
    auto s = swap_one(rc, c, t, n);
    if (!s.ok()) {
      if (s.code() == EMLINK)
        emlink = true;
      else if (is_race(s.code()))
        rc.log.skip(Skip::changed);
      else
        rc.log.add(Failure::link, rc.display(n), s.error().message());
      undo_all(rc, v);
      v.abandoned = true;
      return false;
    }
    v.swapped.push_back({std::move(*s), n});
  }
  return true;
}

bool set_flag(RunContext& rc, Canonical& c, Protection p) {
  const FileRec& f = rc.scan.files[rc.names_of(rc.inodes[c.inode]).front()];
  auto s = rc.protect(c.fd.get(), f.guest(), std::string(f.path), p);
  if (!s.ok()) rc.log.add(Failure::attr, c.name, s.error().message());
  return s.ok();
}

// Opens, leases and freezes the round's canonical. nullopt when it cannot
// serve (the reason is logged); `busy` when a process has it open for
// writing, so the next target should serve instead.
std::optional<Canonical> prepare_canonical(RunContext& rc, uint32_t canon, bool& busy) {
  Canonical c;
  c.inode = canon;
  const InodeRec& rec = rc.inodes[canon];
  c.name = rc.display(rc.names_of(rec).front());
  auto fd = open_inode(rc, rec);
  if (!fd.ok()) return std::nullopt;
  c.fd = std::move(*fd);
  auto lease = LeasedInode::take(c.fd.get());
  if (!lease.ok()) {
    if (lease.code() == EAGAIN || lease.code() == EBUSY) {
      rc.log.skip(Skip::busy, c.name, "open for writing: not shared");
      busy = true;
    } else {
      rc.log.add(Failure::open, c.name, lease.error().message());
    }
    return std::nullopt;
  }
  c.lease = std::move(*lease);
  c.protect = rc.options.protect == Protect::immutable;
  auto prot = rc.is_protected(c.fd.get());
  const bool marked = prot.ok() && *prot;
  // Under bpf, a mainline run's FS_IMMUTABLE_FL also means shared; setting
  // the protection converts it (link and rename need that). On mainline
  // the protection is that flag: no second look.
  c.was_immutable = marked || (rc.attrs->names_while_protected() && !marked &&
                               is_immutable(c.fd.get()).value_or(false));
  if (!prot.ok()) {
    // No inode flags on this file system (e.g. some FUSE or NFS mounts).
    if (c.protect) rc.log.add(Failure::attr, c.name, prot.error().message());
    c.protect = false;
  }
  c.thaw = c.protect && !rc.attrs->names_while_protected();
  if (c.protect && !marked && !set_flag(rc, c, Protection::on)) return std::nullopt;
  auto before = stat_fd(c.fd.get());
  if (!before.ok()) {
    rc.log.add(Failure::stat, c.name, before.error().message());
    if (c.protect && !c.was_immutable) set_flag(rc, c, Protection::off);
    return std::nullopt;
  }
  c.before = *before;
  // What C's names will show. A lease keeps writers out, not chmod, chown
  // or setxattr: a guest's root may have changed C since open_inode's
  // check. Frozen it cannot any more, so it is checked here against the
  // scan and the grouping's xattr fingerprint.
  auto blob = xattr_blob(c.fd.get());
  if (!blob.ok() || !c.before.same_metadata(*rec.st) ||
      hash_bytes(blob->data(), blob->size(), rc.seed) != rec.xattrs) {
    rc.log.skip(Skip::changed);
    if (c.protect && !c.was_immutable) set_flag(rc, c, Protection::off);
    return std::nullopt;
  }
  c.xattrs = std::move(*blob);
  // A small C is read once (it is frozen) and every target compared with
  // those bytes; a large one is read along with each target.
  if (rec.st->size <= k_small_file) {
    c.bytes.resize(rec.st->size);
    auto n = read_at(c.fd.get(), c.bytes.data(), c.bytes.size(), 0);
    rc.bytes_compared.fetch_add(n.ok() ? *n : 0, std::memory_order_relaxed);
    if (!n.ok() || *n != rec.st->size) {
      if (!n.ok())
        rc.log.add(Failure::read, c.name, n.error().message());
      else
        rc.log.skip(Skip::changed);
      if (c.protect && !c.was_immutable) set_flag(rc, c, Protection::off);
      return std::nullopt;
    }
  }
  c.on_it.assign(rc.names_of(rec).begin(), rc.names_of(rec).end());
  return c;
}

// Step 2: verifies more targets of `pending` into `live` while the names
// left to swap fit the batch budget (always at least one target).
void verify_more(RunContext& rc, Canonical& c, std::deque<uint32_t>& pending,
                 std::vector<Verified>& live) {
  size_t names = 0;
  for (const auto& v : live) names += rc.names_of(rc.inodes[v.inode]).size() - v.next;
  const InodeRec& crec = rc.inodes[c.inode];
  while (!pending.empty() &&
         (live.empty() ||
          names + rc.names_of(rc.inodes[pending.front()]).size() <= rc.budget.names_per_batch)) {
    uint32_t idx = pending.front();
    pending.pop_front();
    const InodeRec& t = rc.inodes[idx];
    auto fd = open_inode(rc, t);
    if (!fd.ok()) continue;
    auto lease = LeasedInode::take(fd->get());
    if (!lease.ok()) {
      if (lease.code() == EAGAIN || lease.code() == EBUSY)
        rc.log.skip(Skip::busy, rc.display(rc.names_of(t).front()), "open for writing: left alone");
      else
        rc.log.add(Failure::open, rc.display(rc.names_of(t).front()), lease.error().message());
      continue;
    }
    rc.files_compared.fetch_add(1, std::memory_order_relaxed);
    // What the comparison reads (at most; it stops at the first difference).
    rc.bytes_compared.fetch_add(crec.st->size <= k_small_file ? crec.st->size : 2 * crec.st->size,
                                std::memory_order_relaxed);
    auto eq = crec.st->size <= k_small_file
                  ? same_as_bytes(fd->get(), c.bytes.data(), c.bytes.size())
                  : same_content(c.fd.get(), fd->get(), crec.st->size);
    if (!eq.ok()) {
      rc.log.add(Failure::read, rc.display(rc.names_of(t).front()), eq.error().message());
      continue;
    }
    auto again = stat_fd(fd->get());
    if (!*eq || !again.ok() || !again->same_version(*t.st)) {
      rc.log.skip(Skip::changed);
      continue;
    }
    names += rc.names_of(t).size();
    live.push_back(Verified{idx, std::move(*fd), std::move(*lease), {}, 0, false});
  }
}

// What became of C when a process waited to open it for writing.
enum class CanonicalWriters {
  host,      // a host process: the batch undone, reported
  relocated, // guests' processes: C is theirs, the others moved to a copy
};

// Step 4 when C was opened for writing while thawed. Either way the round
// ends: C gets no more names.
CanonicalWriters handle_writers_of_canonical(RunContext& rc, Canonical& c,
                                             std::vector<Verified>& batch) {
  WriterGuests writers = writer_guests(rc, *c.lease, c.before);
  if (writers.host || writers.roots.empty()) {
    // A host process (or one we cannot place): not a guest's business to
    // fence; the round's new names go back to their own inodes, so no
    // guest that did not share C before is exposed to it.
    rc.log.add(Failure::verify, c.name,
               "a process outside the guests opened this shared inode for writing while it was "
               "thawed; its writes show in every guest that shared it before this run; this "
               "round's links undone");
    if (c.thaw) set_flag(rc, c, Protection::off);
    for (auto& v : batch) undo_all(rc, v);
    if (c.thaw) set_flag(rc, c, Protection::on);
    return CanonicalWriters::host;
  }
  std::vector<NameAt> names;
  for (uint32_t f : c.on_it) names.push_back(name_at(rc, f));
  for (auto& v : batch)
    for (auto& [s, f] : v.swapped) names.push_back(name_at(rc, f));
  relocate_for_writers(rc, c.fd.get(), c.before, std::move(names), writers);
  return CanonicalWriters::relocated;
}

// Step 5 for one target: unlinks this window's temporaries (the old
// inode's names) unless a process opened it for writing meanwhile - then
// those names come back to it (C thawed again for the undo) and the rest
// of its names stay. Returns true when the target is done with.
bool commit_target(RunContext& rc, Canonical& c, Verified& v) {
  const InodeRec& t = rc.inodes[v.inode];
  if (v.lease && v.lease->writer_seen()) {
    rc.log.skip(Skip::busy, rc.display(rc.names_of(t).front()),
                "opened for writing during the run: left alone");
    if (c.thaw) set_flag(rc, c, Protection::off);
    undo_all(rc, v);
    if (c.thaw) set_flag(rc, c, Protection::on);
    return true;
  }
  if (v.swapped.empty()) return v.abandoned || v.next == rc.names_of(t).size();
  if (v.swapped.front().second == rc.names_of(t).front())
    rc.record_prelinks(t); // its own hard links, before they become names of C
  for (auto& [s, file] : v.swapped) {
    auto u = commit_swap(s);
    if (!u.ok()) rc.log.add(Failure::unlink, rc.display(file), u.error().message());
    c.on_it.push_back(file);
    rc.files_linked.fetch_add(1, std::memory_order_relaxed);
    if (rc.options.progress)
      rc.options.progress->files_linked.fetch_add(1, std::memory_order_relaxed);
    if (rc.options.log_actions)
      rc.log.action(
          fmt::format("linked {} -> {}", printable_path(rc.display(file)), printable_path(c.name)));
  }
  v.swapped.clear();
  if (v.next < rc.names_of(t).size() && !v.abandoned) return false; // more names, next window
  v.lease.reset();                                                  // released: the inode is going
  auto st = stat_fd(v.fd.get());
  if (st.ok() && st->nlink == 0) {
    rc.bytes_saved.fetch_add(allocated_bytes(*t.st), std::memory_order_relaxed);
    // The last reference: closing it frees the inode. Where that waits for
    // the device's trims, on the reaper's threads.
    if (rc.frees_slowly(t.st->dev))
      rc.reaper.give(std::move(v.fd));
    else
      v.fd.reset();
  }
  return true;
}

// What of C's metadata differs from what its names were given; read while
// C is frozen. Empty when nothing.
std::string metadata_change(const Canonical& c) {
  return metadata_change(c.fd.get(), c.before, c.xattrs);
}

// Without a lease (file systems that offer none): prove C did not change
// while thawed from its size, mtime, open writers and content.
std::string unguarded_change(RunContext& rc, Canonical& c) {
  const InodeRec& crec = rc.inodes[c.inode];
  auto now = stat_fd(c.fd.get());
  if (!now.ok() || now->size != c.before.size || now->mtime_ns != c.before.mtime_ns)
    return "size or mtime changed";
  if (!take_read_lease(c.fd.get()).ok() && errno != EINVAL) return "opened for writing";
  auto h = content_hash(c.fd.get(), crec.st->size, rc.seed);
  if (!h.ok() || *h != crec.hash) return "content changed";
  return {};
}

// One round with canonical `canon`; returns the next canonical when C ran
// out of links or could not serve, with `pending` holding the targets left.
// Step 3 for one window: thaws C and swaps up to a batch's worth of the
// live targets' names to it. On EMLINK the targets not started go back to
// `pending` and the first of them becomes `overflow`; returns false then.
bool swap_window(RunContext& rc, Canonical& c, std::vector<Verified>& live,
                 std::deque<uint32_t>& pending, std::optional<uint32_t>& overflow) {
  if (rc.options.hooks.in_link_window) {
    const FileRec& f = rc.scan.files[rc.names_of(rc.inodes[c.inode]).front()];
    rc.options.hooks.in_link_window(rc.guests[f.guest()].guest.root + "/" + std::string(f.path));
  }
  size_t room = rc.budget.names_per_batch;
  for (size_t k = 0; k < live.size() && room > 0; ++k) {
    Verified& v = live[k];
    const InodeRec& t = rc.inodes[v.inode];
    const FileRec& tf = rc.scan.files[rc.names_of(t).front()];
    const bool thaw = t.frozen && rc.needs_thaw(*t.st);
    if (thaw && v.next == 0) { // a shared inode of its own: thawed to lose its names
      auto s = rc.protect(v.fd.get(), tf.guest(), std::string(tf.path), Protection::off);
      if (!s.ok()) {
        rc.log.add(Failure::attr, rc.display(rc.names_of(t).front()), s.error().message());
        v.abandoned = true;
        continue;
      }
    }
    size_t before = v.next;
    bool emlink = false;
    bool ok = swap_target(rc, c, v, room, emlink);
    room -= std::min(room, v.next - before);
    if (!ok && thaw && before == 0)
      (void)rc.protect(v.fd.get(), tf.guest(), std::string(tf.path), Protection::on);
    if (emlink) {
      // C is full. The targets not started go to the next canonical, the
      // first of them becoming it; one partly on C keeps its other names.
      for (size_t r = live.size(); r-- > k;) {
        if (live[r].next != 0 || live[r].abandoned) continue;
        pending.push_front(live[r].inode);
        live[r].abandoned = true; // dropped here, verified again there
      }
      v.abandoned = true;
      if (!pending.empty()) {
        overflow = pending.front();
        pending.pop_front();
      }
      return false;
    }
  }
  return true;
}

// How a window ended (step 4).
enum class WindowEnd {
  fine,      // no writer came: commit, and go on
  relocated, // writers of C: C is their guests', no more names for it
  stop,      // the round ends (flag failure, a host writer): commit what is left
  undone,    // C changed without a lease to guard it: everything undone
};

// Step 4: freezes C again and deals with whoever came while it was thawed.
WindowEnd close_window(RunContext& rc, Canonical& c, std::vector<Verified>& live,
                       size_t committed) {
  if (c.thaw && !set_flag(rc, c, Protection::on)) {
    set_flag(rc, c, Protection::off);
    for (auto& v : live) undo_all(rc, v);
    return WindowEnd::stop;
  }
  if (auto what = metadata_change(c); !what.empty()) {
    // A guest's root changed C's mode, owner, times or xattrs while it was
    // thawed (a lease keeps writers out, not that). The names this window
    // gave C go back (thawed: a frozen inode's names cannot move); names C
    // had before get its metadata back, and C its flag.
    if (c.thaw) set_flag(rc, c, Protection::off);
    for (auto& v : live) undo_all(rc, v);
    const bool keep = c.was_immutable || committed > 0;
    const bool restored =
        keep && restore_metadata(c.fd.get(), c.before, c.xattrs,
                                 [&](Protection p) { return !c.thaw || set_flag(rc, c, p); });
    if (keep && !restored && c.thaw) set_flag(rc, c, Protection::on);
    if (!keep && c.protect && !c.thaw) set_flag(rc, c, Protection::off); // its guest's alone
    rc.log.add(Failure::verify, c.name,
               "a guest changed the " + what +
                   " of this shared inode while links were added; "
                   "links undone" +
                   (!keep      ? std::string()
                    : restored ? "; its metadata was restored"
                               : "; restoring it failed, so its names in other guests show "
                                 "the change: check them"));
    return WindowEnd::undone;
  }
  if (c.lease->guarded()) {
    if (!c.lease->writer_seen()) return WindowEnd::fine;
    return handle_writers_of_canonical(rc, c, live) == CanonicalWriters::relocated
               ? WindowEnd::relocated
               : WindowEnd::stop;
  }
  auto why = unguarded_change(rc, c);
  if (why.empty()) return WindowEnd::fine;
  rc.log.add(Failure::verify, c.name,
             "shared inode " + why + " while links were added; links undone");
  // C keeps its protection when it was shared before or still is.
  const bool keep = c.was_immutable || committed > 0;
  if (c.thaw) set_flag(rc, c, Protection::off);
  for (auto& v : live) undo_all(rc, v);
  if (c.protect && (c.thaw ? keep : !keep))
    set_flag(rc, c, keep ? Protection::on : Protection::off);
  return WindowEnd::undone;
}

// One round with canonical `canon`; returns the next canonical when C ran
// out of links or could not serve, with `pending` holding the targets left.
std::optional<uint32_t> link_round(RunContext& rc, uint32_t canon, std::deque<uint32_t>& pending) {
  bool busy = false;
  auto prepared = prepare_canonical(rc, canon, busy);
  if (!prepared) {
    if (!busy || pending.empty()) {
      pending.clear();
      return std::nullopt;
    }
    uint32_t next = pending.front(); // C has a writer: the next target serves
    pending.pop_front();
    return next;
  }
  Canonical& c = *prepared;
  std::optional<uint32_t> overflow;
  // Names committed to C in this round (c.on_it grows from C's own names).
  auto committed = [&] { return c.on_it.size() - rc.names_of(rc.inodes[c.inode]).size(); };
  WindowEnd end = WindowEnd::fine;
  std::vector<Verified> live; // verified targets with names left to swap
  while (end == WindowEnd::fine && !overflow && (!pending.empty() || !live.empty())) {
    verify_more(rc, c, pending, live);
    if (live.empty()) continue;
    if (c.thaw && !set_flag(rc, c, Protection::off)) break; // 3. thaw (mainline)
    swap_window(rc, c, live, pending, overflow);
    end = close_window(rc, c, live, committed()); // 4.
    if (end == WindowEnd::undone) {
      pending.clear();
      return std::nullopt;
    }
    std::vector<Verified> still; // 5. commit
    for (auto& v : live)
      if (!commit_target(rc, c, v)) still.push_back(std::move(v));
    live = std::move(still);
  }
  if (end != WindowEnd::fine && !overflow) pending.clear();
  const bool relocated = end == WindowEnd::relocated;
  if (!c.was_immutable && committed() > 0 && !relocated)
    rc.record_prelinks(rc.inodes[c.inode]); // newly shared
  // Relocation decided C's flag; otherwise C is shared now (frozen), or
  // left as it was.
  if (c.protect && !c.was_immutable && !relocated) {
    if (committed() == 0)
      set_flag(rc, c, Protection::off);
    else
      rc.inodes_protected.fetch_add(1, std::memory_order_relaxed);
  }
  if (overflow) {
    rc.inodes[c.inode].frozen = true;
    rc.inodes[*overflow].frozen = false;
  }
  return overflow;
}

} // namespace

void link_group(RunContext& rc, const Group& group) {
  std::deque<uint32_t> pending(group.inodes.begin() + 1, group.inodes.end());
  std::optional<uint32_t> canon = group.inodes.front();
  while (canon && !pending.empty()) canon = link_round(rc, *canon, pending);
}

namespace {

// Puts the groups in the path order of their first target (the scan's
// file indices are path order). Consecutive groups then rename names in
// the same directories, whose entries, inodes and journal blocks are still
// in the CPU's and the file system's caches. Grouping leaves them in size
// or hash order, which scatters every rename: on the 8-guest corpus the
// link pass took 1.6-1.9 s in path order against 1.9-2.3 s (vunify) and
// 2.2 s (vhashify, whose groups come in store-name order).
void order_by_first_target(RunContext& rc) {
  std::vector<std::pair<uint32_t, uint32_t>> order; // (first target's name, group)
  order.reserve(rc.groups.size());
  for (uint32_t k = 0; k < rc.groups.size(); ++k) {
    const Group& g = rc.groups[k];
    order.emplace_back(
        g.inodes.size() >= 2 ? rc.names_of(rc.inodes[g.inodes[1]]).front() : UINT32_MAX, k);
  }
  std::sort(order.begin(), order.end());
  std::vector<Group> sorted;
  sorted.reserve(order.size());
  for (auto [name, k] : order) sorted.push_back(std::move(rc.groups[k]));
  rc.groups = std::move(sorted);
}

} // namespace

void link_pass(RunContext& rc) {
  PassTimer timer(rc, "link");
  order_by_first_target(rc);
  rc.report.temporaries_removed += remove_temporaries(rc);
  if (rc.options.hooks.before_link) rc.options.hooks.before_link();
  rc.stage(ProgressStage::link);
  // Each device of the groups asked once (mountinfo is read per question).
  std::vector<uint64_t> devices;
  for (const Group& g : rc.groups) devices.push_back(rc.inodes[g.inodes.front()].st->dev);
  std::sort(devices.begin(), devices.end());
  devices.erase(std::unique(devices.begin(), devices.end()), devices.end());
  rc.trimming_devices.clear();
  for (uint64_t dev : devices)
    if (trims_when_freeing(dev)) rc.trimming_devices.push_back(dev);
  for_each_on_cores(rc.options.threads, rc.groups.begin(), rc.groups.end(), [&](const Group& g) {
    if (g.inodes.size() >= 2) link_group(rc, g);
  });
  rc.reaper.finish();
}

namespace {

// What remove_temporaries knows about the inodes of the run.
struct Leftovers {
  std::map<std::pair<uint64_t, uint64_t>, uint32_t> by_inode; // -> index into rc.inodes
  std::map<std::pair<uint64_t, uint64_t>, uint32_t> temps_of; // -> leftovers of that inode
};

// A leftover linking a frozen shared inode: only a run of the suite can
// have put it there (link and rename of an immutable inode are refused).
// Unlinked with the inode thawed under its lease, frozen again.
bool remove_frozen_leftover(RunContext& rc, const TempRec& t, int dir, const std::string& name,
                            int fd, const FileStat& st, const Leftovers& known) {
  const std::string where = rc.guests[t.guest].guest.name + ":/" + t.path;
  auto lease = LeasedInode::take(fd);
  if (!lease.ok()) {
    rc.log.skip(Skip::busy, where, "leftover of a shared inode that is open for writing");
    return false;
  }
  auto thaw = rc.protect(fd, t.guest, t.path, Protection::off);
  if (!thaw.ok()) {
    rc.log.add(Failure::attr, where, thaw.error().message());
    return false;
  }
  auto u = unlink_at(dir, name);
  auto after = stat_fd(fd);
  if (after.ok() && after->nlink > 0) {
    // Its name is gone: the descriptor addresses it.
    auto s = rc.protect_fd(fd, Protection::on);
    if (!s.ok()) rc.log.add(Failure::attr, where, s.error().message());
  }
  if (!u.ok()) rc.log.add(Failure::unlink, where, u.error().message());
  if (lease->writer_seen()) {
    WriterGuests w = writer_guests(rc, *lease, st);
    std::vector<NameAt> names;
    if (auto k = known.by_inode.find({st.dev, st.ino}); k != known.by_inode.end())
      for (uint32_t n : rc.names_of(rc.inodes[k->second])) names.push_back(name_at(rc, n));
    if (!w.host && !w.roots.empty())
      relocate_for_writers(rc, fd, st, names, w);
    else
      rc.log.add(Failure::verify, where,
                 "a process outside the guests opened a shared inode for writing while a leftover "
                 "temporary was removed");
  }
  return u.ok();
}

// Any other leftover: an old inode whose name holds identical content now,
// a link to a shared inode a killed run left thawed, or a guest's file the
// guest renamed onto a signed name. Unlinking is always safe; flagging the
// inode again is only when every one of its names is known and they span
// two guests (else the protect pass of a run over all of them does it).
bool remove_plain_leftover(RunContext& rc, const TempRec& t, int dir, const std::string& name,
                           int fd, const FileStat& st, const Leftovers& known) {
  const std::string where = rc.guests[t.guest].guest.name + ":/" + t.path;
  auto u = unlink_at(dir, name);
  if (!u.ok()) {
    rc.log.add(Failure::unlink, where, u.error().message());
    return false;
  }
  auto k = known.by_inode.find({st.dev, st.ino});
  if (rc.options.protect != Protect::immutable || k == known.by_inode.end()) return true;
  const InodeRec& rec = rc.inodes[k->second];
  auto temps = known.temps_of.find({st.dev, st.ino});
  bool fully_seen =
      st.nlink <= rc.names_of(rec).size() + (temps == known.temps_of.end() ? 0 : temps->second);
  auto after = stat_fd(fd);
  if (!fully_seen || !after.ok() || after->nlink <= 1) return true;
  uint32_t g0 = rc.scan.files[rc.names_of(rec).front()].guest();
  bool cross = std::any_of(rc.names_of(rec).begin(), rc.names_of(rec).end(),
                           [&](uint32_t n) { return rc.scan.files[n].guest() != g0; });
  if (!cross) return true;
  const FileRec& f = rc.scan.files[rc.names_of(rec).front()]; // the temporary's name is gone
  auto s = rc.protect(fd, f.guest(), std::string(f.path), Protection::on);
  if (!s.ok())
    rc.log.add(Failure::attr, where, s.error().message());
  else
    rc.inodes_protected.fetch_add(1, std::memory_order_relaxed);
  return true;
}

} // namespace

uint64_t remove_temporaries(RunContext& rc) {
  // Every TempRec carries this host's signature for its directory (the
  // walk checked it): a run of the suite made it.
  if (rc.scan.temporaries.empty()) return 0; // the usual case: no maps over every inode
  Leftovers known;
  for (uint32_t i = 0; i < rc.inodes.size(); ++i)
    known.by_inode[{rc.inodes[i].st->dev, rc.inodes[i].st->ino}] = i;
  for (const TempRec& t : rc.scan.temporaries) ++known.temps_of[{t.st.dev, t.st.ino}];
  uint64_t removed = 0;
  for (const TempRec& t : rc.scan.temporaries) {
    auto dir = open_beneath(rc.roots[t.guest].get(), parent_of(t.path), O_RDONLY | O_DIRECTORY);
    if (!dir.ok()) continue;
    std::string name = name_of(t.path);
    auto fd = open_beneath(dir->get(), name, O_RDONLY | O_NONBLOCK | O_NOCTTY);
    if (!fd.ok()) continue; // a symlink or gone: not ours any more
    auto st = stat_fd(fd->get());
    if (!st.ok() || !st->is_regular() || st->dev != t.st.dev || st->ino != t.st.ino) continue;
    auto k = known.by_inode.find({st->dev, st->ino});
    bool unchanged = k != known.by_inode.end() && rc.inodes[k->second].st->same_version(*st);
    bool ok = st->immutable ? remove_frozen_leftover(rc, t, dir->get(), name, fd->get(), *st, known)
                            : remove_plain_leftover(rc, t, dir->get(), name, fd->get(), *st, known);
    if (!ok) continue;
    ++removed;
    if (!unchanged) continue;
    // Removing a name changed the inode's ctime and link count; the plan
    // still uses its record.
    auto now = stat_fd(fd->get());
    if (now.ok() && now->mtime_ns == st->mtime_ns && now->size == st->size) {
      InodeRec& rec = rc.inodes[k->second];
      rec.st->ctime_ns = now->ctime_ns;
      rec.st->nlink = now->nlink;
      rec.st->immutable = now->immutable;
      rec.st->nodump = now->nodump;
      rec.frozen = rc.attrs->looks_protected(*rec.st);
    }
  }
  return removed;
}

} // namespace vu
