// The guest model: where a guest's configuration and root live.
//
// util-vserver layout: a configuration base (default /etc/vservers, env
// VSERVER_CONFDIR, option --confdir) holds one directory per guest; the
// guest's root is that directory's `vdir` entry (usually a symlink), or
// <vdirbase>/<name> where vdirbase is `.defaults/vdirbase` (default
// /vservers). The configuration base is trusted host data; nothing here
// reads inside a guest's root.
#pragma once

#include "kernel/result.h"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace vu {

struct Guest {
  std::string name;    // display name: the config directory's or root's basename
  std::string root;    // absolute, symlink-free path of the guest's root
  std::string confdir; // its configuration directory; empty for a bare root path
};

class ConfigBase {
public:
  // `dir` empty: $VSERVER_CONFDIR, else /etc/vservers.
  explicit ConfigBase(std::string dir = {});

  const std::string& dir() const { return m_dir; }
  // <dir>/.defaults/vdirbase resolved, else /vservers.
  std::string vdirbase() const;

  // A name ("web1") is looked up under dir(); an argument containing '/' is
  // a configuration directory when it has a `vdir` entry, else a guest root.
  // Fails with ENOENT and a clear message when neither exists.
  Result<Guest> resolve(const std::string& arg) const;
  // Every guest of the base: each directory not starting with '.', sorted.
  Result<std::vector<Guest>> all() const;
  // The reference guests of `guest`: apps/vunify/refserver.* entries (each a
  // symlink to, or the name of, another guest), in name order.
  Result<std::vector<Guest>> refservers(const Guest& guest) const;

private:
  Result<Guest> from_confdir(const std::string& confdir, const std::string& name) const;
  std::string m_dir;
};

// Reads a one-value configuration file: the first line that is neither
// empty nor a '#' comment, trimmed. nullopt when the file does not exist;
// an error when it is not a regular file (a FIFO, a device, a directory)
// or larger than k_max_config_bytes.
inline constexpr uint64_t k_max_config_bytes = 64 * 1024;
Result<std::optional<std::string>> read_config_value(const std::string& path);

// realpath(3) as a Result.
Result<std::string> real_path(const std::string& path);

bool path_exists(const std::string& path);

} // namespace vu
