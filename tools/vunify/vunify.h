// The vunify command line (see man/vunify.8).
#pragma once

#include "tools/common/cli.h"

namespace vu {

// Parses arguments, runs the unify pipeline, prints the report. The only
// top-level error handler of the program. Returns an ExitCode value.
int run_vunify(int argc, char** argv);

} // namespace vu
