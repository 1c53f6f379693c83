// What every program's command line shares: exit codes, the rule that a
// name or path is never empty, and usage errors on one line.
#pragma once

#include "kernel/caps.h"

#include <CLI/CLI.hpp>

#include <optional>
#include <string>
#include <vector>

namespace vu {

// Exit status of every program of the suite.
enum class ExitCode : int {
  ok = 0,      // everything done
  partial = 1, // something failed (reported); the rest was done
  usage = 2,   // bad arguments or set-up error; nothing changed
};

inline int exit_status(ExitCode c) {
  return static_cast<int>(c);
}

// Rejects an empty argument: '' never means "the current directory" or "the
// default". For every option and positional that names a guest, a path or
// a file.
const CLI::Validator& non_empty();

// --NAME SIZE: bytes, or a number with a unit as du and find take them:
// K, M, G, T (powers of 1024; KB, KiB, MiB... alike), e.g. --min-size 1M.
CLI::Option* add_size_option(CLI::App& app, const std::string& name, uint64_t& value,
                             const std::string& what);

// The default of --memory-limit: a quarter of the RAM.
uint64_t default_memory_limit();

// --exclude PATTERN and --include PATTERN (repeatable, util-vserver's
// pattern syntax): rules before every exclude list, --include first (it
// wins over --exclude, as in util-linux hardlink).
void add_pattern_options(CLI::App& app, std::vector<std::string>& excludes,
                         std::vector<std::string>& includes);

// --confdir DIR: the configuration base, for every program that reads
// guests' configuration.
CLI::Option* add_confdir_option(CLI::App& app, std::string& confdir);

// Parses the command line. --help and --version print and yield ExitCode::ok;
// a usage error prints one line, "<prog>: error: <what> (see <prog> --help)",
// and yields ExitCode::usage; nullopt when the program should go on.
std::optional<int> parse_command_line(CLI::App& app, int argc, char** argv);
std::optional<int> parse_command_line(CLI::App& app, std::vector<std::string> reversed_args);

// The end of --help: the exit codes and a few examples, after whatever
// footer the program has. k_common_exit_codes is what most programs use.
inline constexpr const char* k_common_exit_codes =
    "0 done; 1 something failed (each kind reported, the rest done); 2 usage or set-up error "
    "(nothing changed)";
void add_help_footer(CLI::App& app, const std::string& exit_codes,
                     const std::vector<std::string>& examples);

// Prints "<prog>: error: <message>" on stderr.
void print_error(const std::string& prog, const std::string& message);

// Throws (a set-up error: one line, exit status 2) unless `confdir` (empty:
// $VSERVER_CONFDIR or /etc/vservers) can be a configuration base - see
// ConfigBase::check. Every program that reads the base calls it first.
void require_config_base(const std::string& confdir);

// Checked before a run that changes files does any work (a run without
// them would read everything and then fail file by file): throws "run it
// as root: <what> needs CAP_...[; <instead>]" unless the effective set
// holds `need`.
void require_capabilities(CapMask need, const std::string& what, const std::string& instead);
// What linking guests' files needs (vunify, vhashify): CAP_FOWNER and
// CAP_DAC_OVERRIDE, and CAP_LINUX_IMMUTABLE when shared inodes are protected.
CapMask linking_capabilities(bool protect);
// What vunify --reflink needs: reading every file, and sharing extents of
// files it does not open for writing (CAP_SYS_ADMIN).
CapMask reflink_capabilities();

// The one top-level error handler of every program: runs `run` and turns
// an exception that escapes it into one line on stderr and exit status 2.
int run_program(const char* prog, int (*run)(int, char**), int argc, char** argv);

} // namespace vu
