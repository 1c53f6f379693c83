// The unify run: a list of passes (passes.h), each with its reason here.
#include "unify/unify.h"

#include "unify/passes.h"
#include "unify/reflink.h"
#include "unify/workers.h"

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
  scan.log_skips = options.log_skips;
  scan.one_file_system = options.one_file_system;
  scan.skip_secrets = true;
  scan_pass(*rc, config, scan);
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

} // namespace

Result<Report> run_unify(const std::vector<UnifyGuest>& guests, const UnifyOptions& options) {
  return with_workers(options.threads,
                      [&]() -> Result<Report> { return unify_on_workers(guests, options); });
}

} // namespace vu
