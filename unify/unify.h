// The unify pipeline: find byte-identical files across guests and replace
// them with protected hard links to one inode. unify.cpp lists the passes
// (passes.h), ARCHITECTURE.md tells the data flow.
#pragma once

#include "unify/guests.h"
#include "unify/options.h"
#include "unify/report.h"

#include <vector>

namespace vu {

struct UnifyOptions : RunOptions {};

// Runs the whole pipeline over `guests`. Per-file failures are counted in
// the report and never abort the run; set-up errors (a guest root or the
// state directory cannot be opened, a guest is locked by another run and
// the options say not to wait) are returned as Error. Takes the guests'
// locks itself (not in a dry run).
Result<Report> run_unify(const std::vector<UnifyGuest>& guests, const UnifyOptions& options);

} // namespace vu
