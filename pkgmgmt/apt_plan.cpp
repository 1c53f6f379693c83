// Parsing apt-get's simulation and dpkg's file lists (see apt_plan.h).
#include "pkgmgmt/apt_plan.h"

#include "kernel/fs.h"
#include "pkgmgmt/text_lines.h"

#include <algorithm>
#include <fcntl.h>

namespace vu {

namespace {

bool is_lower_alnum(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

// Architecture names: lower-case letters, digits, '-'.
bool valid_arch(std::string_view arch) {
  if (arch.empty() || arch.size() > 64) return false;
  return std::all_of(arch.begin(), arch.end(),
                     [](char c) { return is_lower_alnum(c) || c == '-'; });
}

// Debian policy 5.6.1: lower-case letters, digits, '+', '-', '.'; at least
// two characters, starting with a letter or digit. Then ":arch" (lower-case
// letters, digits, '-').
bool valid_package(std::string_view name) {
  auto colon = name.find(':');
  std::string_view base = name.substr(0, colon);
  if (base.size() < 2 || base.size() > 256 || !is_lower_alnum(base.front())) return false;
  for (char c : base)
    if (!is_lower_alnum(c) && c != '+' && c != '-' && c != '.') return false;
  if (colon == std::string_view::npos) return true;
  std::string_view arch = name.substr(colon + 1);
  return valid_arch(arch);
}

// Debian policy 5.6.12: [epoch:]upstream[-revision] of alphanumerics and
// . + ~ - :
bool valid_version(std::string_view v) {
  if (v.empty() || v.size() > 256) return false;
  for (char c : v)
    if (!is_lower_alnum(c) && !(c >= 'A' && c <= 'Z') &&
        std::string_view(".+~-:").find(c) == std::string_view::npos)
      return false;
  return true;
}

// A file name: no '/', not "." or "..", no NUL, at most 255 bytes.
bool is_plain_file_name(std::string_view n) {
  return !n.empty() && n.size() <= 255 && n != "." && n != ".." &&
         n.find('/') == std::string_view::npos && n.find('\0') == std::string_view::npos;
}

std::string_view next_word(std::string_view& rest) {
  while (!rest.empty() && rest.front() == ' ') rest.remove_prefix(1);
  auto sp = rest.find(' ');
  std::string_view w = rest.substr(0, sp);
  rest.remove_prefix(sp == std::string_view::npos ? rest.size() : sp);
  return w;
}

// "[OLD]" or "(NEW RELEASES [ARCH])" parts after the name.
Status parse_step_rest(std::string_view rest, AptStep& step, const std::string& where) {
  while (!rest.empty() && rest.front() == ' ') rest.remove_prefix(1);
  if (!rest.empty() && rest.front() == '[') {
    auto end = rest.find(']');
    if (end == std::string_view::npos || !valid_version(rest.substr(1, end - 1)))
      return described_error(EINVAL, where + ": bad installed version");
    step.old_version = std::string(rest.substr(1, end - 1));
    rest.remove_prefix(end + 1);
    while (!rest.empty() && rest.front() == ' ') rest.remove_prefix(1);
  }
  const bool wants_new = step.action == AptAction::install || step.action == AptAction::configure;
  if (!wants_new) return {};
  if (rest.empty() || rest.front() != '(')
    return described_error(EINVAL, where + ": no candidate version");
  auto close = rest.find(')');
  if (close == std::string_view::npos)
    return described_error(EINVAL, where + ": unterminated candidate version");
  std::string_view inner = rest.substr(1, close - 1);
  std::string_view version = next_word(inner);
  if (!valid_version(version)) return described_error(EINVAL, where + ": bad candidate version");
  step.new_version = std::string(version);
  auto open = inner.rfind('[');
  auto end = inner.rfind(']');
  if (open == std::string_view::npos || end == std::string_view::npos || end < open ||
      !valid_arch(inner.substr(open + 1, end - open - 1)))
    return described_error(EINVAL, where + ": no architecture");
  step.arch = std::string(inner.substr(open + 1, end - open - 1));
  return {};
}

} // namespace

Result<std::vector<AptStep>> parse_apt_simulation(std::string_view text, size_t max_steps) {
  static const std::pair<std::string_view, AptAction> k_words[] = {{"Inst ", AptAction::install},
                                                                   {"Remv ", AptAction::remove},
                                                                   {"Purg ", AptAction::purge},
                                                                   {"Conf ", AptAction::configure}};
  std::vector<AptStep> steps;
  Status parsed = for_each_line(text, [&](std::string_view line, size_t line_no) -> Status {
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    auto word = std::find_if(std::begin(k_words), std::end(k_words),
                             [&](const auto& w) { return line.rfind(w.first, 0) == 0; });
    if (word == std::end(k_words)) return {};
    const std::string where = "apt-get --simulate, line " + std::to_string(line_no);
    if (line.size() > 4096 || line.find('\0') != std::string_view::npos)
      return described_error(EINVAL, where + ": malformed line");
    if (steps.size() >= max_steps) return described_error(E2BIG, where + ": too many steps");
    AptStep step;
    step.action = word->second;
    std::string_view rest = line.substr(5);
    std::string_view name = next_word(rest);
    if (!valid_package(name)) return described_error(EINVAL, where + ": bad package name");
    step.package = std::string(name);
    VU_TRY(parse_step_rest(rest, step, where));
    steps.push_back(std::move(step));
    return {};
  });
  if (!parsed.ok()) return parsed.error();
  return steps;
}

bool apt_command_changes_packages(const std::vector<std::string>& args) {
  static const std::vector<std::string> k_valued = {"-o",
                                                    "-c",
                                                    "-t",
                                                    "-a",
                                                    "-P",
                                                    "--option",
                                                    "--config-file",
                                                    "--target-release",
                                                    "--default-release",
                                                    "--host-architecture",
                                                    "--build-profiles"};
  static const std::vector<std::string> k_changing = {
      "install",      "remove",     "purge",     "upgrade",   "dist-upgrade",
      "full-upgrade", "autoremove", "autopurge", "reinstall", "build-dep"};
  // Options after which apt-get changes nothing installed.
  static const std::vector<std::string> k_no_change = {
      "-s",       "--simulate", "--just-print",    "--dry-run",   "--recon",
      "--no-act", "-d",         "--download-only", "--print-uris"};
  std::string command; // the first word that is no option
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (std::find(k_valued.begin(), k_valued.end(), a) != k_valued.end()) {
      ++i;
      continue;
    }
    if (std::find(k_no_change.begin(), k_no_change.end(), a) != k_no_change.end()) return false;
    if (a.size() > 1 && a[0] == '-' && a[1] != '-' && a.find_first_of("sd", 1) != std::string::npos)
      return false; // in a cluster such as -ys
    if (command.empty() && !a.empty() && a.front() != '-') command = a;
  }
  return std::find(k_changing.begin(), k_changing.end(), command) != k_changing.end();
}

std::string apt_archive_name(const AptStep& step) {
  std::string name = step.package.substr(0, step.package.find(':'));
  std::string version;
  for (char c : step.new_version) version += c == ':' ? std::string("%3a") : std::string(1, c);
  return name + "_" + version + "_" + step.arch + ".deb";
}

namespace {

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

Result<std::string> percent_decoded(std::string_view s, const std::string& where) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '%') {
      out += s[i];
      continue;
    }
    int hi = i + 2 < s.size() ? hex_value(s[i + 1]) : -1;
    int lo = i + 2 < s.size() ? hex_value(s[i + 2]) : -1;
    if (hi < 0 || lo < 0) return described_error(EINVAL, where + ": bad %-escape");
    out += static_cast<char>(hi * 16 + lo);
    i += 2;
  }
  return out;
}

} // namespace

