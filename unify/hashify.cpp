// The store run, as a list of passes (passes.h for the shared ones):
//
//   place    the store may not lie in (or hold) a guest, and must be on the
//            guests' file system: checked before anything is created.
//   lock     flock on <store>/.lock: runs on one store never interleave.
//   config, scan, inodes
//            the guests and the store (as a reference pseudo-guest) in one
//            parallel walk; store entries are known by name, so an inode
//            that already has a store name costs its one statx.
//   classify entries by key; names already in the store; candidates.
//   hash     every candidate: from the cache when (dev, ino, size, mtime,
//            ctime) match and the entry passed the age guard, else read
//            once (XXH3-128, seed 0, and under the run's secret seed, plus
//            the xattr list); a read with no writer just before or after
//            it, of a file whose ctime is old, proves its content for
//            adopt_entry.
//   match    per store key, compare each candidate byte for byte (and its
//            xattrs and mtime) with the key's entries; no match: a new
//            entry under the next collision index - the candidate's own
//            inode (adopt_entry: leased, linked into the store, frozen, and
//            proven unchanged: by its ctime when the hash read proved its
//            content, else by a second read and the run's secret seed),
//            else a copy in the store (copy.h). The candidates after an
//            adopted entry are not compared here: link.cpp compares them
//            before linking anyway.
//   link     guest names to their entry (link.cpp: lease, freeze, compare,
//            exchange, writers).
//   protect  entries without the flag get it; the cache is saved; gc.
#include "unify/hashify.h"

#include "kernel/path.h"
#include "unify/copy.h"
#include "unify/passes.h"
#include "unify/store.h"
#include "unify/swap.h"
#include "unify/thaw.h"
#include "unify/unify.h"
#include "unify/workers.h"

#include <dirent.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <tbb/parallel_for.h>
#include <tbb/parallel_for_each.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <mutex>
#include <unordered_map>

