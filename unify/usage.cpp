// Disk-usage accounting, on the passes every run uses: one walk of all
// guests (no excludes, every regular file) and the inodes pass, which
// groups names by inode; then per inode: private to a guest when all its
// links are that guest's names, otherwise shared, its allocated bytes split
// evenly between the guests of the report that link it. Links beyond the
// names seen (a hash store, guests not in the report) make an inode shared
// but take no share. Only metadata is read, unless `deep`.
#include "unify/usage.h"

#include "kernel/extents.h"
#include "kernel/path.h"
#include "unify/passes.h"
#include "unify/unify.h"
#include "unify/workers.h"

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>

#include <algorithm>
#include <chrono>
#include <map>

namespace vu {

namespace {

// Adds one inode (its names in rc's scan) to the guests' figures.
void count_inode(const RunContext& rc, const InodeRec& rec, UsageReport& out,
                 std::map<std::pair<uint32_t, std::string>, uint64_t>& dir_private, bool top) {
  const FileStat& st = *rec.st;
  std::vector<uint32_t> linking; // guests, ascending (names are sorted by guest within an inode)
  for (uint32_t n : rc.names_of(rec)) {
    uint32_t g = rc.scan.files[n].guest();
    if (std::find(linking.begin(), linking.end(), g) == linking.end()) linking.push_back(g);
    ++out.guests[g].files;
    out.guests[g].alone += st.blocks * 512; // every name as its own file
    ++out.files;
  }
  std::sort(linking.begin(), linking.end());
  const uint64_t alloc = st.blocks * 512;
  const bool is_private = linking.size() == 1 && st.nlink <= rc.names_of(rec).size();
  out.allocated += alloc;
  for (size_t k = 0; k < linking.size(); ++k) {
    GuestUsage& u = out.guests[linking[k]];
    ++u.inodes;
    u.apparent += st.size;
    u.allocated += alloc;
    if (is_private) {
      u.private_bytes += alloc;
    } else {
      u.shared_full += alloc;
      u.shared += alloc / linking.size() + (k == 0 ? alloc % linking.size() : 0);
    }
  }
  if (is_private && top) {
    const FileRec& f = rc.scan.files[rc.names_of(rec).front()];
    dir_private[{f.guest(), "/" + parent_of(f.path)}] += alloc;
  }
}

// The directories holding the most private bytes, largest first.
std::vector<DirUsage>
top_dirs(const UsageReport& out,
         const std::map<std::pair<uint32_t, std::string>, uint64_t>& dir_private, uint32_t top) {
  std::vector<DirUsage> dirs;
  for (const auto& [k, v] : dir_private) dirs.push_back({out.guests[k.first].name, k.second, v});
  std::sort(dirs.begin(), dirs.end(), [](const DirUsage& a, const DirUsage& b) {
    return a.private_bytes != b.private_bytes
               ? a.private_bytes > b.private_bytes
               : std::tie(a.guest, a.path) < std::tie(b.guest, b.path);
  });
  if (dirs.size() > top) dirs.resize(top);
  return dirs;
}

// Shared extents (btrfs, XFS): per guest the bytes of its files in shared
// extents, and what the sharing saves among the guests - the bytes
// referenced minus the distinct physical ranges (per device).
void count_extents(RunContext& rc, UsageReport& out) {
  std::vector<bool> on(rc.roots.size());
  for (size_t g = 0; g < rc.roots.size(); ++g) on[g] = shares_extents(rc.roots[g].get());
  if (std::find(on.begin(), on.end(), true) == on.end()) return;
  out.extents = true;
  std::vector<uint32_t> idx;
  for (uint32_t i = 0; i < rc.inodes.size(); ++i)
    if (on[rc.scan.files[rc.names_of(rc.inodes[i]).front()].guest()] && rc.inodes[i].st->blocks > 0)
      idx.push_back(i);
  sort_by_path(rc, idx);
  std::vector<uint64_t> shared(rc.inodes.size(), 0);
  std::vector<std::vector<PhysicalExtent>> ranges(idx.size());
  tbb::parallel_for(tbb::blocked_range<size_t>(0, idx.size(), 16),
                    [&](const tbb::blocked_range<size_t>& r) {
                      InodeOpener opener(rc);
                      for (size_t k = r.begin(); k != r.end(); ++k) {
                        auto fd = opener.open(rc.inodes[idx[k]]);
                        if (!fd.ok()) continue; // logged as a problem
                        auto e = file_extents(fd->get(), &ranges[k]);
                        if (e.ok()) shared[idx[k]] = e->shared_bytes;
                      }
                    });
  std::map<uint64_t, std::vector<PhysicalExtent>> by_dev;
  for (size_t k = 0; k < idx.size(); ++k) {
    const InodeRec& rec = rc.inodes[idx[k]];
    if (shared[idx[k]] == 0) continue;
    out.extents_shared += shared[idx[k]];
    std::vector<uint32_t> seen;
    for (uint32_t n : rc.names_of(rec)) {
      uint32_t g = rc.scan.files[n].guest();
      if (std::find(seen.begin(), seen.end(), g) != seen.end()) continue;
      seen.push_back(g);
      out.guests[g].extents_shared += shared[idx[k]];
    }
    auto& v = by_dev[rec.st->dev];
    v.insert(v.end(), ranges[k].begin(), ranges[k].end());
  }
  uint64_t distinct = 0;
  for (auto& [dev, v] : by_dev) {
    std::sort(v.begin(), v.end());
    uint64_t end = 0;
    for (const auto& e : v) { // the union of the ranges
      const uint64_t stop = e.physical + e.length;
      if (stop <= end) continue;
      distinct += stop - std::max(end, e.physical);
      end = stop;
    }
  }
  out.extents_saved = out.extents_shared > distinct ? out.extents_shared - distinct : 0;
}

// The hash store: its entries and their size (the same inodes guests link).
void count_store(const std::string& store, UsageReport& out) {
  if (store.empty() || !path_exists(store)) return;
  UnifyGuest g;
  g.guest = Guest{"(hash store)", store, {}};
  RunOptions o;
  o.dry_run = true; // reads only
  auto rc = RunContext::open({g}, o);
  if (!rc.ok()) return;
  ScanOptions scan;
  scan.min_size = 0;
  scan_pass(**rc, {}, scan);
  out.store_present = true;
  out.store = store;
  for (const auto& f : (*rc)->scan.files) {
    ++out.store_entries;
    out.store_bytes += f.st.blocks * 512;
  }
}

Result<UsageReport> usage_on_workers(const std::vector<UnifyGuest>& guests,
                                     const UsageOptions& options) {
  auto start = std::chrono::steady_clock::now();
  UsageReport out;
  std::vector<UnifyGuest> all = guests;
  for (auto& g : all) {
    g.excludes = ExcludeList{}; // every file counts
    g.config_files.clear();
    out.guests.push_back(GuestUsage{g.guest.name, g.guest.root});
  }
  RunOptions ro;
  ro.dry_run = true; // reads only: no state made, no lock taken
  ro.threads = options.threads;
  VU_TRY_ASSIGN(rc, RunContext::open(std::move(all), ro));
  ScanOptions scan;
  scan.min_size = 0;
  scan_pass(*rc, {}, scan);
  inodes_pass(*rc, {});
  std::map<std::pair<uint32_t, std::string>, uint64_t> dir_private;
  for (const auto& rec : rc->inodes) count_inode(*rc, rec, out, dir_private, options.top > 0);
  for (auto& u : out.guests) {
    u.saved = u.alone - u.private_bytes - u.shared;
    out.alone += u.alone;
  }
  out.saved = out.alone - out.allocated;
  if (options.top > 0) out.top = top_dirs(out, dir_private, options.top);
  count_extents(*rc, out);
  merge_failures(out.problems, rc->finish());
  count_store(options.store, out);

  if (options.deep) {
    // What unification could still free: its dry run, with the guests' own
    // exclude lists and configuration files.
    UnifyOptions dry;
    dry.dry_run = true;
    dry.threads = options.threads;
    VU_TRY_ASSIGN(r, run_unify(guests, dry));
    out.deep = true;
    out.possible = r.bytes_saved;
    for (size_t g = 0; g < out.guests.size() && g < r.bytes_saved_by_guest.size(); ++g)
      out.guests[g].possible = r.bytes_saved_by_guest[g];
    merge_failures(out.problems, r);
  }
  std::chrono::duration<double> d = std::chrono::steady_clock::now() - start;
  out.seconds = d.count();
  return out;
}

} // namespace

Result<UsageReport> compute_usage(const std::vector<UnifyGuest>& guests,
                                  const UsageOptions& options) {
  return with_workers(options.threads,
                      [&]() -> Result<UsageReport> { return usage_on_workers(guests, options); });
}

} // namespace vu
