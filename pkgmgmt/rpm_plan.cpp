// Reading rpm command lines and rpm's query output (see rpm_plan.h).
#include "pkgmgmt/rpm_plan.h"

#include "pkgmgmt/text_lines.h"

#include <algorithm>

namespace vu {

const char* const k_rpm_query_format = "@@name %{NAME}\\n[%{FILENAMES}\\n]";

namespace {

// Long options of rpm 4.18 that take a value as the next argument.
bool takes_value(std::string_view a) {
  static const std::string_view k_valued[] = {
      "--root",   "--dbpath",    "--define",      "--undefine", "--eval",
      "--rcfile", "--macros",    "--predefine",   "--pipe",     "--excludepath",
      "--prefix", "--relocate",  "--queryformat", "--qf",       "--target",
      "--load",   "--httpproxy", "--httpport",    "--ftpproxy", "--ftpport"};
  return std::find(std::begin(k_valued), std::end(k_valued), a) != std::end(k_valued);
}

enum class Mode { none, change, erase, query };

// The mode a long option sets, if any.
Mode long_mode(std::string_view a) {
  if (a == "--install" || a == "--upgrade" || a == "--freshen" || a == "--reinstall")
    return Mode::change;
  if (a == "--erase") return Mode::erase;
  if (a == "--query" || a == "--verify" || a == "--test" || a == "--querytags" || a == "--showrc")
    return Mode::query;
  return Mode::none;
}

// The mode a cluster of short options sets ("-Uvh"); sets `skip_next` when
// its last letter takes the next argument as its value.
Mode short_mode(std::string_view cluster, bool& skip_next) {
  // -D, -E and -r take a value: the rest of the cluster, or the next argument.
  if (cluster.front() == 'D' || cluster.front() == 'E' || cluster.front() == 'r') {
    skip_next = cluster.size() == 1;
    return Mode::none;
  }
  if (cluster.find_first_of("qV") != std::string_view::npos) return Mode::query;
  if (cluster.find('e') != std::string_view::npos) return Mode::erase;
  if (cluster.find_first_of("iUF") != std::string_view::npos) return Mode::change;
  return Mode::none;
}

bool valid_rpm_name(std::string_view n) {
  if (n.empty() || n.size() > 256 || n.front() == '-') return false;
  return std::all_of(n.begin(), n.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '+' || c == '-';
  });
}

} // namespace

RpmCommand read_rpm_command(const std::vector<std::string>& args) {
  RpmCommand cmd;
  bool query = false;
  std::vector<std::string> operands;
  for (size_t i = 0; i < args.size(); ++i) {
    std::string_view a = args[i];
    Mode mode = Mode::none;
    if (a == "--") {
      operands.insert(operands.end(), args.begin() + static_cast<long>(i) + 1, args.end());
      break;
    }
    if (a.rfind("--", 0) == 0) {
      if (takes_value(a)) ++i;
      mode = long_mode(a.substr(0, a.find('=')));
    } else if (a.size() > 1 && a.front() == '-') {
      bool skip_next = false;
      mode = short_mode(a.substr(1), skip_next);
      if (skip_next) ++i;
    } else {
      operands.emplace_back(a);
    }
    query = query || mode == Mode::query;
    cmd.erase = cmd.erase || mode == Mode::erase;
    cmd.changes = cmd.changes || mode == Mode::change || mode == Mode::erase;
  }
  if (query) return RpmCommand{};
  if (!cmd.changes) return cmd;
  for (const auto& op : operands) {
    const bool file = op.size() > 4 && op.compare(op.size() - 4, 4, ".rpm") == 0 &&
                      op.find("://") == std::string::npos;
    if (file)
      cmd.packages.push_back(op.front() == '/' ? op : "/" + op);
    else if (cmd.erase)
      cmd.names.push_back(op);
  }
  return cmd;
}

Result<RpmQueryResult> parse_rpm_query(std::string_view text, size_t max_entries) {
  RpmQueryResult r;
  Status parsed = for_each_line(text, [&](std::string_view line, size_t line_no) -> Status {
    const bool name = line.rfind("@@name ", 0) == 0;
    const bool path = !line.empty() && line.front() == '/';
    if (!name && !path) return {}; // rpm's messages
    const std::string where = "rpm query output, line " + std::to_string(line_no);
    if (r.names.size() + r.paths.size() >= max_entries)
      return described_error(E2BIG, where + ": too many entries");
    if (name) {
      if (!valid_rpm_name(line.substr(7)))
        return described_error(EINVAL, where + ": bad package name");
      r.names.emplace_back(line.substr(7));
    } else {
      if (line.size() > 4096 || line.find('\0') != std::string_view::npos)
        return described_error(EINVAL, where + ": bad path");
      r.paths.emplace_back(line);
    }
    return {};
  });
  if (!parsed.ok()) return parsed.error();
  return r;
}

} // namespace vu
