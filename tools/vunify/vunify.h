// The vunify command line (see man/vunify.8).
#pragma once

namespace vu {

enum class ExitCode : int {
  ok = 0,      // everything done
  partial = 1, // some files failed; the rest was done
  usage = 2,   // bad arguments or set-up error; nothing changed
};

// Parses arguments, runs the unify pipeline, prints the report. The only
// top-level error handler of the program. Returns an ExitCode value.
int run_vunify(int argc, char** argv);

} // namespace vu