namespace vu {

namespace {

int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// The store directory and its exclusive lock. In a dry run a store that
// does not exist yet stays so: `dir` is then closed and nothing is made.
struct OpenStore {
  std::string path;
  UniqueFd dir;
  UniqueFd lock;
  uint64_t dev = 0;
};

Result<OpenStore> open_store(const HashifyOptions& o) {
  if (o.store.empty()) return described_error(EINVAL, "no hash store given");
  OpenStore s;
  if (o.dry_run && !path_exists(o.store)) {
    s.path = o.store;
    return s;
  }
  if (::mkdir(o.store.c_str(), 0700) != 0 && errno != EEXIST)
    return errno_error("create hash store " + o.store);
  VU_TRY_ASSIGN(real, real_path(o.store));
  s.path = real;
  VU_TRY_ASSIGN(dir, open_directory(real));
  s.dir = std::move(dir);
  VU_TRY_ASSIGN(st, stat_fd(s.dir.get()));
  s.dev = st.dev;
  if (o.dry_run) return s; // reads only: no lock file made
  int lfd = ::openat(s.dir.get(), ".lock",
                     O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY, 0600);
  if (lfd < 0)
    return make_error(errno,
                      real + "/.lock (it must be a regular file; a symlink there is refused)");
  s.lock.reset(lfd);
  auto lst = stat_fd(lfd);
  if (!lst.ok() || !lst->is_regular())
    return described_error(EINVAL, real + "/.lock is not a regular file; remove it");
  if (::flock(lfd, LOCK_EX | LOCK_NB) != 0) {
    if (errno != EWOULDBLOCK) return errno_error("lock " + real);
    if (!o.wait_for_lock)
      return described_error(EWOULDBLOCK, "another run holds the lock of hash store " + real +
                                              "; try again when it ends");
    if (o.on_lock_wait) o.on_lock_wait("hash store " + real, "another run");
    while (::flock(lfd, LOCK_EX) != 0)
      if (errno != EINTR) return errno_error("lock " + real);
  }
  return s;
}

UnifyGuest store_guest(const OpenStore& s) {
  UnifyGuest g;
  g.guest = Guest{".hash", s.path, {}};
  g.role = GuestRole::reference;
  g.excludes = ExcludeList::parse("/.*\n", "store").value(); // .lock, .cache
  g.pkgmgmt = PkgmgmtUse::ignored;
  return g;
}

struct KeyGroup {
  std::vector<std::pair<uint32_t, uint32_t>> entries; // (n, inode)
  std::vector<uint32_t> candidates;                   // inodes
};

// A key's bucket, hashed under the run's secret seed: a guest chooses its
// files' content, and so their seed-0 hashes, never the buckets they fall
// in (no crafted pile-up in one bucket).
struct KeyHasher {
  uint64_t seed = 0;
  size_t operator()(const StoreKey& k) const {
    const uint64_t fields[5] = {k.hash.lo, k.hash.hi, (uint64_t(k.mode) << 32) | k.uid, k.gid,
                                k.xattrs};
    return hash_bytes(fields, sizeof fields, seed).lo;
  }
};
using KeyMap = std::unordered_map<StoreKey, KeyGroup, KeyHasher>;

// The state of one store run beside the run context.
struct StoreRun {
  const HashifyOptions& o;
  RunContext& rc;
  OpenStore& store;
  uint32_t store_idx; // the store pseudo-guest; == guests.size() when none
  HashCache cache{};
  KeyMap keys{}; // made with the run's seed (hashify_part)
  std::vector<uint32_t> need_hash{};
  std::vector<uint32_t> unprotected{}; // store entries without the flag
  // Every write to the store's file system gives a new ctime (ext4, XFS,
  // btrfs: writes_always_change_ctime).
  bool ctime_tells_writes = false;
  // Each candidate hashed in this run (not the cache hits): its hash under
  // the run's secret seed, and whether that read proves the content of
  // the version the scan saw (store_hash_pass). What proves an adopted
  // inode unchanged.
  struct Hashed {
    Hash128 secret;
    bool proven = false;
    Hash128 xattrs; // of the xattr blob, under the secret seed too
  };
  // Sorted by inode index (need_hash's order): a binary search over
  // contiguous records, where a std::map's lookups chased a pointer per
  // level (most of the match pass's own time).
  std::vector<std::pair<uint32_t, Hashed>> secret{};
  const Hashed* hashed(uint32_t inode) const {
    auto it = std::lower_bound(secret.begin(), secret.end(), inode,
                               [](const auto& e, uint32_t i) { return e.first < i; });
    return it != secret.end() && it->first == inode ? &it->second : nullptr;
  }
  // New entries: path and stat, with the candidates assigned to each; an
  // adopted entry is the guest inode `adopted` itself.
  struct NewEntry {
    std::string path;
    FileStat st;
    std::vector<uint32_t> candidates;
    std::optional<uint32_t> adopted;
    Hash128 xattrs; // fingerprint of its xattr list, as InodeRec::xattrs
  };
  std::vector<NewEntry> created{};
  std::map<uint32_t, std::vector<uint32_t>> to_existing{}; // entry inode -> candidates
  // The store's hh/ directories made or found so far, open (store_subdir).
  std::mutex subdirs_mutex{};
  std::map<std::string, UniqueFd> subdirs{};
};

// classify: store entries by key (from their names), names already linked
// to an entry, and candidates that need a key.
void classify_pass(StoreRun& sr) {
  PassTimer timer(sr.rc, "classify");
  RunContext& rc = sr.rc;
  for (uint32_t i = 0; i < rc.inodes.size(); ++i) {
    InodeRec& rec = rc.inodes[i];
    std::optional<std::pair<StoreKey, uint32_t>> entry;
    uint64_t guest_names = 0;
    for (uint32_t n : rc.names_of(rec)) {
      const FileRec& f = rc.scan.files[n];
      if (f.guest() == sr.store_idx) {
        if (!entry) entry = parse_store_entry(std::string(f.path));
      } else {
        ++guest_names;
      }
    }
    if (entry) {
      sr.keys[entry->first].entries.push_back({entry->second, i});
      rc.report.files_in_store += guest_names;
      if (!rec.frozen) sr.unprotected.push_back(i);
      continue;
    }
    if (guest_names == 0 || rec.config) continue;
    if (sr.store.dir.valid() && rec.st->dev != sr.store.dev) {
      rc.log.add(Failure::store, rc.display(rc.names_of(rec).front()),
                 "on another file system than the hash store " + sr.store.path);
      continue;
    }
    if (!rec.fully_seen) {
      rc.log.skip(Skip::partial);
      continue;
    }
    sr.need_hash.push_back(i);
  }
}

// True when nobody has fd's file open for writing right now: a read lease
// can be taken (it is given back at once).
bool no_writer_now(int fd) {
  auto lease = LeasedInode::take(fd);
  return lease.ok() && lease->guarded();
}

// hash: every candidate's key, from the cache or one read.
void store_hash_pass(StoreRun& sr) {
  PassTimer timer(sr.rc, "hash");
  RunContext& rc = sr.rc;
  rc.stage(ProgressStage::hash);
  const int64_t run_start = now_ns();
  std::vector<std::optional<StoreKey>> keys(sr.need_hash.size());
  std::vector<std::optional<StoreRun::Hashed>> secret(sr.need_hash.size());
  std::atomic<uint64_t> hashed{0}, hits{0};
  tbb::parallel_for(size_t(0), sr.need_hash.size(), [&](size_t k) {
    InodeRec& rec = rc.inodes[sr.need_hash[k]];
    StoreKey key;
    key.mode = rec.st->mode & 07777;
    key.uid = rec.st->uid;
    key.gid = rec.st->gid;
    if (auto cached = sr.cache.lookup(*rec.st, sr.o.cache_min_age_ns, run_start)) {
      key.hash = cached->hash;
      key.xattrs = cached->xattrs;
      hits.fetch_add(1, std::memory_order_relaxed);
    } else {
      auto fd = open_inode(rc, rec);
      if (!fd.ok()) {
        rec.failed = true;
        return;
      }
      auto blob = xattr_blob(fd->get());
      // Whether this read proves the content of the version the scan saw,
      // so that adopt_entry needs no second read: nobody had the file open
      // for writing just before the read (a read lease could be taken; a
      // writable mapping made earlier, whose writes leave the times alone,
      // would keep it open), and its ctime was already older than the
      // clock's granularity when the read began. Any writer that opens it
      // after that check changes the ctime with its first write, however it
      // writes, on these file systems, and adopt_entry sees the scan's ctime
      // under its lease, so there was none; one still open then (or whose
      // mapping is) keeps adopt_entry's lease from being taken. So no check
      // after the read is needed (it would cost two more fcntl calls a
      // file).
      const bool may_prove = sr.ctime_tells_writes && !sr.o.dry_run &&
                             rec.st->ctime_ns + sr.o.proof_min_age_ns <= now_ns();
      const bool writer_free_before = may_prove && no_writer_now(fd->get());
      uint64_t n = 0;
      // One read, two hashes: the key's (seed 0, stable store names) and
      // the run's secret one.
      auto h = blob.ok() ? hash_fd_twice(fd->get(), rec.st->size, 0, rc.seed, &n)
                         : Result<TwoHashes>(blob.error());
      const bool proven = writer_free_before && h.ok();
      hashed.fetch_add(1, std::memory_order_relaxed);
      rc.bytes_hashed.fetch_add(n, std::memory_order_relaxed);
      if (rc.options.progress)
        rc.options.progress->bytes_hashed.fetch_add(n, std::memory_order_relaxed);
      if (!h.ok() || n != rec.st->size) {
        if (!h.ok())
          rc.log.add(Failure::read, rc.display(rc.names_of(rec).front()), h.error().message());
        else
          rc.log.skip(Skip::changed);
        rec.failed = true;
        return;
      }
      key.hash = h->a;
      secret[k] = StoreRun::Hashed{h->b, proven, hash_bytes(blob->data(), blob->size(), rc.seed)};
      key.xattrs = xattr_name_hash(*blob);
      sr.cache.put(*rec.st, h->a, key.xattrs, now_ns());
    }
    if (sr.o.hash_hook) key.hash = sr.o.hash_hook(key.hash);
    if (sr.o.xattrs_hook) key.xattrs = sr.o.xattrs_hook(key.xattrs);
    keys[k] = key;
  });
  rc.report.files_hashed += hashed.load();
  rc.report.cache_hits += hits.load();
  sr.keys.reserve(sr.keys.size() + keys.size());
  sr.secret.reserve(keys.size());
  for (size_t k = 0; k < keys.size(); ++k)
    if (keys[k] && !rc.inodes[sr.need_hash[k]].failed) {
      sr.keys[*keys[k]].candidates.push_back(sr.need_hash[k]);
      if (secret[k]) sr.secret.emplace_back(sr.need_hash[k], *secret[k]); // in inode order
    }
}

// One entry slot of a key during the match pass.
struct Slot {
  uint32_t n;
  std::optional<uint32_t> inode; // an existing entry
  UniqueFd fd;
  std::string xattrs;
  std::string path; // a new entry's path in the store
  FileStat st;
  std::vector<uint32_t> assigned;
  std::optional<uint32_t> adopted; // the new entry is this candidate's inode
};

// The store's hh/ directory of a key, made when missing and opened once a
// run (at most 256 of them stay open until the match pass ends).
std::optional<int> store_subdir(StoreRun& sr, const StoreKey& key) {
  RunContext& rc = sr.rc;
  std::string hh = store_entry_name(key, 0).substr(0, 2);
  std::lock_guard lock(sr.subdirs_mutex);
  if (auto it = sr.subdirs.find(hh); it != sr.subdirs.end()) return it->second.get();
  if (::mkdirat(sr.store.dir.get(), hh.c_str(), 0700) != 0 && errno != EEXIST) {
    rc.log.add(Failure::store, sr.store.path + "/" + hh, std::strerror(errno));
    return std::nullopt;
  }
  auto sub = open_beneath(sr.store.dir.get(), hh, O_RDONLY | O_DIRECTORY);
  if (!sub.ok()) {
    rc.log.add(Failure::store, sr.store.path + "/" + hh, sub.error().message());
    return std::nullopt;
  }
  return sr.subdirs.emplace(hh, std::move(*sub)).first->second.get();
}

// Links `fd` into the store's directory `sub` under the key's next free
// collision index; the entry's path, or nullopt (logged).
std::optional<std::string> link_entry(StoreRun& sr, const StoreKey& key, uint32_t& next_n, int fd,
                                      int sub) {
  std::string path;
  Status linked = described_error(EEXIST, "");
  while (linked.code() == EEXIST && next_n < 1000000) {
    path = store_entry_name(key, next_n++);
    linked = link_fd(fd, sub, path.substr(3));
  }
  if (!linked.ok()) {
    sr.rc.log.add(Failure::store, sr.store.path + "/" + path, linked.error().message());
    return std::nullopt;
  }
  return path;
}

// A new entry that is candidate `ci`'s own inode (open as `fd`), instead of
// a copy: no bytes written, none read but the check. Under a read lease (no
// process has it open for writing, and one that tries waits): unchanged
// since the scan, linked into the store, frozen, then - unless the hash
// pass's read proved the content of this version (store_hash_pass) - read
// again: its hash under the run's secret seed must be the one the hash
// pass saw. No writer may have come. Anything else undoes it (store name removed,
// flag cleared) and returns nullopt: the caller makes a copy instead,
// unless `give_up` is set - the content is not what was hashed, or a
// process waits to write it - and the candidate is left alone.
std::optional<Slot> adopt_entry(StoreRun& sr, const StoreKey& key, uint32_t& next_n, uint32_t ci,
                                UniqueFd& fd, const std::string& blob,
                                std::atomic<uint64_t>& compared, bool& give_up) {
  RunContext& rc = sr.rc;
  const InodeRec& rec = rc.inodes[ci];
  const StoreRun::Hashed* secret = sr.hashed(ci);
  if (!secret || rec.frozen || !rec.member_only || !rec.fully_seen)
    return std::nullopt; // a cache hit (no secret hash), or already shared
  auto lease = LeasedInode::take(fd.get());
  if (!lease.ok() || !lease->guarded()) return std::nullopt; // open for writing, or no leases
  auto now = stat_fd(fd.get());
  if (!now.ok() || !now->same_version(*rec.st) || now->immutable) return std::nullopt;
  auto sub = store_subdir(sr, key);
  if (!sub) return std::nullopt;
  auto path = link_entry(sr, key, next_n, fd.get(), *sub);
  if (!path) return std::nullopt;
  const FileRec& f = rc.scan.files[rc.names_of(rec).front()];
  const bool freeze = rc.options.protect == Protect::immutable;
  bool ok = true;
  if (freeze) {
    auto p = rc.protect(fd.get(), f.guest(), std::string(f.path), Protection::on);
    if (!p.ok()) {
      rc.log.add(Failure::attr, rc.display(rc.names_of(rec).front()), p.error().message());
      ok = false;
    }
  }
  if (ok && !secret->proven) {
    uint64_t n = 0;
    auto h = hash_fd(fd.get(), rec.st->size, rc.seed, &n);
    compared.fetch_add(n, std::memory_order_relaxed);
    if (!h.ok() || n != rec.st->size || *h != secret->secret) {
      // Changed since it was hashed, without a new ctime (a write through
      // a mapping): a copy now would not hold what the key says either.
      rc.log.add(Failure::verify, rc.display(rc.names_of(rec).front()),
                 "its content changed after it was hashed; left alone");
      ok = false;
      give_up = true;
    }
  }
  // Frozen, it shows what its names will: the scan's mode, owner and
  // times and the xattrs read for its key. A lease keeps writers out, not
  // chmod, chown or setxattr before the freeze. This stat is the entry's.
  std::optional<FileStat> entry_st;
  if (ok) {
    auto frozen = stat_fd(fd.get());
    auto xattrs = xattr_blob(fd.get());
    if (!frozen.ok() || !frozen->same_metadata(*rec.st) || !xattrs.ok() || *xattrs != blob) {
      rc.log.skip(Skip::changed);
      ok = false;
      give_up = true;
    } else {
      entry_st = *frozen;
    }
  }
  if (ok && lease->writer_seen()) {
    rc.log.skip(Skip::busy, rc.display(rc.names_of(rec).front()),
                "a process opened it for writing: left alone");
    ok = false; // it stays the guest's own
    give_up = true;
  }
  if (!ok) { // thawed first: an immutable inode's names cannot be removed
    if (freeze) (void)rc.protect(fd.get(), f.guest(), std::string(f.path), Protection::off);
    auto u = unlink_at(*sub, path->substr(3));
    if (!u.ok()) rc.log.add(Failure::unlink, sr.store.path + "/" + *path, u.error().message());
    return std::nullopt;
  }
  lease->release();
  return Slot{next_n - 1, std::nullopt, std::move(fd), blob, *path, *entry_st, {}, ci};
}

// A new entry for candidate `rec` (open as `fd`): a copy only this tool
// can reach until it is linked into the store under the next free index.
std::optional<Slot> new_entry(StoreRun& sr, const StoreKey& key, uint32_t& next_n,
                              const InodeRec& rec, int fd, const std::string& blob,
                              std::atomic<uint64_t>& compared) {
  RunContext& rc = sr.rc;
  auto sub = store_subdir(sr, key);
  if (!sub) return std::nullopt;
  uint64_t copied = 0;
  auto copy = make_private_copy(fd, *sub, rec.st->size, copied);
  compared.fetch_add(2 * rec.st->size, std::memory_order_relaxed);
  if (!copy.ok()) {
    if (copy.code() == ESTALE)
      rc.log.skip(Skip::changed);
    else
      rc.log.add(Failure::read, rc.display(rc.names_of(rec).front()), copy.error().message());
    return std::nullopt;
  }
  // The copy took the candidate's metadata as it was then: the scan's, or
  // the candidate changed since (and the copy is not what its key says).
  auto made = stat_fd(copy->get());
  auto xattrs = xattr_blob(copy->get());
  if (!made.ok() || !made->same_metadata(*rec.st) || !xattrs.ok() || *xattrs != blob) {
    rc.log.skip(Skip::changed);
    return std::nullopt;
  }
  auto path = link_entry(sr, key, next_n, copy->get(), *sub);
  if (!path) return std::nullopt;
  auto st = stat_fd(copy->get());
  if (!st.ok()) return std::nullopt;
  return Slot{next_n - 1, std::nullopt, std::move(*copy), blob, *path, *st, {}, std::nullopt};
}

// Assigns candidate ci to the slot of an inode adopted this run that its
// secret-seed content and xattr hashes (and mtime, unless ignored) match;
// false when there is none, or ci was not hashed this run.
bool join_by_secret(StoreRun& sr, std::vector<Slot>& slots, uint32_t ci, bool mtime) {
  const StoreRun::Hashed* mine = sr.hashed(ci);
  if (!mine) return false;
  const FileStat& st = *sr.rc.inodes[ci].st;
  for (auto& s : slots) {
    if (!s.adopted || (mtime && s.st.mtime_ns != st.mtime_ns)) continue;
    const StoreRun::Hashed& theirs = *sr.hashed(*s.adopted);
    if (theirs.secret == mine->secret && theirs.xattrs == mine->xattrs) {
      s.assigned.push_back(ci);
      return true;
    }
  }
  return false;
}

// match: per key, the candidates against the key's entries (bytes,
// xattrs, mtime unless ignored); new entries as copies.
void match_pass(StoreRun& sr) {
  PassTimer timer(sr.rc, "match");
  RunContext& rc = sr.rc;
  std::vector<KeyMap::value_type*> work;
  for (auto& kv : sr.keys)
    if (!kv.second.candidates.empty()) work.push_back(&kv);
  std::mutex mutex;
  std::atomic<uint64_t> compared{0};
  const bool mtime = !rc.options.ignore_mtime;
  tbb::parallel_for_each(work.begin(), work.end(), [&](KeyMap::value_type* kv) {
    const StoreKey& key = kv->first;
    KeyGroup& grp = kv->second;
    std::sort(grp.entries.begin(), grp.entries.end());
    std::sort(grp.candidates.begin(), grp.candidates.end(), [&](uint32_t a, uint32_t b) {
      const FileRec& x = rc.scan.files[rc.names_of(rc.inodes[a]).front()];
      const FileRec& y = rc.scan.files[rc.names_of(rc.inodes[b]).front()];
      return std::pair(x.guest(), x.path) < std::pair(y.guest(), y.path);
    });
    std::vector<Slot> slots;
    for (auto& [n, idx] : grp.entries) {
      auto fd = open_inode(rc, rc.inodes[idx]);
      if (!fd.ok()) continue;
      auto blob = xattr_blob(fd->get());
      if (!blob.ok()) continue;
      // What link.cpp checks the entry against once it is frozen for links.
      rc.inodes[idx].xattrs = hash_bytes(blob->data(), blob->size(), rc.seed);
      slots.push_back(
          Slot{n, idx, std::move(*fd), *blob, {}, *rc.inodes[idx].st, {}, std::nullopt});
    }
    uint32_t next_n = grp.entries.empty() ? 0 : grp.entries.back().first + 1;
    for (uint32_t ci : grp.candidates) {
      const InodeRec& rec = rc.inodes[ci];
      // A key new to the store (a first run's every key): a candidate
      // hashed this run joins an entry adopted this run when the secret
      // seed's hashes of their content and xattrs and their mtimes agree -
      // what vunify's grouping trusts too - without being opened here;
      // link.cpp compares the bytes under a lease before it links.
      if (grp.entries.empty() && join_by_secret(sr, slots, ci, mtime)) continue;
      auto fd = open_inode(rc, rec);
      if (!fd.ok()) continue;
      auto blob = xattr_blob(fd->get());
      if (!blob.ok()) {
        rc.log.add(Failure::xattr, rc.display(rc.names_of(rec).front()), blob.error().message());
        continue;
      }
      bool placed = false;
      for (auto& s : slots) {
        if (s.xattrs != *blob || (mtime && s.st.mtime_ns != rec.st->mtime_ns)) continue;
        if (s.adopted) {
          // Both hashed this run: their secret-seed hashes decide, and
          // link.cpp compares the bytes before linking.
          if (const StoreRun::Hashed* mine = sr.hashed(ci)) {
            if (mine->secret != sr.hashed(*s.adopted)->secret) continue;
            s.assigned.push_back(ci);
            placed = true;
            break;
          }
        }
        auto eq = same_content(s.fd.get(), fd->get(), rec.st->size);
        compared.fetch_add(2 * rec.st->size, std::memory_order_relaxed);
        if (eq.ok() && *eq) {
          s.assigned.push_back(ci);
          placed = true;
          break;
        }
      }
      if (placed) continue;
      if (rc.options.dry_run) {
        slots.push_back(
            Slot{next_n++, std::nullopt, std::move(*fd), *blob, {}, *rec.st, {ci}, std::nullopt});
        continue;
      }
      bool give_up = false;
      if (auto own = adopt_entry(sr, key, next_n, ci, *fd, *blob, compared, give_up)) {
        slots.push_back(std::move(*own));
        continue;
      }
      if (give_up) continue;
      auto slot = new_entry(sr, key, next_n, rec, fd->get(), *blob, compared);
      if (!slot) continue;
      slot->assigned.push_back(ci);
      slots.push_back(std::move(*slot));
    }
    std::lock_guard lock(mutex);
    for (auto& s : slots) {
      if (s.assigned.empty() && !s.adopted) continue;
      if (s.inode)
        sr.to_existing[*s.inode] = s.assigned;
      else
        sr.created.push_back({s.path, s.st, s.assigned, s.adopted,
                              hash_bytes(s.xattrs.data(), s.xattrs.size(), rc.seed)});
    }
  });
  rc.report.bytes_compared += compared.load();
  // Up to 256 descriptors the link pass's share of the limit (FdBudget)
  // does not count: only this pass makes entries.
  sr.subdirs.clear();
}

// A dry run's result: what would be linked and saved.
void count_store_plan(StoreRun& sr) {
  Report& r = sr.rc.report;
  const auto& inodes = sr.rc.inodes;
  for (auto& [entry, cs] : sr.to_existing)
    for (uint32_t c : cs) {
      r.files_linked += sr.rc.names_of(inodes[c]).size();
      r.bytes_saved += allocated_bytes(*inodes[c].st);
    }
  for (auto& e : sr.created) {
    for (uint32_t c : e.candidates) r.files_linked += sr.rc.names_of(inodes[c]).size();
    for (size_t k = 1; k < e.candidates.size(); ++k)
      r.bytes_saved += allocated_bytes(*inodes[e.candidates[k]].st);
  }
  r.duplicate_groups = sr.to_existing.size() + sr.created.size();
}

// The groups for link.cpp: each entry (new ones become records of the
// store pseudo-guest) first, its candidates after it.
void store_groups(StoreRun& sr) {
  RunContext& rc = sr.rc;
  std::sort(sr.created.begin(), sr.created.end(),
            [](const auto& a, const auto& b) { return a.path < b.path; });
  rc.groups.clear();
  for (auto& e : sr.created) {
    rc.scan.files.push_back(FileRec{sr.store_idx, rc.scan.paths.add(e.path), e.st});
    ++rc.report.store_entries_created;
    if (e.adopted) {
      // The guest inode is the entry: its store name joins its names (the
      // relocation of writers must move it too), and it is frozen.
      InodeRec& rec = rc.inodes[*e.adopted];
      auto old = rc.names_of(rec);
      std::vector<uint32_t> names(old.begin(), old.end());
      names.push_back(static_cast<uint32_t>(rc.scan.files.size() - 1));
      rc.set_names(rec, names);
      rec.st = &rc.scan.files.back().st; // e.st, as the store's record has it
      rec.xattrs = e.xattrs;
      rec.frozen = rc.options.protect == Protect::immutable;
      rc.files_linked.fetch_add(names.size() - 1, std::memory_order_relaxed); // now in the store
      if (e.candidates.empty()) continue;
      Group g;
      g.inodes.push_back(*e.adopted);
      g.inodes.insert(g.inodes.end(), e.candidates.begin(), e.candidates.end());
      rc.groups.push_back(std::move(g));
      continue;
    }
    InodeRec rec;
    rec.st = &rc.scan.files.back().st;
    const uint32_t store_name = static_cast<uint32_t>(rc.scan.files.size() - 1);
    rc.set_names(rec, std::span<const uint32_t>(&store_name, 1));
    rec.fully_seen = true;
    rec.member_only = false;
    rec.xattrs = e.xattrs;
    rc.inodes.push_back(std::move(rec));
    Group g;
    g.inodes.push_back(static_cast<uint32_t>(rc.inodes.size() - 1));
    g.inodes.insert(g.inodes.end(), e.candidates.begin(), e.candidates.end());
    rc.groups.push_back(std::move(g));
  }
  for (auto& [entry, cs] : sr.to_existing) {
    Group g;
    g.inodes.push_back(entry);
    g.inodes.insert(g.inodes.end(), cs.begin(), cs.end());
    rc.groups.push_back(std::move(g));
  }
  rc.report.duplicate_groups = rc.groups.size();
}

// An entry found without the flag (a run killed between adopting a guest
// inode and freezing it, or a guest root that cleared the flag) may have
// been written since: under a read lease, its content must still hash to
// its name. One that does not loses its store name. True when it matches.
bool entry_matches_name(StoreRun& sr, const InodeRec& rec, int fd) {
  RunContext& rc = sr.rc;
  for (uint32_t n : rc.names_of(rec)) {
    const FileRec& f = rc.scan.files[n];
    if (f.guest() != sr.store_idx) continue;
    const std::string path(f.path);
    auto key = parse_store_entry(path);
    if (!key) return true;
    uint64_t got = 0;
    auto h = hash_fd(fd, rec.st->size, 0, &got);
    rc.bytes_compared.fetch_add(got, std::memory_order_relaxed);
    if (h.ok() && got == rec.st->size && *h == key->first.hash) return true;
    auto dir = open_beneath(sr.store.dir.get(), parent_of(path), O_RDONLY | O_DIRECTORY);
    auto u = dir.ok() ? unlink_at(dir->get(), name_of(path)) : Status(dir.error());
    rc.log.add(u.ok() ? Failure::store : Failure::unlink, sr.store.path + "/" + path,
               u.ok() ? "its content no longer matched its name (written while unprotected); "
                        "removed from the store"
                      : u.error().message());
    return false;
  }
  return true;
}

// protect: every store entry carries the flag (a guest's root with
// CAP_LINUX_IMMUTABLE may have cleared it through its own name) - after
// its content is checked against its name.
void protect_entries(StoreRun& sr) {
  RunContext& rc = sr.rc;
  if (rc.options.protect != Protect::immutable) return;
  for (uint32_t i : sr.unprotected) {
    const InodeRec& rec = rc.inodes[i];
    auto fd = open_inode(rc, rec);
    if (!fd.ok()) continue;
    if (rc.is_protected(fd->get()).value_or(false)) continue; // frozen by link_group
    auto lease = LeasedInode::take(fd->get());
    if (!lease.ok()) {
      rc.log.skip(Skip::busy, rc.display(rc.names_of(rec).front()),
                  "a store entry open for writing: left unprotected until the next run");
      continue;
    }
    if (!entry_matches_name(sr, rec, fd->get())) continue;
    const FileRec& f = rc.scan.files[rc.names_of(rec).front()];
    auto p = rc.protect(fd->get(), f.guest(), std::string(f.path), Protection::on);
    if (!p.ok())
      rc.log.add(Failure::attr, rc.display(rc.names_of(rec).front()), p.error().message());
    else
      rc.inodes_protected.fetch_add(1, std::memory_order_relaxed);
  }
}

} // namespace

Status check_store_place(const std::string& store, const std::vector<UnifyGuest>& guests,
                         const std::vector<Guest>& other_guests) {
  // Where the store is or will be: an existing store by its real path, a
  // new one by its parent's real path.
  std::string place;
  struct stat st {};
  if (::lstat(store.c_str(), &st) == 0) {
    VU_TRY_ASSIGN(real, real_path(store));
    if (::stat(real.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
      return described_error(ENOTDIR, "hash store " + store + " is not a directory");
    place = real;
  } else {
    std::string s = store;
    while (s.size() > 1 && s.back() == '/') s.pop_back();
    auto slash = s.rfind('/');
    std::string parent = slash == std::string::npos ? "." : (slash == 0 ? "/" : s.substr(0, slash));
    auto real = real_path(parent);
    if (!real.ok())
      return make_error(real.code(), "hash store " + store + ": its directory " + parent);
    if (::stat(real->c_str(), &st) != 0) return errno_error("stat " + *real);
    place = (*real == "/" ? "" : *real) + "/" + s.substr(slash + 1);
  }
  const uint64_t dev = st.st_dev;
  auto inside = [&](const std::string& root, const std::string& name) -> Status {
    if (path_within(place, root))
      return described_error(EINVAL, "hash store " + place + " lies inside guest '" + name + "' (" +
                                         root +
                                         "), which could read and change it; "
                                         "choose a directory outside every guest root");
    if (path_within(root, place))
      return described_error(EINVAL, "guest '" + name + "' (" + root + ") lies inside hash store " +
                                         place + "; choose a store outside every guest root");
    return {};
  };
  for (const auto& g : guests) {
    VU_TRY(inside(g.guest.root, g.guest.name));
    struct stat gs {};
    if (::stat(g.guest.root.c_str(), &gs) != 0) return errno_error("stat " + g.guest.root);
    if (static_cast<uint64_t>(gs.st_dev) != dev)
      return described_error(EXDEV, "hash store " + place +
                                        " is on another file system than guest '" + g.guest.name +
                                        "' (" + g.guest.root +
                                        "); hard links cannot cross file systems: use a store on "
                                        "that file system");
  }
  for (const auto& g : other_guests) VU_TRY(inside(g.root, g.name));
  return {};
}

namespace {

// One store run over the sizes o.range_lo..o.range_hi (all of them unless
// the run is made of size ranges); the store is open and locked.
Result<Report> hashify_part(const std::vector<UnifyGuest>& guests, const HashifyOptions& o,
                            OpenStore& store) {
  std::vector<UnifyGuest> all = guests;
  for (auto& g : all) g.role = GuestRole::member;
  if (store.dir.valid()) all.push_back(store_guest(store));
  RunOptions ro = o;
  ro.lock_holder = "vhashify";
  VU_TRY_ASSIGN(rc, RunContext::open(std::move(all), ro));
  StoreRun sr{.o = o,
              .rc = *rc,
              .store = store,
              .store_idx = static_cast<uint32_t>(guests.size()),
              .keys = KeyMap(0, KeyHasher{rc->seed})};
  if (store.dir.valid()) sr.ctime_tells_writes = writes_always_change_ctime(store.dir.get());
  const std::string cache_path = store.path + "/.cache";
  // A dry run creates nothing (no store, lock or cache); it refreshes a
  // cache that is there.
  const bool save_cache = !o.dry_run || (store.dir.valid() && path_exists(cache_path));

  ConfigFiles config = resolve_config_files(*rc);
  scan_pass(*rc, config, content_scan_options(o));
  // More files than the memory limit allows: the caller runs in ranges.
  if (o.budget && o.budget->overflow) return Report{};
  // The cache entries of this run's sizes (after the walk, which may have
  // found too many files for one run).
  if (!o.refresh && store.dir.valid()) sr.cache.load(cache_path, o.range_lo, o.range_hi);
  inodes_pass(*rc, config);
  // The store's own entries are not guest files.
  for (const auto& f : rc->scan.files)
    if (f.guest() == sr.store_idx) {
      --rc->report.files_scanned;
      rc->report.bytes_scanned -= f.st.size;
    }
  rc->report.guests.resize(guests.size()); // the store is no guest of the report
  classify_pass(sr);
  store_hash_pass(sr);
  match_pass(sr);
  if (o.dry_run) {
    count_store_plan(sr);
  } else {
    store_groups(sr);
    link_pass(*rc);
    protect_entries(sr);
    // Net: the guests' freed inodes minus the store copies made for them.
    uint64_t copies = 0;
    for (const auto& e : sr.created)
      if (!e.adopted) copies += allocated_bytes(e.st);
    uint64_t freed = rc->bytes_saved.exchange(0);
    rc->report.bytes_saved += freed > copies ? freed - copies : 0;
  }
  if (save_cache && store.dir.valid() && (sr.cache.dirty() || o.refresh)) {
    auto saved = sr.cache.save(cache_path, now_ns(), o.range_lo, o.range_hi);
    if (!saved.ok()) rc->log.add(Failure::cache, cache_path, saved.error().message());
  }
  return rc->finish(); // the guests' locks go with rc, before a collection takes the store's
}

// Per-file records and the store run's own (cache entry, hashes, keys):
// what one file costs a store run in memory, for --memory-limit (measured
// 450-580 bytes of peak RSS a file).
constexpr uint64_t k_store_bytes_per_file = k_bytes_per_file + 400;

Result<Report> hashify_on_workers(const std::vector<UnifyGuest>& guests, const HashifyOptions& o) {
  VU_TRY(check_store_place(o.store, guests, o.other_guests));
  VU_TRY_ASSIGN(store, open_store(o));
  Report report;
  if (o.memory_limit == 0) {
    VU_TRY_ASSIGN(r, hashify_part(guests, o, store));
    report = std::move(r);
  } else {
    VU_TRY_ASSIGN(r, run_in_parts(o.memory_limit, k_store_bytes_per_file, [&](const RunPart& p) {
                    HashifyOptions part = o;
                    p.apply(part);
                    return hashify_part(guests, part, store);
                  }));
    report = std::move(r);
  }
  if (o.gc && !o.dry_run) {
    store.lock.reset(); // run_store_gc takes the lock itself
    auto gc = run_store_gc(o);
    if (gc.ok()) {
      report.store_entries_removed = gc->store_entries_removed;
      report.temporaries_removed += gc->temporaries_removed;
      merge_failures(report, *gc);
    }
  }
  return report;
}

Result<Report> store_gc_on_workers(const HashifyOptions& o) {
  VU_TRY_ASSIGN(store, open_store(o));
  if (!store.dir.valid()) return Report{};
  RunOptions ro = o;
  ro.lock_holder = "vhashify --gc";
  VU_TRY_ASSIGN(rc, RunContext::open({store_guest(store)}, ro));
  ScanOptions scan;
  scan.min_size = 0;
  scan_pass(*rc, {}, scan);
  inodes_pass(*rc, {});
  if (!o.dry_run) rc->report.temporaries_removed = remove_temporaries(*rc);
  for (const auto& f : rc->scan.files) {
    const std::string path(f.path);
    if (!parse_store_entry(path) || f.st.nlink > 1) continue;
    if (o.dry_run) {
      ++rc->report.store_entries_removed;
      continue;
    }
    auto dir = open_beneath(rc->roots[0].get(), parent_of(path), O_RDONLY | O_DIRECTORY);
    if (!dir.ok()) continue;
    auto fd = open_file_for_read(dir->get(), name_of(path));
    if (!fd.ok()) continue;
    auto st = stat_fd(fd->get());
    // Only the store's own link is left, and it is the entry we saw.
    if (!st.ok() || st->ino != f.st.ino || st->nlink != 1) continue;
    if (st->immutable) (void)set_immutable(fd->get(), Protection::off);
    auto u = unlink_at(dir->get(), name_of(path));
    if (u.ok())
      ++rc->report.store_entries_removed;
    else
      rc->log.add(Failure::unlink, store.path + "/" + path, u.error().message());
  }
  // Empty hash directories.
  auto entries = read_directory(rc->roots[0].get());
  if (entries.ok())
    for (const auto& e : *entries)
      if (e.type == DT_DIR && e.name.size() == 2)
        (void)::unlinkat(rc->roots[0].get(), e.name.c_str(), AT_REMOVEDIR);
  Report r = rc->finish();
  r.guests.clear();
  return r;
}

} // namespace

Result<Report> run_hashify(const std::vector<UnifyGuest>& guests, const HashifyOptions& o) {
  return with_workers(o.threads, [&]() -> Result<Report> { return hashify_on_workers(guests, o); });
}

Result<Report> run_store_gc(const HashifyOptions& o) {
  return with_workers(o.threads, [&]() -> Result<Report> { return store_gc_on_workers(o); });
}

} // namespace vu
