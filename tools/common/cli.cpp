#include "tools/common/cli.h"

#include <iostream>

namespace vu {

const CLI::Validator& non_empty() {
  static const CLI::Validator v(
      [](std::string& value) -> std::string {
        return value.empty() ? std::string("must not be empty") : std::string();
      },
      "NOT EMPTY", "non_empty");
  return v;
}

void print_error(const std::string& prog, const std::string& message) {
  std::cerr << prog << ": error: " << message << "\n";
}

namespace {
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
    std::string what = e.what();
    while (!what.empty() && what.back() == '\n') what.pop_back();
    print_error(app.get_name(), what + " (see " + app.get_name() + " --help)");
    return exit_status(ExitCode::usage);
  }
  return std::nullopt;
}
} // namespace

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

int run_program(const char* prog, int (*run)(int, char**), int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    print_error(prog, e.what());
  }
  return exit_status(ExitCode::usage);
}

} // namespace vu
