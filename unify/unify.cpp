// The unify pipeline.
//
// A run is a list of passes, each parallel, each dropping what cannot be a
// duplicate before the next, more expensive one looks at it (the fclones
// recipe):
//
//   scan     walk all guests (scan.cpp); only metadata is read.
//   inodes   merge names that share an inode; an inode is "fully seen"
//            when the walk found all of its links, the only case in which
//            replacing its names frees it.
//   group    bucket inodes by what a link must preserve: file system, size,
//            mode, owner, group. Buckets of one inode are dropped.
//   prefix   open each candidate once, fingerprint its xattrs (ACLs and file
//            capabilities are xattrs), hash its first 4 KiB; files up to
//            256 KiB are read whole here, so they are read only once.
//            Re-bucket by (key, xattrs, prefix hash).
//   hash     XXH3-128 of the rest of the survivors larger than 256 KiB.
//   plan     per group of equal hashes, choose the inode that survives:
//            already immutable, then most names, then guest order, then
//            path, so repeated runs pick the same one.
//   link     verify byte for byte and swap names atomically (link.cpp).
//   protect  an inode linked from several guests that lacks the immutable
//            flag (a run was killed in its window) gets it.
//
// Hashes are seeded per run (see hash.h) and only decide what to compare:
// link.cpp compares bytes before every link.
#include "unify/plan.h"
#include "unify/workers.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <random>
#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>
#include <tbb/parallel_for_each.h>
#include <tbb/parallel_sort.h>
#include <thread>

#include <algorithm>
#include <climits>
#include <cstring>
#include <chrono>
#include <map>
#include <set>
#include <numeric>
#include <tuple>

