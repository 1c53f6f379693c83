// Running other programs: the suite's own (beside the running one) and
// commands inside guests whose output the caller reads.
#pragma once

#include "core/guest_root.h"
#include "core/vserver_config.h"
#include "kernel/fd.h"
#include "kernel/result.h"

#include <functional>
#include <string>
#include <string_view>
#include <sys/types.h>
#include <vector>

namespace vu {

// The directory of the running program (empty when /proc/self/exe cannot
// be read).
std::string program_dir();

// The suite's program `tool` in the directory of the running program,
// else /usr/sbin/<tool>.
std::string sibling_program(const std::string& tool);

struct ProgramOutput {
  int exit_code = 0; // 128 + signal when killed
  std::string out;   // its stdout, at most max_bytes
};

// Runs a host program (argv[0] a path) with stdin /dev/null, stdout read
// into the result (more than max_bytes is an error) and stderr inherited.
Result<ProgramOutput> run_host_program(const std::vector<std::string>& argv,
                                       size_t max_bytes = 16 << 20);

// The same in two halves, so the caller can work meanwhile: start, then
// finish (reads its stdout to the end, reaps it).
struct StartedProgram {
  std::string name;
  pid_t pid = -1;
  UniqueFd out;
};
Result<StartedProgram> start_host_program(const std::vector<std::string>& argv);
Result<ProgramOutput> finish_host_program(StartedProgram& started, size_t max_bytes = 16 << 20);
// finish_host_program handing the output to `sink` as it comes (a sink
// error ends the delivery, the rest is read and dropped, and the error is
// returned); the exit status.
Result<int> finish_host_program_into(StartedProgram& started,
                                     const std::function<Status(std::string_view)>& sink);

// Runs `argv` in the guest's context (core/runtime.h run_in_guest_context)
// and hands its output (stdout and stderr) to `sink` while it runs, on
// this thread; a sink error ends the delivery (the rest is read and
// dropped) and is returned. Output a process of the guest still writes
// after the command has ended is not read. `mounts`: core/runtime.h.
Result<int> run_in_guest_reading(const VServerConfig& config, const std::vector<std::string>& argv,
                                 const std::function<Status(std::string_view)>& sink,
                                 const std::vector<ContextDir>& mounts = {});

} // namespace vu
