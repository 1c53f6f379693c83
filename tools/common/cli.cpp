#include "tools/common/cli.h"

#include "core/guest.h"

#include <linux/capability.h>
#include <unistd.h>

#include <algorithm>
#include <iostream>
#include <stdexcept>
#include <string>
#include <vector>

namespace vu {

const CLI::Validator& non_empty() {
  static const CLI::Validator v(
      [](std::string& value) -> std::string {
        return value.empty() ? std::string("must not be empty") : std::string();
      },
      "NOT EMPTY", "non_empty");
  return v;
}

void add_help_footer(CLI::App& app, const std::string& exit_codes,
                     const std::vector<std::string>& examples) {
  std::string text = app.get_footer();
  if (!text.empty()) text += "\n\n";
  text += "Exit status: " + exit_codes + ".\nExamples:";
  for (const auto& e : examples) text += "\n  " + e;
  app.footer(text);
}

void print_error(const std::string& prog, const std::string& message) {
  std::cerr << prog << ": error: " << message << "\n";
}

namespace {

size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diag = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diag = up;
    }
  }
  return row[b.size()];
}

// "--dry-rn" -> "--dry-run": the option of `app` nearest to an unknown
// argument that looks like an option (at most two edits, or the start of
// exactly one option's name); empty when there is none.
std::string nearest_option(const CLI::App& app, std::string arg) {
  if (arg.size() < 3 || arg.rfind("--", 0) != 0) return {};
  arg = arg.substr(2, arg.find('=') == std::string::npos ? std::string::npos : arg.find('=') - 2);
  std::string best;
  size_t best_distance = 3;
  std::vector<std::string> prefixed;
  for (const CLI::Option* o : app.get_options()) {
    for (const auto& name : o->get_lnames()) {
      size_t d = edit_distance(arg, name);
      if (d < best_distance) {
        best_distance = d;
        best = name;
      }
      if (name.rfind(arg, 0) == 0) prefixed.push_back(name);
    }
  }
  if (best.empty() && prefixed.size() == 1) best = prefixed[0];
  return best.empty() ? std::string() : "--" + best;
}

// CLI11's "The following argument was not expected: X" as one line that
// says what to do.
std::string usage_message(const CLI::App& app, const CLI::ParseError& e) {
  std::string what = e.what();
  while (!what.empty() && what.back() == '\n') what.pop_back();
  if (dynamic_cast<const CLI::ExtrasError*>(&e)) {
    std::string args = what.substr(what.find(": ") == std::string::npos ? 0 : what.find(": ") + 2);
    std::string first = args.substr(0, args.find(' '));
    what = (first.rfind("-", 0) == 0 ? "unknown option " : "unexpected argument ") + args;
    std::string near = nearest_option(app, first);
    if (!near.empty()) what += "; did you mean " + near + "?";
  }
  return what + " (see " + app.get_name() + " --help)";
}

template <typename Parse> std::optional<int> parse_with(CLI::App& app, Parse parse) {
  try {
    parse();
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    print_error(app.get_name(), usage_message(app, e));
    return exit_status(ExitCode::usage);
  }
  return std::nullopt;
}
} // namespace

CLI::Option* add_size_option(CLI::App& app, const std::string& name, uint64_t& value,
                             const std::string& what) {
  // A negative number would wrap around to a huge size.
  static const CLI::Validator not_negative(
      [](std::string& v) {
        auto first = v.find_first_not_of(" \t");
        return first != std::string::npos && v[first] == '-' ? std::string("not a size: " + v)
                                                             : std::string();
      },
      "", "not negative");
  return app.add_option(name, value, what)
      ->check(not_negative)
      ->transform(CLI::AsSizeValue(false))
      ->type_name("SIZE");
}

uint64_t default_memory_limit() {
  const long pages = ::sysconf(_SC_PHYS_PAGES), page = ::sysconf(_SC_PAGESIZE);
  if (pages <= 0 || page <= 0) return 0;
  return static_cast<uint64_t>(pages) * static_cast<uint64_t>(page) / 4;
}

void add_pattern_options(CLI::App& app, std::vector<std::string>& excludes,
                         std::vector<std::string>& includes) {
  // One value per occurrence, so "--exclude P GUEST" leaves GUEST a guest.
  auto pattern = [&](const char* name, std::vector<std::string>& into, const char* help) {
    app.add_option(name, into, help)
        ->check(non_empty())
        ->allow_extra_args(false)
        ->type_name("PATTERN");
  };
  pattern("--exclude", excludes,
          "leave paths matching PATTERN alone (e.g. '/usr/share/doc/**'; repeatable; before every "
          "exclude list)");
  pattern("--include", includes,
          "consider paths matching PATTERN even where an --exclude or an exclude list leaves them "
          "alone (repeatable)");
}

CLI::Option* add_confdir_option(CLI::App& app, std::string& confdir) {
  return app
      .add_option("--confdir", confdir,
                  "configuration base (default: $VSERVER_CONFDIR or /etc/vservers)")
      ->check(non_empty());
}

std::optional<int> parse_command_line(CLI::App& app, int argc, char** argv) {
  return parse_with(app, [&] { app.parse(argc, argv); });
}

std::optional<int> parse_command_line(CLI::App& app, std::vector<std::string> reversed_args) {
  return parse_with(app, [&] { app.parse(reversed_args); });
}

void require_config_base(const std::string& confdir) {
  if (auto usable = ConfigBase(confdir).check(); !usable.ok())
    throw std::runtime_error(usable.error().message());
}

void require_capabilities(CapMask need, const std::string& what, const std::string& instead) {
  auto effective = process_capabilities(::getpid(), "CapEff");
  if (!effective.ok()) return; // no /proc: the calls themselves will say
  CapMask missing = need & ~*effective;
  if (!missing) return;
  throw std::runtime_error("run it as root: " + what + " needs " + capability_list(missing) +
                           (instead.empty() ? "" : "; " + instead));
}

CapMask linking_capabilities(bool protect) {
  return cap_bit(CAP_FOWNER) | cap_bit(CAP_DAC_OVERRIDE) |
         (protect ? cap_bit(CAP_LINUX_IMMUTABLE) : 0);
}

CapMask reflink_capabilities() {
  return cap_bit(CAP_FOWNER) | cap_bit(CAP_DAC_OVERRIDE) | cap_bit(CAP_SYS_ADMIN);
}

int run_program(const char* prog, int (*run)(int, char**), int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    print_error(prog, e.what());
  }
  return exit_status(ExitCode::usage);
}

} // namespace vu
