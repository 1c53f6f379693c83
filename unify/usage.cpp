// Disk-usage accounting. One walk of all guests (scan.cpp, no excludes,
// every regular file), names grouped by inode; an inode is private to a
// guest when all its links are that guest's names, otherwise shared, and its
// allocated bytes are split evenly between the guests of the report that
// link it. Links beyond the names seen (a hash store, guests not in the
// report) make an inode shared but take no share.
#include "unify/usage.h"
#include "unify/workers.h"

#include "kernel/path.h"
#include "unify/scan.h"
#include "unify/unify.h"

#include <tbb/parallel_sort.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <numeric>
#include <thread>

namespace vu {

static Result<UsageReport> usage_on_workers(const std::vector<UnifyGuest>& guests,
                                  const UsageOptions& options) {
  auto start = std::chrono::steady_clock::now();
  UsageReport out;

  std::vector<UnifyGuest> all = guests;
  for (auto& g : all) {
    g.excludes = ExcludeList{};
    g.config_files.clear();
  }
  std::vector<UniqueFd> roots;
  for (const auto& g : all) {
    VU_TRY_ASSIGN(fd, open_directory(g.guest.root));
    roots.push_back(std::move(fd));
    out.guests.push_back(GuestUsage{g.guest.name, g.guest.root});
  }
  Report scan_report;
  FailureLog log;
  ScanOptions scan_opts;
  scan_opts.min_size = 0;
  std::vector<std::vector<std::string>> no_config(all.size());
  ScanResult scan = scan_guests(all, roots, no_config, scan_opts, scan_report, log);
  log.drain_into(scan_report);
  out.errors += scan_report.failure_count();

  // Names grouped by inode.
  std::vector<uint32_t> order(scan.files.size());
  std::iota(order.begin(), order.end(), 0);
  tbb::parallel_sort(order.begin(), order.end(), [&](uint32_t a, uint32_t b) {
    const auto& x = scan.files[a];
    const auto& y = scan.files[b];
    return std::tie(x.st.dev, x.st.ino, x.guest, x.path) < std::tie(y.st.dev, y.st.ino, y.guest, y.path);
  });
  std::map<std::pair<uint32_t, std::string>, uint64_t> dir_private;
  for (size_t i = 0; i < order.size();) {
    const FileStat& st = scan.files[order[i]].st;
    size_t j = i;
    std::vector<uint32_t> linking; // guests, ascending
    while (j < order.size() && scan.files[order[j]].st.dev == st.dev &&
           scan.files[order[j]].st.ino == st.ino) {
      uint32_t g = scan.files[order[j]].guest;
      if (linking.empty() || linking.back() != g) linking.push_back(g);
      ++out.guests[g].files;
      out.guests[g].alone += st.blocks * 512; // every name as its own file
      ++out.files;
      ++j;
    }
    uint64_t names = j - i;
    uint64_t alloc = st.blocks * 512;
    bool outside = st.nlink > names;
    bool is_private = linking.size() == 1 && !outside;
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
    if (is_private && options.top > 0) {
      const FileRec& f = scan.files[order[i]];
      dir_private[{f.guest, "/" + parent_of(f.path)}] += alloc;
    }
    i = j;
  }
  for (auto& u : out.guests) {
    u.saved = u.alone - u.private_bytes - u.shared;
    out.alone += u.alone;
  }
  out.saved = out.alone - out.allocated;

  if (options.top > 0) {
    for (auto& [k, v] : dir_private)
      out.top.push_back({out.guests[k.first].name, k.second, v});
    std::sort(out.top.begin(), out.top.end(), [](const DirUsage& a, const DirUsage& b) {
      return a.private_bytes != b.private_bytes ? a.private_bytes > b.private_bytes
                                                : std::tie(a.guest, a.path) < std::tie(b.guest, b.path);
    });
    if (out.top.size() > options.top) out.top.resize(options.top);
  }

  // The hash store: its entries and their size (the same inodes guests link).
  if (!options.store.empty() && path_exists(options.store)) {
    auto store_root = open_directory(options.store);
    if (store_root.ok()) {
      out.store_present = true;
      out.store = options.store;
      std::vector<UnifyGuest> store_guest(1);
      store_guest[0].guest = Guest{"(hash store)", options.store, {}};
      std::vector<UniqueFd> store_roots;
      store_roots.push_back(std::move(*store_root));
      Report sr;
      FailureLog slog;
      std::vector<std::vector<std::string>> none(1);
      auto store_scan = scan_guests(store_guest, store_roots, none, scan_opts, sr, slog);
      for (const auto& f : store_scan.files) {
        ++out.store_entries;
        out.store_bytes += f.st.blocks * 512;
      }
    }
  }

  if (options.deep) {
    UnifyOptions dry;
    dry.dry_run = true;
    dry.threads = options.threads;
    VU_TRY_ASSIGN(r, run_unify(guests, dry));
    out.deep = true;
    out.possible = r.bytes_saved;
    for (size_t g = 0; g < out.guests.size() && g < r.bytes_saved_by_guest.size(); ++g)
      out.guests[g].possible = r.bytes_saved_by_guest[g];
    out.errors += r.failure_count();
  }
  std::chrono::duration<double> d = std::chrono::steady_clock::now() - start;
  out.seconds = d.count();
  return out;
}


Result<UsageReport> compute_usage(const std::vector<UnifyGuest>& guests,
                                  const UsageOptions& options) {
  return with_workers(options.threads,
                      [&]() -> Result<UsageReport> { return usage_on_workers(guests, options); });
}

} // namespace vu
