// Finding duplicates: the group, prefix, hash and plan passes, and the
// protect pass that closes a run.
//
// Each pass drops what cannot be a duplicate before the next, more
// expensive one looks at it (fclones' recipe): metadata first (no I/O),
// then 4 KiB per candidate (small files whole), then the rest of the large
// survivors. Hashes are XXH3-128 under the run's secret seed and only
// decide what to compare: link.cpp compares bytes before every link.
//
// What a link must preserve is part of the key from the start: device
// (links cannot cross file systems), size, mode, owner, group, extended
// attributes (ACLs and file capabilities are xattrs) and, unless the user
// allows otherwise, the modification time - a name must never show another
// file's mtime (util-vserver and util-linux hardlink agree).
#include "unify/passes.h"

#include "kernel/path.h"
#include "unify/workers.h"

#include <fmt/format.h>
#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>
#include <tbb/parallel_for_each.h>
#include <tbb/parallel_sort.h>

#include <algorithm>
#include <tuple>

namespace vu {

namespace {

// What a link must preserve, from the walk's metadata.
// With --reflink only the device and size: every name keeps its inode.
auto meta_key(const FileStat& st, bool with_mtime, bool reflink) {
  if (reflink) return std::make_tuple(st.dev, st.size, uint16_t(0), 0u, 0u, int64_t(0));
  return std::make_tuple(st.dev, st.size, st.mode, st.uid, st.gid, with_mtime ? st.mtime_ns : 0);
}

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

// Splits every bucket by (xattrs, hash), dropping failed inodes and
// singletons.
void regroup(RunContext& rc, std::vector<std::vector<uint32_t>>& buckets) {
  const auto& inodes = rc.inodes;
  auto key = [&](uint32_t i) { return std::tie(inodes[i].xattrs, inodes[i].hash); };
  std::vector<std::vector<uint32_t>> out;
  for (auto& b : buckets) {
    std::vector<uint32_t> ok;
    for (uint32_t i : b)
      if (!inodes[i].failed) ok.push_back(i);
    std::vector<uint32_t>().swap(b); // given back at once: out grows as buckets shrink
    std::sort(ok.begin(), ok.end(), [&](uint32_t a, uint32_t c) {
      return std::tuple_cat(key(a), std::tie(a)) < std::tuple_cat(key(c), std::tie(c));
    });
    for (auto& r : runs_of_two(ok, [&](uint32_t a, uint32_t c) { return key(a) == key(c); }))
      out.push_back(std::move(r));
  }
  buckets = std::move(out);
}

// Runs f(opener, inode) over inode indices sorted by path - or by where
// their data lies (`place`, see prefix_pass), then path - in contiguous
// chunks so that each thread's opener re-uses its directory.
template <typename F>
void for_each_in_order(RunContext& rc, std::vector<uint32_t>& idx,
                       const std::vector<uint64_t>* place, F f) {
  sort_by_path(rc, idx);
  if (place)
    std::stable_sort(idx.begin(), idx.end(),
                     [&](uint32_t a, uint32_t b) { return (*place)[a] < (*place)[b]; });
  tbb::parallel_for(tbb::blocked_range<size_t>(0, idx.size(), 16),
                    [&](const tbb::blocked_range<size_t>& r) {
                      InodeOpener opener(rc);
                      for (size_t k = r.begin(); k != r.end(); ++k) f(opener, rc.inodes[idx[k]]);
                    });
}

// A candidate that cannot be read is left alone for the rest of the run.
void fail(RunContext& rc, InodeRec& rec, Failure kind, const Error& e) {
  rc.log.add(kind, rc.display(rc.names_of(rec).front()), e.message());
  rec.failed = true;
}

void count_read(RunContext& rc, uint64_t n) {
  rc.bytes_hashed.fetch_add(n, std::memory_order_relaxed);
  if (rc.options.progress)
    rc.options.progress->bytes_hashed.fetch_add(n, std::memory_order_relaxed);
}

} // namespace

std::vector<std::vector<uint32_t>> group_pass(RunContext& rc) {
  PassTimer timer(rc, "group");
  const auto& inodes = rc.inodes;
  const bool mtime = !rc.options.ignore_mtime;
  const bool reflink = rc.options.reflink;
  std::vector<uint32_t> idx;
  for (uint32_t i = 0; i < inodes.size(); ++i)
    if (!inodes[i].config) idx.push_back(i);
  tbb::parallel_sort(idx.begin(), idx.end(), [&](uint32_t a, uint32_t b) {
    return std::tuple_cat(meta_key(*inodes[a].st, mtime, reflink), std::tie(a)) <
           std::tuple_cat(meta_key(*inodes[b].st, mtime, reflink), std::tie(b));
  });
  return runs_of_two(idx, [&](uint32_t a, uint32_t b) {
    return meta_key(*inodes[a].st, mtime, reflink) == meta_key(*inodes[b].st, mtime, reflink);
  });
}

void prefix_pass(RunContext& rc, std::vector<std::vector<uint32_t>>& buckets,
                 const std::vector<uint64_t>* place) {
  PassTimer timer(rc, "prefix");
  rc.stage(ProgressStage::hash);
  // The candidates in read order: a copy of the buckets' members, reserved
  // exactly and given back before regroup (the run's memory peaks there).
  std::vector<uint32_t> candidates;
  size_t count = 0;
  for (const auto& b : buckets) count += b.size();
  candidates.reserve(count);
  for (const auto& b : buckets) candidates.insert(candidates.end(), b.begin(), b.end());
  std::atomic<uint64_t> files{0};
  for_each_in_order(rc, candidates, place, [&](InodeOpener& opener, InodeRec& rec) {
    auto fd = opener.open(rec);
    if (!fd.ok()) {
      rec.failed = true;
      return;
    }
    if (!rc.options.reflink) { // with --reflink each name keeps its own xattrs
      auto blob = xattr_blob(fd->get());
      if (!blob.ok()) return fail(rc, rec, Failure::xattr, blob.error());
      rec.xattrs = hash_bytes(blob->data(), blob->size(), rc.seed);
    }
    uint64_t n = 0;
    files.fetch_add(1, std::memory_order_relaxed);
    if (rec.st->size <= k_small_file) {
      // Small files are read once, whole: prefix and full hash together.
      auto h = hash_small_file(fd->get(), rec.st->size, rc.seed, &n);
      count_read(rc, n);
      if (!h.ok()) return fail(rc, rec, Failure::read, h.error());
      if (n != rec.st->size) {
        rc.log.skip(Skip::changed);
        rec.failed = true;
        return;
      }
      rec.hash = h->full; // equal full hashes imply equal prefixes
      return;
    }
    auto h = hash_fd(fd->get(), k_prefix_len, rc.seed, &n);
    count_read(rc, n);
    if (!h.ok()) return fail(rc, rec, Failure::read, h.error());
    rec.hash = *h;
  });
  std::vector<uint32_t>().swap(candidates);
  rc.report.files_hashed += files.load();
  regroup(rc, buckets);
}

void hash_pass(RunContext& rc, std::vector<std::vector<uint32_t>>& buckets,
               const std::vector<uint64_t>* place) {
  PassTimer timer(rc, "hash");
  std::vector<uint32_t> big;
  for (const auto& b : buckets)
    for (uint32_t i : b)
      if (rc.inodes[i].st->size > k_small_file) big.push_back(i);
  big.shrink_to_fit();
  for_each_in_order(rc, big, place, [&](InodeOpener& opener, InodeRec& rec) {
    auto fd = opener.open(rec);
    if (!fd.ok()) {
      rec.failed = true;
      return;
    }
    uint64_t n = 0;
    auto h = hash_range(fd->get(), k_prefix_len, rec.st->size - k_prefix_len, rc.seed, &n);
    count_read(rc, n);
    if (!h.ok()) return fail(rc, rec, Failure::read, h.error());
    if (n != rec.st->size - k_prefix_len) {
      rc.log.skip(Skip::changed);
      rec.failed = true;
      return;
    }
    rec.hash = combine_hashes(rec.hash, *h);
  });
  std::vector<uint32_t>().swap(big);
  regroup(rc, buckets);
}

void plan_pass(RunContext& rc, std::vector<std::vector<uint32_t>>& buckets) {
  PassTimer timer(rc, "plan");
  const auto& inodes = rc.inodes;
  const auto& files = rc.scan.files;
  auto first_name = [&](uint32_t i) -> const FileRec& {
    return files[rc.names_of(inodes[i]).front()];
  };
  auto rank_less = [&](uint32_t a, uint32_t b) {
    const InodeRec& x = inodes[a];
    const InodeRec& y = inodes[b];
    if (x.frozen != y.frozen) return x.frozen;
    if (rc.names_of(x).size() != rc.names_of(y).size())
      return rc.names_of(x).size() > rc.names_of(y).size();
    const FileRec& fx = first_name(a);
    const FileRec& fy = first_name(b);
    return std::pair(fx.guest(), fx.path) < std::pair(fy.guest(), fy.path);
  };
  rc.groups.clear();
  for (auto& b : buckets) {
    std::sort(b.begin(), b.end(), rank_less);
    auto canon = std::find_if(b.begin(), b.end(),
                              [&](uint32_t i) { return inodes[i].fully_seen || inodes[i].frozen; });
    if (canon == b.end()) {
      for (size_t k = 0; k < b.size(); ++k) rc.log.skip(Skip::partial);
      continue;
    }
    Group g;
    g.inodes.push_back(*canon);
    for (uint32_t i : b) {
      if (i == *canon) continue;
      if (!inodes[i].member_only) continue; // reference guests are never changed
      if (!inodes[i].fully_seen) {
        rc.log.skip(Skip::partial);
        continue;
      }
      g.inodes.push_back(i);
    }
    if (g.inodes.size() >= 2) rc.groups.push_back(std::move(g));
  }
  rc.report.duplicate_groups = rc.groups.size();
}

void count_planned(RunContext& rc) {
  auto& r = rc.report;
  r.bytes_saved_by_guest.assign(rc.guests.size(), 0);
  for (const auto& g : rc.groups)
    for (size_t k = 1; k < g.inodes.size(); ++k) {
      const InodeRec& rec = rc.inodes[g.inodes[k]];
      r.files_linked += rc.names_of(rec).size();
      r.bytes_saved += allocated_bytes(*rec.st);
      r.bytes_saved_by_guest[rc.scan.files[rc.names_of(rec).front()].guest()] +=
          allocated_bytes(*rec.st);
      if (rc.options.log_actions)
        for (uint32_t n : rc.names_of(rec))
          rc.log.action(
              fmt::format("would link {} -> {}", printable_path(rc.display(n)),
                          printable_path(rc.display(rc.names_of(rc.inodes[g.inodes[0]]).front()))));
    }
}

void protect_pass(RunContext& rc) {
  if (rc.options.protect != Protect::immutable) return;
  PassTimer timer(rc, "protect");
  // Inodes linked from several guests must carry the flag even when a
  // previous run was killed between clearing and setting it. Only inodes
  // whose every name this run saw: one with names elsewhere could be a
  // host file a guest root linked to.
  std::vector<uint32_t> todo;
  for (uint32_t i = 0; i < rc.inodes.size(); ++i) {
    const InodeRec& rec = rc.inodes[i];
    if (rec.frozen || !rec.fully_seen || rc.names_of(rec).size() < 2) continue;
    uint32_t g0 = rc.scan.files[rc.names_of(rec).front()].guest();
    bool cross = std::any_of(rc.names_of(rec).begin(), rc.names_of(rec).end(),
                             [&](uint32_t n) { return rc.scan.files[n].guest() != g0; });
    if (cross) todo.push_back(i);
  }
  tbb::parallel_for_each(todo.begin(), todo.end(), [&](uint32_t i) {
    auto fd = open_inode(rc, rc.inodes[i]);
    if (!fd.ok()) return;
    auto now = rc.is_protected(fd->get());
    if (now.ok() && *now) return; // protected by the link pass meanwhile
    const FileRec& f = rc.scan.files[rc.names_of(rc.inodes[i]).front()];
    auto s = rc.protect(fd->get(), f.guest(), std::string(f.path), Protection::on);
    if (!s.ok())
      rc.log.add(Failure::attr, rc.display(rc.names_of(rc.inodes[i]).front()), s.error().message());
    else
      rc.inodes_protected.fetch_add(1, std::memory_order_relaxed);
  });
}

} // namespace vu
