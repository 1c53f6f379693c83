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
  prefix_pass(rc, buckets);
  hash_pass(rc, buckets);
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
  ScanOptions scan;
  scan.min_size = options.min_size;
  scan.max_size = options.max_size;
  scan.range_lo = options.range_lo;
  scan.range_hi = options.range_hi;
  scan.histogram = options.histogram;
  scan.budget = options.budget;
  scan.log_skips = options.log_skips;
  scan.one_file_system = options.one_file_system;
  scan.skip_secrets = true;
  scan_pass(*rc, config, scan);
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
  total.files_scanned += p.files_scanned;
  total.bytes_scanned += p.bytes_scanned;
  total.files_hashed += p.files_hashed;
  total.bytes_hashed += p.bytes_hashed;
  total.files_compared += p.files_compared;
  total.bytes_compared += p.bytes_compared;
  total.duplicate_groups += p.duplicate_groups;
  total.files_linked += p.files_linked;
  total.bytes_saved += p.bytes_saved;
  total.files_already_shared += p.files_already_shared;
  total.inodes_protected += p.inodes_protected;
  total.temporaries_removed += p.temporaries_removed;
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

// A run within options.memory_limit: the run itself when its walk keeps
// no more files than the limit allows; else, with the sizes that walk
// counted, one run per size range (size_ranges), each with its own
// context.
Result<Report> unify_in_parts(const std::vector<UnifyGuest>& guests, const UnifyOptions& options) {
  SizeHistogram histogram;
  ScanBudget budget;
  budget.max_files = std::max<uint64_t>(1, options.memory_limit / k_bytes_per_file);
  {
    UnifyOptions whole = options;
    whole.histogram = &histogram;
    whole.budget = &budget;
    VU_TRY_ASSIGN(r, unify_on_workers(guests, whole));
    if (!budget.overflow) return r;
  }
  auto run_range = [&](const std::pair<uint64_t, uint64_t>& range) {
    UnifyOptions part = options;
    part.range_lo = range.first;
    part.range_hi = range.second;
    return unify_on_workers(guests, part);
  };
  const auto ranges = size_ranges(histogram, budget.max_files); // at least one
  VU_TRY_ASSIGN(total, run_range(ranges.front()));
  for (size_t k = 1; k < ranges.size(); ++k) {
    VU_TRY_ASSIGN(r, run_range(ranges[k]));
    add_part(total, std::move(r));
  }
  std::sort(total.actions.begin(), total.actions.end());
  return total;
}

} // namespace

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
    return unify_in_parts(guests, options);
  });
}

} // namespace vu