namespace vu {

namespace {

class StageTimer {
public:
  StageTimer(Report& report, const char* name)
      : m_report(report), m_name(name), m_start(std::chrono::steady_clock::now()) {}
  ~StageTimer() {
    std::chrono::duration<double> d = std::chrono::steady_clock::now() - m_start;
    m_report.stage_seconds.emplace_back(m_name, d.count());
  }

private:
  Report& m_report;
  const char* m_name;
  std::chrono::steady_clock::time_point m_start;
};

auto meta_key(const FileStat& st) { return std::tie(st.dev, st.size, st.mode, st.uid, st.gid); }

// Runs of equal elements (by `same`) in `v` with at least two members.
template <typename T, typename Same>
std::vector<std::vector<T>> runs_of_two(const std::vector<T>& v, Same same) {
  std::vector<std::vector<T>> out;
  for (size_t i = 0; i < v.size();) {
    size_t j = i + 1;
    while (j < v.size() && same(v[i], v[j])) ++j;
    if (j - i >= 2) out.emplace_back(v.begin() + i, v.begin() + j);
    i = j;
  }
  return out;
}

Result<Hash128> xattr_fingerprint(int fd, uint64_t seed) {
  VU_TRY_ASSIGN(blob, xattr_blob(fd));
  return hash_bytes(blob.data(), blob.size(), seed);
}

uint64_t random_seed() {
  std::random_device rd;
  return (static_cast<uint64_t>(rd()) << 32) ^ rd();
}

} // namespace

std::string RunState::display(uint32_t file) const {
  const auto& f = scan.files[file];
  return guests[f.guest].guest.name + ":/" + f.path;
}

namespace {
// The checks shared by open_inode and InodeOpener: logs a failure to open,
// and refuses an inode that is not the scanned one any more.
Result<UniqueFd> checked_open(RunState& rs, const InodeRec& inode, Result<UniqueFd> fd) {
  if (!fd.ok()) {
    if (fd.code() == ENOENT || fd.code() == ELOOP || fd.code() == ENOTDIR || fd.code() == EXDEV)
      rs.log.skip(Skip::changed);
    else rs.log.add(Failure::open, rs.display(inode.names.front()), fd.error().message());
    return fd;
  }
  auto st = stat_fd(fd->get());
  if (!st.ok()) {
    rs.log.add(Failure::stat, rs.display(inode.names.front()), st.error().message());
    return st.error();
  }
  if (!st->same_version(inode.st) || !st->is_regular()) {
    rs.log.skip(Skip::changed);
    return described_error(ESTALE, "changed since the scan");
  }
  return fd;
}
} // namespace

Result<UniqueFd> open_inode(RunState& rs, const InodeRec& inode) {
  const FileRec& f = rs.scan.files[inode.names.front()];
  return checked_open(rs, inode, open_file_for_read(rs.roots[f.guest].get(), f.path));
}

Result<UniqueFd> InodeOpener::open(const InodeRec& inode) {
  const FileRec& f = m_rs.scan.files[inode.names.front()];
  auto [dir, base] = split_path(f.path.view());
  if (base.empty() || base.size() > NAME_MAX) // not a name the walk can have produced
    return checked_open(m_rs, inode, described_error(EINVAL, "bad path " + std::string(f.path)));
  if (!m_dirfd.valid() || m_guest != f.guest || m_dir != dir) {
    m_dirfd.reset();
    m_guest = UINT32_MAX;
    m_dir.assign(dir);
    auto d = open_beneath(m_rs.roots[f.guest].get(), m_dir, O_PATH | O_DIRECTORY);
    if (!d.ok()) return checked_open(m_rs, inode, d.error());
    m_dirfd = std::move(*d);
    m_guest = f.guest;
  }
  // One component, opened beneath the directory: no symlink, no "..". The
  // directory may have moved since it was opened; the inode check below
  // (dev, ino, size, times) is what makes the result the scanned file.
  char name[NAME_MAX + 1];
  std::memcpy(name, base.data(), base.size());
  name[base.size()] = '\0';
  return checked_open(m_rs, inode, open_file_for_read(m_dirfd.get(), name));
}

void sort_by_path(const std::vector<InodeRec>& inodes, size_t file_count, std::vector<uint32_t>& idx) {
  // A placement by first-name index, not a comparison sort: the sort's
  // scattered reads of records were 0.14 s of CPU at 40 guests.
  std::vector<uint32_t> at(file_count, UINT32_MAX);
  bool twice = false;
  for (uint32_t i : idx) {
    uint32_t& slot = at[inodes[i].names.front()];
    twice |= slot != UINT32_MAX;
    slot = i;
  }
  if (twice) { // an inode listed twice: sort instead
    std::sort(idx.begin(), idx.end(), [&](uint32_t a, uint32_t b) {
      return inodes[a].names.front() < inodes[b].names.front();
    });
    return;
  }
  size_t k = 0;
  for (uint32_t i : at)
    if (i != UINT32_MAX) idx[k++] = i;
}

Result<ExcludeList> guest_excludes(const Guest& guest, const ConfigBase& config,
                                   const ExcludeList& base) {
  ExcludeList list;
  std::vector<std::string> files;
  if (!guest.confdir.empty()) files.push_back(guest.confdir + "/apps/vunify/exclude");
  files.push_back(config.dir() + "/.defaults/apps/vunify/exclude");
  for (const auto& f : files) {
    if (!path_exists(f)) continue;
    VU_TRY_ASSIGN(l, ExcludeList::load(f));
    list.append(l);
  }
  list.append(base);
  return list;
}

void resolve_config_files(const std::vector<UnifyGuest>& guests, const std::vector<UniqueFd>& roots,
                          std::vector<std::vector<std::string>>& config_paths,
                          std::set<std::pair<uint64_t, uint64_t>>& config_inodes) {
  // Each listed path is resolved inside its guest (symlinks followed, but
  // only within the guest root, e.g. /lib -> usr/lib): the inode is
  // excluded wherever it is linked, and the resolved path by name too.
  config_paths.assign(guests.size(), {});
  for (uint32_t g = 0; g < guests.size(); ++g) {
    auto& paths = config_paths[g];
    paths = guests[g].config_files;
    const std::string prefix = guests[g].guest.root == "/" ? "" : guests[g].guest.root;
    for (const auto& p : guests[g].config_files) {
      auto fd = open_in_root(roots[g].get(), p);
      if (!fd.ok()) continue; // listed but not present: nothing to keep private
      auto st = stat_fd(fd->get());
      if (st.ok() && st->is_regular()) config_inodes.insert({st->dev, st->ino});
      auto real = fd_path(fd->get());
      if (real.ok() && real->size() > prefix.size() && real->compare(0, prefix.size(), prefix) == 0 &&
          (*real)[prefix.size()] == '/')
        paths.push_back(real->substr(prefix.size()));
    }
    std::sort(paths.begin(), paths.end());
    paths.erase(std::unique(paths.begin(), paths.end()), paths.end());
  }
}

std::vector<InodeRec> build_inodes(const std::vector<UnifyGuest>& guests, const ScanResult& scan,
                                   const std::set<std::pair<uint64_t, uint64_t>>& config_inodes,
                                   Report& report, std::vector<uint32_t>& order) {
  std::vector<InodeRec> inodes;
  order.assign(scan.files.size(), 0);
  std::iota(order.begin(), order.end(), 0);
  tbb::parallel_sort(order.begin(), order.end(), [&](uint32_t a, uint32_t b) {
    const auto& x = scan.files[a].st;
    const auto& y = scan.files[b].st;
    return std::tie(x.dev, x.ino, a) < std::tie(y.dev, y.ino, b);
  });
  // Leftover temporaries are removed before linking: not a reason to
  // think an inode has links elsewhere.
  std::map<std::pair<uint64_t, uint64_t>, uint32_t> temp_links;
  for (const auto& tr : scan.temporaries) ++temp_links[{tr.st.dev, tr.st.ino}];
  auto same_inode = [&](size_t i, size_t j) {
    const FileStat& a = scan.files[order[i]].st;
    const FileStat& b = scan.files[order[j]].st;
    return a.dev == b.dev && a.ino == b.ino;
  };
  size_t count = 0; // reserve exactly: a doubling vector of records is most of a run's memory
  for (size_t i = 0; i < order.size(); ++i)
    if (i == 0 || !same_inode(i - 1, i)) ++count;
  inodes.reserve(count);
  for (size_t i = 0; i < order.size();) {
    InodeRec rec;
    rec.st = scan.files[order[i]].st;
    size_t j = i;
    while (j < order.size() && same_inode(i, j)) {
      if (guests[scan.files[order[j]].guest].role != GuestRole::member) rec.member_only = false;
      ++j;
    }
    rec.names = std::span<const uint32_t>(order.data() + i, j - i);
    auto tl = temp_links.find({rec.st.dev, rec.st.ino});
    rec.fully_seen = rec.names.size() + (tl == temp_links.end() ? 0 : tl->second) >= rec.st.nlink;
    rec.immutable = rec.st.immutable;
    if (rec.names.size() >= 2) report.files_already_shared += rec.names.size();
    if (config_inodes.count({rec.st.dev, rec.st.ino})) {
      rec.config = true;
      report.files_config += rec.names.size();
    }
    inodes.push_back(std::move(rec));
    i = j;
  }
  return inodes;
}

namespace {
Result<Report> unify_on_workers(const std::vector<UnifyGuest>& guests, const UnifyOptions& options) {
  auto start = std::chrono::steady_clock::now();
  Report report;
  report.dry_run = options.dry_run;
  for (const auto& g : guests)
    report.guests.push_back({g.guest.name, g.guest.root,
                             g.role == GuestRole::member ? "member" : "reference", g.pkgmgmt,
                             g.config_files.size(), g.config_sources});

  std::vector<UniqueFd> roots;
  for (const auto& g : guests) {
    VU_TRY_ASSIGN(fd, open_directory(g.guest.root));
    roots.push_back(std::move(fd));
  }
  FailureLog log;
  auto set_stage = [&](int s) {
    if (options.progress) options.progress->stage.store(s, std::memory_order_relaxed);
  };

  // config: package-manager configuration files stay private (see
  // resolve_config_files).
  std::vector<std::vector<std::string>> config_paths;
  std::set<std::pair<uint64_t, uint64_t>> config_inodes;
  {
    StageTimer t(report, "config");
    resolve_config_files(guests, roots, config_paths, config_inodes);
  }

  // scan: metadata of every candidate file in every guest.
  ScanResult scan;
  {
    StageTimer t(report, "scan");
    set_stage(0);
    ScanOptions so;
    so.min_size = options.min_size;
    so.one_file_system = options.one_file_system;
    so.skip_secrets = true;
    so.progress = options.progress;
    scan = scan_guests(guests, roots, config_paths, so, report, log);
  }

  // inodes: one record per (dev, ino), so names that already share an
  // inode are handled together and never "linked" to themselves.
  std::vector<InodeRec> inodes;
  std::vector<uint32_t> inode_names;
  {
    StageTimer t(report, "inodes");
    inodes = build_inodes(guests, scan, config_inodes, report, inode_names);
  }

  std::unique_ptr<AttrBackend> detected;
  if (!options.attrs) detected = detect_attr_backend();
  AttrBackend& attrs = options.attrs ? *options.attrs : *detected;
  RunState rs{guests, roots, options, scan, inodes, random_seed(), log, attrs};
  // Runs f(opener, inode) over inode indices sorted by path, in contiguous
  // chunks so that each thread's opener re-uses its directory.
  auto for_each_by_path = [&](const std::vector<uint32_t>& idx, auto f) {
    tbb::parallel_for(tbb::blocked_range<size_t>(0, idx.size(), 16),
                      [&](const tbb::blocked_range<size_t>& r) {
                        InodeOpener opener(rs);
                        for (size_t k = r.begin(); k != r.end(); ++k) f(opener, idx[k]);
                      });
  };

  // group: only inodes whose (dev, size, mode, uid, gid) occurs twice can
  // have a duplicate.
  std::vector<std::vector<uint32_t>> buckets;
  {
    StageTimer t(report, "group");
    std::vector<uint32_t> idx;
    for (uint32_t i = 0; i < inodes.size(); ++i)
      if (!inodes[i].config) idx.push_back(i);
    tbb::parallel_sort(idx.begin(), idx.end(), [&](uint32_t a, uint32_t b) {
      return std::tuple_cat(meta_key(inodes[a].st), std::tie(a)) <
             std::tuple_cat(meta_key(inodes[b].st), std::tie(b));
    });
    buckets = runs_of_two(idx, [&](uint32_t a, uint32_t b) {
      return meta_key(inodes[a].st) == meta_key(inodes[b].st);
    });
  }

  // prefix: one open per candidate: xattr fingerprint and the first 4 KiB.
  std::vector<uint32_t> candidates;
  for (const auto& b : buckets) candidates.insert(candidates.end(), b.begin(), b.end());
  set_stage(1);
  std::atomic<uint64_t> files_hashed{0}, bytes_hashed{0};
  // A candidate that cannot be read is left alone for the rest of the run.
  auto fail = [&](InodeRec& rec, Failure kind, const Error& e) {
    log.add(kind, rs.display(rec.names.front()), e.message());
    rec.failed = true;
  };
  auto count_read = [&](uint64_t n) {
    bytes_hashed.fetch_add(n, std::memory_order_relaxed);
    if (options.progress) options.progress->bytes_hashed.fetch_add(n, std::memory_order_relaxed);
  };
  {
    StageTimer t(report, "prefix");
    sort_by_path(inodes, scan.files.size(), candidates);
    for_each_by_path(candidates, [&](InodeOpener& opener, uint32_t i) {
      InodeRec& rec = inodes[i];
      auto fd = opener.open(rec);
      if (!fd.ok()) {
        rec.failed = true;
        return;
      }
      auto xa = xattr_fingerprint(fd->get(), rs.seed);
      if (!xa.ok()) return fail(rec, Failure::xattr, xa.error());
      rec.xattrs = *xa;
      uint64_t n = 0;
      files_hashed.fetch_add(1, std::memory_order_relaxed);
      if (rec.st.size <= k_small_file) {
        // Small files are read once, whole: prefix and full hash together.
        auto h = hash_small_file(fd->get(), rec.st.size, rs.seed, &n);
        count_read(n);
        if (!h.ok()) return fail(rec, Failure::read, h.error());
        if (n != rec.st.size) {
          log.skip(Skip::changed);
          rec.failed = true;
          return;
        }
        rec.hash = h->full; // equal full hashes imply equal prefixes
        return;
      }
      auto h = hash_fd(fd->get(), k_prefix_len, rs.seed, &n);
      count_read(n);
      if (!h.ok()) return fail(rec, Failure::read, h.error());
      rec.hash = *h;
    });
  }

  auto by_prefix = [&](uint32_t a, uint32_t b) {
    return std::tie(inodes[a].xattrs, inodes[a].hash) ==
           std::tie(inodes[b].xattrs, inodes[b].hash);
  };
  auto regroup = [&](std::vector<std::vector<uint32_t>>& in, auto key_less, auto key_same) {
    std::vector<std::vector<uint32_t>> out;
    for (auto& b : in) {
      std::vector<uint32_t> ok;
      for (uint32_t i : b)
        if (!inodes[i].failed) ok.push_back(i);
      std::sort(ok.begin(), ok.end(), key_less);
      for (auto& r : runs_of_two(ok, key_same)) out.push_back(std::move(r));
    }
    in = std::move(out);
  };
  regroup(
      buckets,
      [&](uint32_t a, uint32_t b) {
        return std::tie(inodes[a].xattrs, inodes[a].hash, a) <
               std::tie(inodes[b].xattrs, inodes[b].hash, b);
      },
      by_prefix);

  // hash: XXH3-128 of the bytes after the prefix, combined with the prefix
  // hash, for files too large to have been read whole in the first pass.
  {
    StageTimer t(report, "hash");
    std::vector<uint32_t> big;
    for (const auto& b : buckets)
      for (uint32_t i : b)
        if (inodes[i].st.size > k_small_file) big.push_back(i);
    sort_by_path(inodes, scan.files.size(), big);
    for_each_by_path(big, [&](InodeOpener& opener, uint32_t i) {
      InodeRec& rec = inodes[i];
      auto fd = opener.open(rec);
      if (!fd.ok()) {
        rec.failed = true;
        return;
      }
      uint64_t n = 0;
      auto h = hash_range(fd->get(), k_prefix_len, rec.st.size, rs.seed, &n);
      count_read(n);
      if (!h.ok()) return fail(rec, Failure::read, h.error());
      if (n != rec.st.size - k_prefix_len) {
        log.skip(Skip::changed);
        rec.failed = true;
        return;
      }
      rec.hash = combine_hashes(rec.hash, *h);
    });
  }
  regroup(
      buckets,
      [&](uint32_t a, uint32_t b) {
        return std::tie(inodes[a].xattrs, inodes[a].hash, a) <
               std::tie(inodes[b].xattrs, inodes[b].hash, b);
      },
      [&](uint32_t a, uint32_t b) {
        return std::tie(inodes[a].xattrs, inodes[a].hash) ==
               std::tie(inodes[b].xattrs, inodes[b].hash);
      });
  report.files_hashed = files_hashed.load();
  report.bytes_hashed = bytes_hashed.load();

  // plan: choose the surviving inode of each group and drop inodes that
  // cannot take part (links outside the scan, names in reference guests).
  std::vector<Group> groups;
  {
    StageTimer t(report, "plan");
    auto first_name = [&](uint32_t i) -> const FileRec& { return scan.files[inodes[i].names.front()]; };
    auto rank_less = [&](uint32_t a, uint32_t b) {
      const InodeRec& x = inodes[a];
      const InodeRec& y = inodes[b];
      if (x.immutable != y.immutable) return x.immutable;
      if (x.names.size() != y.names.size()) return x.names.size() > y.names.size();
      const FileRec& fx = first_name(a);
      const FileRec& fy = first_name(b);
      return std::tie(fx.guest, fx.path) < std::tie(fy.guest, fy.path);
    };
    for (auto& b : buckets) {
      std::sort(b.begin(), b.end(), rank_less);
      auto canon = std::find_if(b.begin(), b.end(), [&](uint32_t i) {
        return inodes[i].fully_seen || inodes[i].immutable;
      });
      if (canon == b.end()) {
        for (size_t k = 0; k < b.size(); ++k) log.skip(Skip::partial);
        continue;
      }
      Group g;
      g.inodes.push_back(*canon);
      for (uint32_t i : b) {
        if (i == *canon) continue;
        if (!inodes[i].member_only) continue; // reference guests are never changed
        if (!inodes[i].fully_seen) {
          log.skip(Skip::partial);
          continue;
        }
        g.inodes.push_back(i);
      }
      if (g.inodes.size() >= 2) groups.push_back(std::move(g));
    }
    report.duplicate_groups = groups.size();
  }

  if (options.dry_run) {
    report.bytes_saved_by_guest.assign(guests.size(), 0);
    for (const auto& g : groups)
      for (size_t k = 1; k < g.inodes.size(); ++k) {
        const InodeRec& rec = inodes[g.inodes[k]];
        report.files_linked += rec.names.size();
        report.bytes_saved += rec.st.size;
        report.bytes_saved_by_guest[scan.files[rec.names.front()].guest] += rec.st.size;
        if (options.log_actions)
          for (uint32_t n : rec.names)
            log.action(fmt::format("would link {} -> {}", printable_path(rs.display(n)),
                                   printable_path(rs.display(inodes[g.inodes[0]].names.front()))));
      }
    report.temporaries_removed = 0;
  } else {
    // link: clean up after an interrupted run, then verify and link.
    StageTimer t(report, "link");
    report.temporaries_removed = remove_temporaries(rs);
    if (options.before_link) options.before_link();
    set_stage(2);
    for_each_on_cores(options.threads, groups.begin(), groups.end(),
                      [&](const Group& g) { link_group(rs, g); });
    rs.reaper.finish(); // replaced inodes freed before the run reports

    // protect: inodes linked from several guests must carry the flag even
    // when a previous run was killed between clearing and setting it.
    if (options.protect == Protect::immutable) {
      std::vector<uint32_t> todo;
      for (uint32_t i = 0; i < inodes.size(); ++i) {
        const InodeRec& rec = inodes[i];
        if (rec.immutable || !rec.fully_seen || rec.names.size() < 2) continue;
        uint32_t g0 = scan.files[rec.names.front()].guest;
        bool cross = std::any_of(rec.names.begin(), rec.names.end(),
                                 [&](uint32_t n) { return scan.files[n].guest != g0; });
        if (cross) todo.push_back(i);
      }
      tbb::parallel_for_each(todo.begin(), todo.end(), [&](uint32_t i) {
        auto fd = open_inode(rs, inodes[i]);
        if (!fd.ok()) return;
        const FileRec& f = scan.files[inodes[i].names.front()];
        auto s = protect_inode(rs, fd->get(), f.guest, f.path, true);
        if (!s.ok()) log.add(Failure::attr, rs.display(inodes[i].names.front()), s.error().message());
        else rs.inodes_protected.fetch_add(1);
      });
    }
    report.files_linked = rs.files_linked.load();
    report.bytes_saved = rs.bytes_saved.load();
    report.files_compared = rs.files_compared.load();
    report.inodes_protected = rs.inodes_protected.load();
  }
  set_stage(3);
  log.drain_into(report);
  std::chrono::duration<double> d = std::chrono::steady_clock::now() - start;
  report.seconds = d.count();
  return report;
}
} // namespace

Result<Report> run_unify(const std::vector<UnifyGuest>& guests, const UnifyOptions& options) {
  return with_workers(options.threads,
                      [&]() -> Result<Report> { return unify_on_workers(guests, options); });
}

} // namespace vu
