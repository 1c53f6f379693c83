// Guest configuration lookup (see guest.h for the layout).
#include "core/guest.h"

#include "kernel/fs.h"

#include <algorithm>
#include <climits>
#include <cstdlib>
#include <dirent.h>
#include <sys/stat.h>

namespace vu {

namespace {

std::string basename_of(std::string path) {
  while (path.size() > 1 && path.back() == '/') path.pop_back();
  auto pos = path.rfind('/');
  return pos == std::string::npos ? path : path.substr(pos + 1);
}

bool is_directory(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

} // namespace

bool path_exists(const std::string& path) {
  struct stat st {};
  return ::lstat(path.c_str(), &st) == 0;
}

Result<std::string> real_path(const std::string& path) {
  char buf[PATH_MAX];
  if (!::realpath(path.c_str(), buf)) return errno_error("realpath " + path);
  return std::string(buf);
}

Result<std::optional<std::string>> read_config_value(const std::string& path) {
  auto text = read_host_file(path, k_max_config_bytes);
  if (!text.ok()) {
    if (text.code() == ENOENT) return std::optional<std::string>{};
    return text.error();
  }
  return std::optional<std::string>(parse_config_value(*text));
}

std::vector<std::string> parse_config_lines(std::string_view text) {
  std::vector<std::string> out;
  while (!text.empty()) {
    size_t eol = text.find('\n');
    std::string_view line = text.substr(0, eol);
    text.remove_prefix(eol == std::string_view::npos ? text.size() : eol + 1);
    auto b = line.find_first_not_of(" \t\r");
    if (b == std::string_view::npos || line[b] == '#') continue;
    auto e = line.find_last_not_of(" \t\r");
    out.emplace_back(line.substr(b, e - b + 1));
  }
  return out;
}

Result<uint64_t> parse_decimal(std::string_view v, uint64_t max) {
  if (v.empty() || v.size() > 20 || !std::all_of(v.begin(), v.end(), ::isdigit))
    return described_error(EINVAL, "'" + std::string(v) + "' is not a number");
  uint64_t n = 0;
  for (char c : v) {
    if (n > (max - static_cast<uint64_t>(c - '0')) / 10)
      return described_error(ERANGE, "'" + std::string(v) + "' is above " + std::to_string(max));
    n = n * 10 + static_cast<uint64_t>(c - '0');
  }
  return n;
}

std::string parse_config_value(std::string_view text) {
  auto lines = parse_config_lines(text);
  return lines.empty() ? std::string() : std::move(lines.front());
}

ConfigBase::ConfigBase(std::string dir) : m_dir(std::move(dir)) {
  m_named = !m_dir.empty();
  if (m_dir.empty()) {
    const char* env = std::getenv("VSERVER_CONFDIR");
    m_named = env && *env;
    m_dir = m_named ? env : "/etc/vservers";
  }
  while (m_dir.size() > 1 && m_dir.back() == '/') m_dir.pop_back();
}

Status ConfigBase::check() const {
  if (!path_exists(m_dir)) {
    if (!m_named) return {};
    return described_error(ENOENT, "configuration base " + m_dir + " does not exist");
  }
  if (!is_directory(m_dir))
    return described_error(ENOTDIR, "configuration base " + m_dir + " is not a directory");
  if (path_exists(m_dir + "/etc/passwd") && is_directory(m_dir + "/usr"))
    return described_error(EINVAL, "configuration base " + m_dir +
                                       " looks like a guest root (etc/passwd, usr/), not like "
                                       "/etc/vservers; --confdir names the configuration base");
  return {};
}

std::string ConfigBase::vdirbase() const {
  auto r = real_path(m_dir + "/.defaults/vdirbase");
  return r.ok() ? r.value() : std::string("/vservers");
}

Result<Guest> ConfigBase::from_confdir(const std::string& confdir, const std::string& name) const {
  Guest g;
  g.name = name;
  VU_TRY_ASSIGN(conf, real_path(confdir));
  g.confdir = conf;
  std::string vdir = conf + "/vdir";
  std::string root = path_exists(vdir) ? vdir : vdirbase() + "/" + name;
  auto r = real_path(root);
  if (!r.ok() && r.code() == ENOENT)
    return described_error(ENOENT, "guest '" + name + "': root " + root +
                                       " does not exist (no vdir in " + conf + ")");
  if (!r.ok()) return make_error(r.code(), "guest '" + name + "': root " + root);
  if (!is_directory(r.value()))
    return described_error(ENOTDIR,
                           "guest '" + name + "': root " + r.value() + " is not a directory");
  if (r.value() == "/")
    return described_error(EINVAL,
                           "guest '" + name + "': root " + root + " is / (the host); refused");
  g.root = r.value();
  return g;
}

Result<Guest> ConfigBase::resolve(const std::string& arg) const {
  if (arg.empty()) return described_error(EINVAL, "empty guest name");
  if (arg.find('/') == std::string::npos) {
    if (arg == "." || arg == "..")
      return described_error(EINVAL, "invalid guest name '" + arg + "'");
    std::string conf = m_dir + "/" + arg;
    if (!is_directory(conf))
      return described_error(ENOENT, "no guest '" + arg + "' in " + m_dir +
                                         " (give a path containing '/' for a bare directory)");
    return from_confdir(conf, arg);
  }
  if (path_exists(arg + "/vdir")) return from_confdir(arg, basename_of(arg));
  auto r = real_path(arg);
  if (!r.ok() && r.code() == ENOENT)
    return described_error(ENOENT, "guest root " + arg + " does not exist");
  if (!r.ok()) return make_error(r.code(), "guest root " + arg);
  if (!is_directory(r.value()))
    return described_error(ENOTDIR, "guest root " + arg + " is not a directory");
  if (r.value() == "/")
    return described_error(EINVAL, "guest root " + arg + " is / (the host); refused");
  return Guest{basename_of(r.value()), r.value(), {}};
}

Result<ConfigBase::GuestList> ConfigBase::all() const {
  DIR* d = ::opendir(m_dir.c_str());
  if (!d) return errno_error("open configuration base " + m_dir);
  std::vector<std::string> names;
  while (auto* e = ::readdir(d)) {
    std::string n = e->d_name;
    if (n.empty() || n[0] == '.') continue;
    if (is_directory(m_dir + "/" + n)) names.push_back(n);
  }
  ::closedir(d);
  std::sort(names.begin(), names.end());
  GuestList out;
  const std::string base = vdirbase();
  for (const auto& n : names) {
    auto g = from_confdir(m_dir + "/" + n, n);
    if (g.ok())
      out.guests.push_back(std::move(*g));
    else if (g.code() == ENOENT && !path_exists(m_dir + "/" + n + "/vdir") &&
             !path_exists(base + "/" + n))
      out.stray.push_back({n, m_dir + "/" + n + " has no vdir and there is no " + base + "/" + n +
                                  ": not a guest, left alone"});
    else
      out.skipped.push_back({n, g.error().message()});
  }
  return out;
}

namespace {

// The entries of a util-vserver hash configuration directory that are (or
// link to) directories: (device, real path), sorted by name.
std::vector<std::pair<uint64_t, std::string>> hash_dir_entries(const std::string& hashdir) {
  std::vector<std::pair<uint64_t, std::string>> out;
  DIR* d = ::opendir(hashdir.c_str());
  if (!d) return out;
  std::vector<std::string> names;
  while (auto* e = ::readdir(d))
    if (e->d_name[0] != '.') names.push_back(e->d_name);
  ::closedir(d);
  std::sort(names.begin(), names.end());
  for (const auto& n : names) {
    struct stat st {};
    std::string p = hashdir + "/" + n;
    if (::stat(p.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) continue;
    auto real = real_path(p);
    if (real.ok()) out.push_back({static_cast<uint64_t>(st.st_dev), *real});
  }
  return out;
}

} // namespace

Result<std::string> ConfigBase::hash_store_of(const Guest& guest) const {
  std::vector<std::string> dirs;
  if (!guest.confdir.empty()) dirs.push_back(guest.confdir + "/apps/vunify/hash");
  dirs.push_back(m_dir + "/.defaults/apps/vunify/hash");
  for (const auto& hashdir : dirs) {
    if (!is_directory(hashdir)) continue;
    struct stat root {};
    if (::stat(guest.root.c_str(), &root) != 0) return errno_error("stat " + guest.root);
    for (const auto& [dev, path] : hash_dir_entries(hashdir))
      if (dev == static_cast<uint64_t>(root.st_dev)) return path;
    return described_error(ENOENT, "guest '" + guest.name + "': no entry of " + hashdir +
                                       " is a directory on the file system of " + guest.root +
                                       " (util-vserver layout: one link per file system)");
  }
  return vdirbase() + "/.hash";
}

std::vector<std::string> ConfigBase::hash_stores() const {
  std::vector<std::string> out;
  auto add_dir = [&](const std::string& hashdir) {
    for (const auto& [dev, path] : hash_dir_entries(hashdir))
      if (std::find(out.begin(), out.end(), path) == out.end()) out.push_back(path);
  };
  add_dir(m_dir + "/.defaults/apps/vunify/hash");
  auto guests = all();
  if (guests.ok())
    for (const auto& g : guests->guests) add_dir(g.confdir + "/apps/vunify/hash");
  if (out.empty()) out.push_back(vdirbase() + "/.hash");
  return out;
}

Status check_guest_roots(const std::vector<Guest>& guests) {
  for (size_t i = 0; i < guests.size(); ++i) {
    const Guest& a = guests[i];
    if (a.root == "/")
      return described_error(EINVAL, "guest '" + a.name + "': its root is / (the host); refused");
    for (size_t j = i + 1; j < guests.size(); ++j) {
      const Guest& b = guests[j];
      if (a.root == b.root)
        return described_error(EINVAL, "guest root " + a.root + " given twice ('" + a.name +
                                           "' and '" + b.name + "'); refused");
      if (path_within(a.root, b.root) || path_within(b.root, a.root)) {
        const Guest& in = path_within(a.root, b.root) ? a : b;
        const Guest& out = &in == &a ? b : a;
        return described_error(EINVAL, "guest root " + in.root + " ('" + in.name +
                                           "') lies inside guest root " + out.root + " ('" +
                                           out.name + "'); refused");
      }
    }
  }
  return {};
}

Result<std::vector<Guest>> ConfigBase::refservers(const Guest& guest) const {
  std::vector<Guest> out;
  if (guest.confdir.empty()) return out;
  std::string appdir = guest.confdir + "/apps/vunify";
  DIR* d = ::opendir(appdir.c_str());
  if (!d) return out;
  std::vector<std::string> names;
  while (auto* e = ::readdir(d)) {
    std::string n = e->d_name;
    if (n.rfind("refserver.", 0) == 0) names.push_back(n);
  }
  ::closedir(d);
  std::sort(names.begin(), names.end());
  for (const auto& n : names) {
    // A symlink to (or a copy of) another guest's configuration directory,
    // or a file naming the guest.
    std::string p = appdir + "/" + n;
    Result<Guest> g = described_error(ENOENT, "");
    if (is_directory(p)) {
      auto real = real_path(p);
      g = real.ok() ? from_confdir(p, basename_of(*real)) : Result<Guest>(real.error());
    } else {
      auto v = read_config_value(p);
      if (!v.ok())
        g = v.error();
      else if (!v.value() || v.value()->empty())
        g = described_error(EINVAL, "names no guest");
      else
        g = resolve(*v.value());
    }
    if (!g.ok())
      return described_error(g.code(), "reference guest " + p + ": " + g.error().message());
    out.push_back(std::move(g.value()));
  }
  return out;
}

} // namespace vu
