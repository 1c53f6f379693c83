// The store run.
//
//   lock     flock on <store>/.lock: runs on one store never interleave.
//   scan     the guests and the store (as a reference pseudo-guest) in one
//            parallel walk; store entries are known by name, so an inode
//            that already has a store name costs its one statx and nothing
//            else.
//   hash     every other eligible inode: from the cache when (dev, ino,
//            size, mtime, ctime) match and the entry passed the age guard,
//            else read once (XXH3-128, seed 0, plus the xattr list).
//   match    per store key, compare each candidate byte for byte (and its
//            xattrs) with the key's entries; no match: a new entry is made
//            as a copy in the store (O_TMPFILE, then linkat under the next
//            collision index), compared again with the candidate.
//   link     guest names to their entry with link.cpp (freeze, compare,
//            exchange, verify).
//   cache    saved atomically; gc on request.
#include "unify/hashify.h"
#include "unify/workers.h"

#include "unify/plan.h"
#include "unify/store.h"

#include <dirent.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <tbb/parallel_for_each.h>
#include <unistd.h>

#include <algorithm>
#include <deque>
#include <chrono>
#include <map>
#include <mutex>
#include <random>
#include <thread>

namespace vu {

namespace {

int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// The store directory, created if missing, and its exclusive lock.
struct OpenStore {
  std::string path;
  UniqueFd dir;
  UniqueFd lock;
  uint64_t dev = 0;
};

Result<OpenStore> open_store(const HashifyOptions& o, const std::vector<UnifyGuest>& guests) {
  if (o.store.empty()) return described_error(EINVAL, "no hash store given");
  VU_TRY(check_store_place(o.store, guests, o.other_guest_roots));
  if (::mkdir(o.store.c_str(), 0700) != 0 && errno != EEXIST)
    return errno_error("create hash store " + o.store);
  OpenStore s;
  VU_TRY_ASSIGN(real, real_path(o.store));
  s.path = real;
  VU_TRY_ASSIGN(dir, open_directory(real));
  s.dir = std::move(dir);
  VU_TRY_ASSIGN(st, stat_fd(s.dir.get()));
  s.dev = st.dev;
  int lfd = ::openat(s.dir.get(), ".lock",
                     O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY, 0600);
  if (lfd < 0) return errno_error("open " + real + "/.lock");
  s.lock.reset(lfd);
  auto lst = stat_fd(lfd);
  if (!lst.ok() || !lst->is_regular())
    return described_error(EINVAL, real + "/.lock is not a regular file; remove it");
  if (::flock(lfd, LOCK_EX | LOCK_NB) != 0) {
    if (errno != EWOULDBLOCK) return errno_error("lock " + real);
    if (!o.wait_for_lock)
      return described_error(EWOULDBLOCK, "another run holds the lock of hash store " + real);
    if (o.on_lock_wait) o.on_lock_wait();
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
  return g;
}

struct Candidate {
  uint32_t inode;
  StoreKey key;
};

struct KeyGroup {
  std::vector<std::pair<uint32_t, uint32_t>> entries; // (n, inode)
  std::vector<uint32_t> candidates;                   // inodes
};

} // namespace

Status check_store_place(const std::string& store, const std::vector<UnifyGuest>& guests,
                         const std::vector<std::string>& other_roots) {
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
      return described_error(EINVAL, "hash store " + place + " lies inside guest '" + name +
                                         "' (" + root + "), which could read and change it; "
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
      return described_error(EXDEV, "hash store " + place + " is on another file system than guest '" +
                                        g.guest.name + "' (" + g.guest.root +
                                        "); hard links cannot cross file systems: use a store on "
                                        "that file system");
  }
  for (const auto& root : other_roots) VU_TRY(inside(root, root.substr(root.rfind('/') + 1)));
  return {};
}

static Result<Report> hashify_on_workers(const std::vector<UnifyGuest>& guests, const HashifyOptions& o) {
  auto start = std::chrono::steady_clock::now();
  Report report;
  report.dry_run = o.dry_run;
  for (const auto& g : guests)
    report.guests.push_back({g.guest.name, g.guest.root, "member", g.pkgmgmt,
                             g.config_files.size(), g.config_sources});

  VU_TRY_ASSIGN(store, open_store(o, guests));
  HashCache cache;
  const int64_t run_start_ns = now_ns();
  const std::string cache_path = store.path + "/.cache";
  if (!o.refresh) cache.load(cache_path);

  std::vector<UnifyGuest> all = guests;
  for (auto& g : all) g.role = GuestRole::member;
  all.push_back(store_guest(store));
  const uint32_t store_idx = static_cast<uint32_t>(guests.size());
  std::vector<UniqueFd> roots;
  for (const auto& g : all) {
    VU_TRY_ASSIGN(fd, open_directory(g.guest.root));
    roots.push_back(std::move(fd));
  }
  FailureLog log;
  UnifyOptions uo;
  uo.dry_run = o.dry_run;
  uo.protect = o.protect;
  uo.min_size = o.min_size;
  uo.log_actions = o.log_actions;
  uo.progress = o.progress;

  std::vector<std::vector<std::string>> config_paths;
  std::set<std::pair<uint64_t, uint64_t>> config_inodes;
  resolve_config_files(all, roots, config_paths, config_inodes);
  ScanOptions so;
  so.min_size = o.min_size;
  so.skip_secrets = true;
  so.progress = o.progress;
  ScanResult scan = scan_guests(all, roots, config_paths, so, report, log);
  std::vector<uint32_t> inode_names;
  std::deque<uint32_t> store_names; // names of entries created below (stable addresses)
  std::vector<InodeRec> inodes = build_inodes(all, scan, config_inodes, report, inode_names);
  // The store's own entries are not guest files.
  for (const auto& f : scan.files)
    if (f.guest == store_idx) {
      --report.files_scanned;
      report.bytes_scanned -= f.st.size;
    }
  auto attrs = detect_attr_backend();
  RunState rs{all, roots, uo, scan, inodes, 0, log, *attrs};
  // The post-link check in link.cpp hashes with rs.seed; a per-run secret
  // seed keeps that check collision-proof against guests.
  {
    std::random_device rd;
    rs.seed = (static_cast<uint64_t>(rd()) << 32) ^ rd();
  }

  // Classify: store entries (by name), names already in the store, and
  // candidates that need a hash.
  std::map<StoreKey, KeyGroup> keys;
  std::vector<uint32_t> need_hash;
  std::vector<uint32_t> unprotected; // store entries without the flag
  for (uint32_t i = 0; i < inodes.size(); ++i) {
    InodeRec& rec = inodes[i];
    std::optional<std::pair<StoreKey, uint32_t>> entry;
    uint64_t guest_names = 0;
    for (uint32_t n : rec.names) {
      const FileRec& f = scan.files[n];
      if (f.guest == store_idx) {
        if (!entry) entry = parse_store_entry(f.path);
      } else {
        ++guest_names;
      }
    }
    if (entry) {
      keys[entry->first].entries.push_back({entry->second, i});
      report.files_in_store += guest_names;
      if (!rec.immutable) unprotected.push_back(i);
      continue;
    }
    if (guest_names == 0 || rec.config) continue;
    if (rec.st.dev != store.dev) {
      log.add(Failure::store, rs.display(rec.names.front()),
              "on another file system than the hash store " + store.path);
      continue;
    }
    if (!rec.fully_seen) {
      log.skip(Skip::partial);
      continue;
    }
    need_hash.push_back(i);
  }

  // hash: cache or one read per candidate.
  std::vector<Candidate> cands(need_hash.size());
  std::atomic<uint64_t> hashed{0}, hashed_bytes{0}, hits{0};
  tbb::parallel_for(size_t(0), need_hash.size(), [&](size_t k) {
    uint32_t i = need_hash[k];
    InodeRec& rec = inodes[i];
    Candidate c{i, {}};
    c.key.mode = rec.st.mode & 07777;
    c.key.uid = rec.st.uid;
    c.key.gid = rec.st.gid;
    auto cached = cache.lookup(rec.st, o.cache_min_age_ns, run_start_ns);
    if (cached) {
      c.key.hash = cached->hash;
      c.key.xattrs = cached->xattrs;
      hits.fetch_add(1, std::memory_order_relaxed);
    } else {
      auto fd = open_inode(rs, rec);
      if (!fd.ok()) {
        rec.failed = true;
        return;
      }
      auto blob = xattr_blob(fd->get());
      uint64_t n = 0;
      auto h = blob.ok() ? hash_fd(fd->get(), rec.st.size, 0, &n) : Result<Hash128>(blob.error());
      hashed.fetch_add(1, std::memory_order_relaxed);
      hashed_bytes.fetch_add(n, std::memory_order_relaxed);
      if (o.progress) o.progress->bytes_hashed.fetch_add(n, std::memory_order_relaxed);
      if (!h.ok() || n != rec.st.size) {
        if (!h.ok()) log.add(Failure::read, rs.display(rec.names.front()), h.error().message());
        else log.skip(Skip::changed);
        rec.failed = true;
        return;
      }
      c.key.hash = *h;
      c.key.xattrs = xattr_name_hash(*blob);
      cache.put(rec.st, *h, c.key.xattrs, now_ns());
    }
    if (o.hash_hook) c.key.hash = o.hash_hook(c.key.hash);
    cands[k] = c;
  });
  report.files_hashed = hashed;
  report.bytes_hashed = hashed_bytes;
  report.cache_hits = hits;
  for (const auto& c : cands)
    if (!inodes[c.inode].failed) keys[c.key].candidates.push_back(c.inode);

  // match: candidates against the key's entries; new entries as copies.
  std::vector<std::pair<const StoreKey, KeyGroup>*> work;
  for (auto& kv : keys)
    if (!kv.second.candidates.empty()) work.push_back(&kv);
  struct NewEntry {
    std::string path;
    FileStat st;
  };
  std::mutex new_mutex;
  std::vector<std::pair<NewEntry, std::vector<uint32_t>>> created; // entry, its candidates
  std::map<uint32_t, std::vector<uint32_t>> to_existing;          // entry inode -> candidates
  std::atomic<uint64_t> compared_bytes{0};
  tbb::parallel_for_each(work.begin(), work.end(), [&](std::pair<const StoreKey, KeyGroup>* kv) {
    const StoreKey& key = kv->first;
    KeyGroup& grp = kv->second;
    std::sort(grp.entries.begin(), grp.entries.end());
    std::sort(grp.candidates.begin(), grp.candidates.end(), [&](uint32_t a, uint32_t b) {
      const FileRec& x = scan.files[inodes[a].names.front()];
      const FileRec& y = scan.files[inodes[b].names.front()];
      return std::tie(x.guest, x.path) < std::tie(y.guest, y.path);
    });
    // Entries of this key: existing (inode index) or made in this run
    // (descriptor of the copy), with the candidates assigned to each.
    struct Slot {
      uint32_t n;
      std::optional<uint32_t> inode;
      UniqueFd fd;
      std::string xattrs;
      std::string path;
      FileStat st;
      std::vector<uint32_t> assigned;
    };
    std::vector<Slot> slots;
    for (auto& [n, idx] : grp.entries) {
      Slot s{n, idx, {}, {}, {}, {}, {}};
      auto fd = open_inode(rs, inodes[idx]);
      if (!fd.ok()) continue;
      auto blob = xattr_blob(fd->get());
      if (!blob.ok()) continue;
      s.fd = std::move(*fd);
      s.xattrs = *blob;
      slots.push_back(std::move(s));
    }
    uint32_t next_n = grp.entries.empty() ? 0 : grp.entries.back().first + 1;
    for (uint32_t ci : grp.candidates) {
      InodeRec& rec = inodes[ci];
      auto fd = open_inode(rs, rec);
      if (!fd.ok()) continue;
      auto blob = xattr_blob(fd->get());
      if (!blob.ok()) {
        log.add(Failure::xattr, rs.display(rec.names.front()), blob.error().message());
        continue;
      }
      bool placed = false;
      for (auto& s : slots) {
        if (s.xattrs != *blob) continue;
        auto eq = same_content(s.fd.get(), fd->get(), rec.st.size);
        compared_bytes.fetch_add(2 * rec.st.size, std::memory_order_relaxed);
        if (eq.ok() && *eq) {
          s.assigned.push_back(ci);
          placed = true;
          break;
        }
      }
      if (placed) continue;
      if (o.dry_run) {
        Slot s{next_n++, std::nullopt, std::move(*fd), *blob, {}, rec.st, {}};
        s.assigned.push_back(ci);
        slots.push_back(std::move(s));
        continue;
      }
      // A new entry: a copy only this tool can reach until it is linked.
      std::string hh = store_entry_name(key, 0).substr(0, 2);
      if (::mkdirat(store.dir.get(), hh.c_str(), 0700) != 0 && errno != EEXIST) {
        log.add(Failure::store, store.path + "/" + hh, std::strerror(errno));
        continue;
      }
      auto sub = open_beneath(store.dir.get(), hh, O_RDONLY | O_DIRECTORY);
      if (!sub.ok()) {
        log.add(Failure::open, store.path + "/" + hh, sub.error().message());
        continue;
      }
      int cfd = ::openat(sub->get(), ".", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
      if (cfd < 0) {
        log.add(Failure::open, store.path, std::string("O_TMPFILE: ") + std::strerror(errno));
        continue;
      }
      UniqueFd copy(cfd);
      uint64_t copied = 0;
      auto c1 = copy_data(fd->get(), cfd, rec.st.size, copied);
      if (c1.ok()) c1 = copy_metadata(fd->get(), cfd);
      auto eq = c1.ok() ? same_content(fd->get(), cfd, rec.st.size) : Result<bool>(c1.error());
      compared_bytes.fetch_add(2 * rec.st.size, std::memory_order_relaxed);
      if (!eq.ok() || !*eq) {
        if (!eq.ok()) log.add(Failure::read, rs.display(rec.names.front()), eq.error().message());
        else log.skip(Skip::changed);
        continue;
      }
      std::string path;
      Status linked = described_error(EEXIST, "");
      while (linked.code() == EEXIST && next_n < 1000000) {
        path = store_entry_name(key, next_n++);
        linked = link_fd(cfd, sub->get(), path.substr(3));
      }
      if (!linked.ok()) {
        log.add(Failure::link, store.path + "/" + path, linked.error().message());
        continue;
      }
      auto st = stat_fd(cfd);
      if (!st.ok()) continue;
      Slot s{next_n - 1, std::nullopt, std::move(copy), *blob, path, *st, {}};
      s.assigned.push_back(ci);
      slots.push_back(std::move(s));
    }
    std::lock_guard lock(new_mutex);
    for (auto& s : slots) {
      if (s.assigned.empty()) continue;
      if (s.inode) to_existing[*s.inode] = s.assigned;
      else created.push_back({NewEntry{s.path, s.st}, s.assigned});
    }
  });
  report.bytes_compared = compared_bytes;

  // Canonical hashes for link.cpp's post-window check, and the new entries
  // as names of the store pseudo-guest.
  std::vector<Group> groups;
  if (o.dry_run) {
    for (auto& [entry, cs] : to_existing)
      for (uint32_t c : cs) {
        report.files_linked += inodes[c].names.size();
        report.bytes_saved += inodes[c].st.size;
      }
    for (auto& [entry, cs] : created)
      for (uint32_t c : cs) report.files_linked += inodes[c].names.size();
    for (auto& [entry, cs] : created)
      for (size_t k = 1; k < cs.size(); ++k) report.bytes_saved += inodes[cs[k]].st.size;
  } else {
    std::sort(created.begin(), created.end(),
              [](const auto& a, const auto& b) { return a.first.path < b.first.path; });
    for (auto& [entry, cs] : created) {
      scan.files.push_back(FileRec{store_idx, scan.paths.add(entry.path), entry.st});
      InodeRec rec;
      rec.st = entry.st;
      store_names.push_back(static_cast<uint32_t>(scan.files.size() - 1));
      rec.names = std::span<const uint32_t>(&store_names.back(), 1);
      rec.fully_seen = true;
      rec.member_only = false;
      inodes.push_back(std::move(rec));
      Group g;
      g.inodes.push_back(static_cast<uint32_t>(inodes.size() - 1));
      g.inodes.insert(g.inodes.end(), cs.begin(), cs.end());
      groups.push_back(std::move(g));
      ++report.store_entries_created;
    }
    for (auto& [entry, cs] : to_existing) {
      Group g;
      g.inodes.push_back(entry);
      g.inodes.insert(g.inodes.end(), cs.begin(), cs.end());
      groups.push_back(std::move(g));
    }
    tbb::parallel_for_each(groups.begin(), groups.end(), [&](Group& g) {
      InodeRec& c = inodes[g.inodes.front()];
      auto fd = open_inode(rs, c);
      if (!fd.ok()) {
        g.inodes.resize(1);
        return;
      }
      auto h = content_hash(fd->get(), c.st.size, rs.seed);
      if (!h.ok()) {
        g.inodes.resize(1);
        return;
      }
      c.hash = *h;
    });
    report.temporaries_removed = remove_temporaries(rs);
    for_each_on_cores(o.threads, groups.begin(), groups.end(), [&](const Group& g) {
      if (g.inodes.size() >= 2) link_group(rs, g);
    });
    rs.reaper.finish(); // replaced inodes freed before the run reports
    // protect: every store entry carries the flag (a guest's root with
    // CAP_LINUX_IMMUTABLE may have cleared it through its own name).
    if (o.protect == Protect::immutable)
      for (uint32_t i : unprotected) {
        const InodeRec& rec = inodes[i];
        auto fd = open_inode(rs, rec);
        if (!fd.ok()) continue;
        if (is_immutable(fd->get()).value_or(false)) continue; // frozen by link_group
        const FileRec& f = scan.files[rec.names.front()];
        auto p = protect_inode(rs, fd->get(), f.guest, f.path, true);
        if (!p.ok()) log.add(Failure::attr, rs.display(rec.names.front()), p.error().message());
        else rs.inodes_protected.fetch_add(1);
      }
    report.files_linked = rs.files_linked.load();
    // Net: the guests' freed inodes minus the store copies made for them.
    uint64_t copies = 0;
    for (auto& [entry, cs] : created) copies += entry.st.size;
    uint64_t freed = rs.bytes_saved.load();
    report.bytes_saved = freed > copies ? freed - copies : 0;
    report.files_compared = rs.files_compared.load();
    report.inodes_protected = rs.inodes_protected.load();
  }
  report.duplicate_groups = groups.size();

  if (cache.dirty() || o.refresh) {
    auto saved = cache.save(cache_path, now_ns());
    if (!saved.ok()) log.add(Failure::cache, cache_path, saved.error().message());
  }
  log.drain_into(report);
  std::chrono::duration<double> d = std::chrono::steady_clock::now() - start;
  report.seconds = d.count();
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

Result<Report> run_store_gc(const HashifyOptions& o) {
  Report report;
  VU_TRY_ASSIGN(store, open_store(o, {}));
  std::vector<UnifyGuest> g{store_guest(store)};
  std::vector<UniqueFd> roots;
  VU_TRY_ASSIGN(root, open_directory(store.path));
  roots.push_back(std::move(root));
  FailureLog log;
  UnifyOptions uo;
  ScanOptions so;
  so.min_size = 0;
  std::vector<std::vector<std::string>> none(1);
  ScanResult scan = scan_guests(g, roots, none, so, report, log);
  std::vector<InodeRec> no_inodes;
  auto attrs = detect_attr_backend();
  RunState rs{g, roots, uo, scan, no_inodes, 0, log, *attrs};
  if (!o.dry_run) report.temporaries_removed = remove_temporaries(rs);
  for (const auto& f : scan.files) {
    if (!parse_store_entry(f.path) || f.st.nlink > 1) continue;
    if (o.dry_run) {
      ++report.store_entries_removed;
      continue;
    }
    auto dir = open_beneath(roots[0].get(), parent_of(f.path), O_RDONLY | O_DIRECTORY);
    if (!dir.ok()) continue;
    auto fd = open_file_for_read(dir->get(), name_of(f.path));
    if (!fd.ok()) continue;
    auto st = stat_fd(fd->get());
    // Only the store's own link is left, and it is the entry we saw.
    if (!st.ok() || st->ino != f.st.ino || st->nlink != 1) continue;
    if (st->immutable) (void)set_immutable(fd->get(), false);
    auto u = unlink_at(dir->get(), name_of(f.path));
    if (u.ok()) ++report.store_entries_removed;
    else log.add(Failure::unlink, store.path + "/" + f.path, u.error().message());
  }
  // Empty hash directories.
  auto entries = read_directory(roots[0].get());
  if (entries.ok())
    for (const auto& e : *entries)
      if (e.type == DT_DIR && e.name.size() == 2)
        (void)::unlinkat(roots[0].get(), e.name.c_str(), AT_REMOVEDIR);
  log.drain_into(report);
  return report;
}


Result<Report> run_hashify(const std::vector<UnifyGuest>& guests, const HashifyOptions& o) {
  return with_workers(o.threads,
                      [&]() -> Result<Report> { return hashify_on_workers(guests, o); });
}

} // namespace vu
