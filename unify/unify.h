// The unify pipeline: find byte-identical files across guests and replace
// them with protected hard links to one inode. unify.cpp lists the passes
// (passes.h), ARCHITECTURE.md tells the data flow.
#pragma once

#include "unify/guests.h"
#include "unify/options.h"
#include "unify/report.h"
#include "unify/scan.h"

#include <vector>

namespace vu {

struct UnifyOptions : RunOptions {
  // Memory the run's records may take (0: no limit). A run over more files
  // than fit is made of runs over size ranges (files of one size are
  // always in the same range), one after the other.
  uint64_t memory_limit = 0;
  // Set by the partitioned run for each of its parts.
  uint64_t range_lo = 0, range_hi = UINT64_MAX;
  SizeHistogram* histogram = nullptr;
  ScanBudget* budget = nullptr;
};

// What one file costs a run in memory, for --memory-limit (its name's and
// its inode's records, its path, the passes' indices; measured 290-340
// bytes, see ARCHITECTURE.md).
inline constexpr uint64_t k_bytes_per_file = 400;

// The size ranges a run over `histogram`'s files is cut into so that each
// holds at most `max_files` files (a single size with more stays one
// range): inclusive (lo, hi) pairs in ascending order covering 0..max.
std::vector<std::pair<uint64_t, uint64_t>> size_ranges(const SizeHistogram& histogram,
                                                       uint64_t max_files);

// Runs the whole pipeline over `guests`. Per-file failures are counted in
// the report and never abort the run; set-up errors (a guest root or the
// state directory cannot be opened, a guest is locked by another run and
// the options say not to wait) are returned as Error. Takes the guests'
// locks itself (not in a dry run).
Result<Report> run_unify(const std::vector<UnifyGuest>& guests, const UnifyOptions& options);

} // namespace vu
