// Runs a program with arguments (no shell), capturing stdout and stderr.
#pragma once

#include <string>
#include <vector>

namespace vu::test {

struct ProgramResult {
  int status = -1; // exit status, or -signal when killed
  std::string out;
  std::string err;
};

ProgramResult run_program(const std::vector<std::string>& argv,
                          const std::vector<std::string>& extra_env = {});

// Runs vunify (the binary under test) with `args`.
ProgramResult run_vunify(const std::vector<std::string>& args,
                         const std::vector<std::string>& extra_env = {});

} // namespace vu::test