Result<std::vector<std::string>>
parse_apt_print_uris(std::string_view text, const std::string& archives_dir, size_t max_entries) {
  std::vector<std::string> out;
  Status parsed = for_each_line(text, [&](std::string_view line, size_t line_no) -> Status {
    if (line.empty() || line.front() != '\'') return {};
    const std::string where = "apt-get --print-uris, line " + std::to_string(line_no);
    auto close = line.find('\'', 1);
    if (line.size() > 8192 || close == std::string_view::npos)
      return described_error(EINVAL, where + ": malformed line");
    std::string_view uri = line.substr(1, close - 1);
    std::string_view rest = line.substr(close + 1);
    std::string_view name = next_word(rest);
    if (!is_plain_file_name(name)) return described_error(EINVAL, where + ": bad archive name");
    if (out.size() >= max_entries) return described_error(E2BIG, where + ": too many archives");
    if (uri.rfind("file:", 0) != 0) {
      out.push_back(archives_dir + "/" + std::string(name));
      return {};
    }
    VU_TRY_ASSIGN(path, percent_decoded(uri.substr(5), where));
    if (path.empty() || path.front() != '/' || path.size() > 4096 ||
        path.find('\0') != std::string::npos)
      return described_error(EINVAL, where + ": not an absolute path");
    out.push_back(std::move(path));
    return {};
  });
  if (!parsed.ok()) return parsed.error();
  return out;
}

Result<std::vector<std::string>> parse_dpkg_file_list(std::string_view text,
                                                      std::string_view origin, size_t max_entries) {
  std::vector<std::string> out;
  Status parsed = for_each_line(text, [&](std::string_view line, size_t line_no) -> Status {
    if (line.empty()) return {};
    const std::string where = std::string(origin) + ":" + std::to_string(line_no);
    if (line.size() > 4096 || line.front() != '/' || line.find('\0') != std::string_view::npos)
      return described_error(EINVAL, where + ": not an absolute path of at most 4096 bytes");
    if (out.size() >= max_entries) return described_error(E2BIG, where + ": too many paths");
    out.emplace_back(line);
    return {};
  });
  if (!parsed.ok()) return parsed.error();
  return out;
}

Result<std::vector<std::string>> read_dpkg_file_lists(int admin_fd, const std::string& package,
                                                      uint64_t max_bytes) {
  if (!valid_package(package))
    return described_error(EINVAL, "'" + package + "' is not a package name");
  auto info = open_beneath(admin_fd, "info", O_RDONLY | O_DIRECTORY);
  if (!info.ok()) {
    if (info.code() == ENOENT) return std::vector<std::string>{};
    return described_error(info.code(), "dpkg info directory: " + info.error().message());
  }
  VU_TRY_ASSIGN(entries, read_directory(info->get()));
  const bool qualified = package.find(':') != std::string::npos;
  std::vector<std::string> paths;
  for (const auto& e : entries) {
    const bool exact = e.name == package + ".list";
    const bool any_arch =
        !qualified && e.name.rfind(package + ":", 0) == 0 && e.name.size() > package.size() + 6 &&
        e.name.compare(e.name.size() - 5, 5, ".list") == 0 &&
        valid_arch(std::string_view(e.name).substr(package.size() + 1,
                                                   e.name.size() - package.size() - 6));
    if (!exact && !any_arch) continue;
    auto text = read_file_beneath(info->get(), e.name, max_bytes);
    if (!text.ok())
      return described_error(text.code(), "dpkg info/" + e.name + ": " + text.error().message());
    VU_TRY_ASSIGN(list, parse_dpkg_file_list(*text, "dpkg info/" + e.name));
    paths.insert(paths.end(), list.begin(), list.end());
  }
  return paths;
}

} // namespace vu
