// The guest model: where a guest's configuration and root live.
//
// util-vserver layout: a configuration base (default /etc/vservers, env
// VSERVER_CONFDIR, option --confdir) holds one directory per guest; the
// guest's root is that directory's `vdir` entry (usually a symlink), or
// <vdirbase>/<name> where vdirbase is `.defaults/vdirbase` (default
// /vservers). The configuration base is trusted host data; nothing here
// reads inside a guest's root.
#pragma once

#include "kernel/path.h"
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
  // Whether dir() can be a configuration base: an error when it is not a
  // directory, when it was named (--confdir, $VSERVER_CONFDIR) but does not
  // exist, or when it looks like a guest root (etc/passwd and usr/) - a
  // mix-up of --confdir with a guest's path. The default's absence is fine.
  Status check() const;
  // <dir>/.defaults/vdirbase resolved, else /vservers.
  std::string vdirbase() const;

  // A name ("web1") is looked up under dir(); an argument containing '/' is
  // a configuration directory when it has a `vdir` entry, else a guest root.
  // Fails with ENOENT and a clear message when neither exists.
  Result<Guest> resolve(const std::string& arg) const;
  // Every guest of the base: each directory not starting with '.', sorted.
  // A directory whose guest cannot be resolved (root missing, root "/")
  // is listed in `skipped` with the reason; the others are still returned.
  // Fails only when the base itself cannot be read.
  struct Skipped {
    std::string name;
    std::string reason;
  };
  struct GuestList {
    std::vector<Guest> guests;
    std::vector<Skipped> skipped;
    // Directories that are no guest at all: no `vdir`, and nothing at
    // vdirbase/<name> (a stray directory; the tools warn and go on).
    std::vector<Skipped> stray;
  };
  Result<GuestList> all() const;
  // The reference guests of `guest`: apps/vunify/refserver.* entries (each a
  // symlink to, or the name of, another guest), in name order.
  Result<std::vector<Guest>> refservers(const Guest& guest) const;

  // The hash store of a guest, in util-vserver's layout: the guest's
  // apps/vunify/hash, else the base's .defaults/apps/vunify/hash, is a
  // directory holding one entry per file system - a directory, or a
  // symlink to one, not starting with '.' (its regular files, util-vserver's
  // method/blocks/blocksize settings, are ignored) - and the guest's store
  // is the entry on the guest root's file system. Without that
  // configuration: <vdirbase>/.hash. Errors: configured, but no entry lies
  // on the guest's file system. Returns an absolute, symlink-free path.
  Result<std::string> hash_store_of(const Guest& guest) const;
  // Every store the configuration names (.defaults/apps/vunify/hash's
  // entries, each guest's apps/vunify/hash entries), else <vdirbase>/.hash.
  std::vector<std::string> hash_stores() const;

private:
  Result<Guest> from_confdir(const std::string& confdir, const std::string& name) const;
  std::string m_dir;
  bool m_named = false; // given, or from $VSERVER_CONFDIR
};

// Reads a one-value configuration file: the first line that is neither
// empty nor a '#' comment, trimmed. nullopt when the file does not exist;
// an error when it is not a regular file (a FIFO, a device, a directory)
// or larger than k_max_config_bytes.
inline constexpr uint64_t k_max_config_bytes = 64 * 1024;
Result<std::optional<std::string>> read_config_value(const std::string& path);
// The value in a configuration file's text (the rule above).
std::string parse_config_value(std::string_view text);
// A decimal number of at most `max` (no sign, no spaces, no leading '+').
Result<uint64_t> parse_decimal(std::string_view text, uint64_t max);
// Every line of a configuration file's text that is neither empty nor a
// '#' comment, trimmed (a value is the first of them).
std::vector<std::string> parse_config_lines(std::string_view text);

// realpath(3) as a Result.
Result<std::string> real_path(const std::string& path);

// Checks that guest roots can be worked on together: none is "/", none is
// given twice, none lies inside another (a run over g1 and g1/usr would
// treat g1's own files as another guest's). The error names both roots.
Status check_guest_roots(const std::vector<Guest>& guests);

bool path_exists(const std::string& path);

} // namespace vu
