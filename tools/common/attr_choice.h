// Which attribute back end a program uses (kernel/attr.h): the
// --attr-backend option, else the configuration's choice, else detection.
#pragma once

#include "kernel/attr.h"

#include <CLI/CLI.hpp>

#include <memory>
#include <string>

namespace vu {

// --attr-backend auto|mainline|bpf|linux-vserver.
CLI::Option* add_attr_backend_option(CLI::App& app, std::string& choice);

// `cli` when given (a forced bpf back end works without its program: marks
// are set, not enforced); else the value in the configuration base's
// .defaults/apps/vunify/attr-backend (a configured bpf back end whose
// program is not loaded falls back to mainline: shared files are made
// immutable); else auto. What the user should know is printed as one line,
// "<prog>: warning: ...", on stderr. A file there that cannot be read as
// configuration (a FIFO, a directory, too big) throws: a set-up error.
std::unique_ptr<AttrBackend> choose_attr_backend(const char* prog, const std::string& cli,
                                                 const std::string& confdir);

// The configuration's choice (empty when the file is absent), read as
// every configuration value is (core/guest.h: never blocking, bounded,
// regular files only).
Result<std::string> configured_attr_backend(const std::string& confdir);

// Guests start only when the configured back end can protect them: on a
// host configured for bpf, only while its program is loaded.
Status check_attr_backend_for_start(const std::string& confdir);

} // namespace vu
