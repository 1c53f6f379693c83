// The unify run: a list of passes (passes.h), each with its reason here.
#include "unify/unify.h"

#include "unify/passes.h"
#include "unify/reflink.h"
#include "unify/workers.h"

#include <algorithm>
#include <iterator>

namespace vu {

namespace {

// vunify --reflink after the group pass (reflink.h): files with one extent
// layout are hashed once, and the kernel shares extents instead of names.
Result<Report> reflink_on_workers(RunContext& rc, std::vector<std::vector<uint32_t>>& buckets) {
  Layouts lay = extents_pass(rc, buckets);
  // Cold reads in the order of the data on the device, not of the paths.
  prefix_pass(rc, buckets, &lay.place);
  hash_pass(rc, buckets, &lay.place);
  reflink_plan_pass(rc, lay, buckets);
  if (rc.options.dry_run)
    count_planned_reflink(rc, lay);
  else
    reflink_pass(rc, lay);
  return rc.finish();
}

Result<Report> unify_on_workers(const std::vector<UnifyGuest>& guests,
                                const UnifyOptions& options) {
  VU_TRY_ASSIGN(rc, RunContext::open(guests, options));
  // Package-manager configuration files stay private, by path and inode.
  ConfigFiles config = resolve_config_files(*rc);
  // Metadata of every candidate file; secrets are never listed.
  scan_pass(*rc, config, content_scan_options(options));
  // More files than the memory limit allows: the caller runs in ranges.
  if (options.budget && options.budget->overflow) return Report{};
  // One record per inode: names that share one are handled together.
  inodes_pass(*rc, config);
  rc->report.reflink = options.reflink;
  if (options.reflink) VU_TRY(check_reflink_roots(*rc));
  // Only inodes equal in what a link preserves can be duplicates (with
  // --reflink: equal in size).
  auto buckets = group_pass(*rc);
  if (options.reflink) return reflink_on_workers(*rc, buckets);
  // 4 KiB (small files whole), then the rest of the survivors.
  prefix_pass(*rc, buckets);
  hash_pass(*rc, buckets);
  // The surviving inode of each group, and who may be replaced.
  plan_pass(*rc, buckets);
  if (options.dry_run) {
    count_planned(*rc);
    return rc->finish();
  }
  // Leftovers of killed runs, then verify and swap names (link.cpp).
  link_pass(*rc);
  // Shared inodes without the flag (a run killed while one was thawed).
  protect_pass(*rc);
  return rc->finish();
}

// Adds part `p` (not the first) of a run made of size ranges to `total`.
// Each part walks every guest: what the walk counts about files outside
// the ranges (directories, excludes, config files, sizes out of limits,
// other types) and its failures are the first part's; the rest adds up.
void add_part(Report& total, Report&& p) {
  for (auto field :
       {&Report::files_scanned, &Report::bytes_scanned, &Report::files_hashed,
        &Report::bytes_hashed, &Report::files_compared, &Report::bytes_compared,
        &Report::duplicate_groups, &Report::files_linked, &Report::bytes_saved,
        &Report::files_already_shared, &Report::inodes_protected, &Report::temporaries_removed,
        &Report::files_in_store, &Report::cache_hits, &Report::store_entries_created})
    total.*field += p.*field;
  for (size_t g = 0; g < p.bytes_saved_by_guest.size() && g < total.bytes_saved_by_guest.size();
       ++g)
    total.bytes_saved_by_guest[g] += p.bytes_saved_by_guest[g];
  for (Failure walk : {Failure::walk, Failure::stat, Failure::config, Failure::pkgmgmt})
    p.failures.erase(walk);
  merge_failures(total, p);
  total.actions.insert(total.actions.end(), std::make_move_iterator(p.actions.begin()),
                       std::make_move_iterator(p.actions.end()));
  for (size_t i = 0; i < p.stage_seconds.size() && i < total.stage_seconds.size(); ++i)
    total.stage_seconds[i].second += p.stage_seconds[i].second;
  total.seconds += p.seconds;
  ++total.parts;
}

} // namespace

Result<Report> run_in_parts(uint64_t memory_limit, uint64_t bytes_per_file,
                            const std::function<Result<Report>(const RunPart&)>& run) {
  SizeHistogram histogram;
  ScanBudget budget;
  budget.max_files = std::max<uint64_t>(1, memory_limit / bytes_per_file);
  {
    VU_TRY_ASSIGN(r, run(RunPart{0, UINT64_MAX, &histogram, &budget}));
    if (!budget.overflow) return r;
  }
  const auto ranges = size_ranges(histogram, budget.max_files); // at least one
  VU_TRY_ASSIGN(total, run(RunPart{ranges.front().first, ranges.front().second, nullptr, nullptr}));
  for (size_t k = 1; k < ranges.size(); ++k) {
    VU_TRY_ASSIGN(r, run(RunPart{ranges[k].first, ranges[k].second, nullptr, nullptr}));
    add_part(total, std::move(r));
  }
  std::sort(total.actions.begin(), total.actions.end());
  return total;
}

std::vector<std::pair<uint64_t, uint64_t>> size_ranges(const SizeHistogram& histogram,
                                                       uint64_t max_files) {
  std::vector<std::pair<uint64_t, uint64_t>> out;
  const size_t slots = sizeof histogram.count / sizeof histogram.count[0];
  uint64_t lo = 0, in_range = 0;
  for (size_t s = 0; s < slots; ++s) {
    const uint64_t n = histogram.count[s].load(std::memory_order_relaxed);
    if (n == 0) continue;
    if (in_range > 0 && in_range + n > max_files) {
      const uint64_t cut = SizeHistogram::lowest(s);
      out.emplace_back(lo, cut - 1);
      lo = cut;
      in_range = 0;
    }
    in_range += n;
  }
  out.emplace_back(lo, UINT64_MAX);
  return out;
}

Result<Report> run_unify(const std::vector<UnifyGuest>& guests, const UnifyOptions& options) {
  return with_workers(options.threads, [&]() -> Result<Report> {
    if (options.memory_limit == 0) return unify_on_workers(guests, options);
    return run_in_parts(options.memory_limit, k_bytes_per_file, [&](const RunPart& p) {
      UnifyOptions part = options;
      p.apply(part);
      return unify_on_workers(guests, part);
    });
  });
}

} // namespace vu
