// The unify pipeline: find byte-identical files across guests and replace
// them with protected hard links to one inode. unify.cpp lists the passes
// (passes.h), ARCHITECTURE.md tells the data flow.
#pragma once

#include "unify/guests.h"
#include "unify/options.h"
#include "unify/report.h"
#include "unify/scan.h"

#include <functional>
#include <vector>

namespace vu {

struct UnifyOptions : RunOptions {};

// What one file costs a run in memory, for --memory-limit (its name's and
// its inode's records, its path, the passes' indices; measured 170-230
// bytes of peak RSS a file, see ARCHITECTURE.md).
inline constexpr uint64_t k_bytes_per_file = 300;

// The size ranges a run over `histogram`'s files is cut into so that each
// holds at most `max_files` files (a single size with more stays one
// range): inclusive (lo, hi) pairs in ascending order covering 0..max.
std::vector<std::pair<uint64_t, uint64_t>> size_ranges(const SizeHistogram& histogram,
                                                       uint64_t max_files);

// One run of a run made of size ranges: the first is over every size,
// counting sizes into `histogram` and keeping at most budget->max_files
// files; when that walk overflows, the others are over one range each.
struct RunPart {
  uint64_t lo = 0, hi = UINT64_MAX;
  SizeHistogram* histogram = nullptr;
  ScanBudget* budget = nullptr;
  void apply(RunOptions& o) const {
    o.range_lo = lo;
    o.range_hi = hi;
    o.histogram = histogram;
    o.budget = budget;
  }
};

// A run within `memory_limit`, at `bytes_per_file`: run() over every size
// first - when its walk keeps no more files than the limit allows, that is
// the run; else, with the sizes that walk counted, one run() per size range
// (size_ranges), one after the other, their reports added up (`parts`).
Result<Report> run_in_parts(uint64_t memory_limit, uint64_t bytes_per_file,
                            const std::function<Result<Report>(const RunPart&)>& run);

// Runs the whole pipeline over `guests`. Per-file failures are counted in
// the report and never abort the run; set-up errors (a guest root or the
// state directory cannot be opened, a guest is locked by another run and
// the options say not to wait) are returned as Error. Takes the guests'
// locks itself (not in a dry run).
Result<Report> run_unify(const std::vector<UnifyGuest>& guests, const UnifyOptions& options);

} // namespace vu
