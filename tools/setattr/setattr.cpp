// setattr: util-vserver's flag options, with "--~flag" and "--!flag" to
// clear (also "--~flags N"). They are translated to "--no-flag" (and
// "--clear-flags") before CLI11 parses them; messages name what the user
// typed.
#include "tools/setattr/setattr.h"

#include "kernel/attr.h"
#include "tools/common/attr_choice.h"
#include "tools/common/cli.h"
#include "tools/common/tree_walk.h"
#include "version.h"

#include <iostream>

namespace vu {

namespace {

struct FlagOption {
  const char* name;
  uint32_t bits;
};
// --immu and --iunlink both mean "immutable, but unlinkable" in util-vserver.
constexpr FlagOption k_flag_options[] = {
    {"immu", k_attr_immutable | k_attr_iunlink},
    {"iunlink", k_attr_immutable | k_attr_iunlink},
    {"iunlink-but-not-immutable", k_attr_iunlink},
    {"ixunlink", k_attr_iunlink},
    {"immutable", k_attr_immutable},
    {"admin", k_attr_admin},
    {"watch", k_attr_watch},
    {"hide", k_attr_hide},
    {"barrier", k_attr_barrier},
    {"write", k_attr_write},
    {"cow", k_attr_cow},
};

// --flags/--~flags N: a number in C notation (0x40000, 0400000, 262144).
uint32_t parse_flags(const std::string& option, const std::string& value) {
  size_t used = 0;
  unsigned long v = 0;
  try {
    v = std::stoul(value, &used, 0);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used == 0 || used != value.size() || v > 0xffffffffUL)
    throw CLI::ValidationError(option, "'" + value + "' is not a number (e.g. 0x40000)");
  return static_cast<uint32_t>(v);
}

int run(int argc, char** argv) {
  // util-vserver spells "clear" as --~flag or --!flag; CLI11 wants names.
  std::vector<std::string> args;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--~flags" || a == "--!flags")
      a = "--clear-flags";
    else if (a.rfind("--~flags=", 0) == 0 || a.rfind("--!flags=", 0) == 0)
      a = "--clear-flags=" + a.substr(9);
    else if (a.rfind("--~", 0) == 0 || a.rfind("--!", 0) == 0)
      a = "--no-" + a.substr(3);
    args.push_back(a);
  }
  std::reverse(args.begin(), args.end()); // CLI11 takes them reversed

  CLI::App app{"setattr: set Linux-VServer style file attributes", "setattr"};
  app.set_version_flag("--version", std::string("setattr ") + k_version);
  bool recurse = false, one_fs = false;
  std::vector<std::string> files;
  uint32_t set = 0, clear = 0;
  app.add_flag("-R", recurse, "recurse through directories (never following symlinks)");
  app.add_flag("-x", one_fs, "do not cross file systems");
  for (const auto& f : k_flag_options) {
    app.add_flag_callback(
        std::string("--") + f.name, [&set, f] { set |= f.bits; }, std::string("set ") + f.name);
    app.add_flag_callback(
        std::string("--no-") + f.name, [&clear, f] { clear |= f.bits; },
        std::string("clear ") + f.name + " (also --~" + f.name + ", --!" + f.name + ")");
  }
  app.add_option_function<std::string>(
      "--flags", [&](const std::string& v) { set |= parse_flags("--flags", v); },
      "set the attribute bits N (VC_IATTR_* values)");
  app.add_option_function<std::string>(
      "--clear-flags", [&](const std::string& v) { clear |= parse_flags("--~flags", v); },
      "clear the attribute bits N (also --~flags N)");
  app.add_option("files", files, "files")->required()->check(non_empty());
  std::string attr_backend;
  add_attr_backend_option(app, attr_backend);
  add_help_footer(
      app, k_common_exit_codes,
      {"setattr --iunlink /vservers/web1/usr/bin/x   # shared: replaceable, unchangeable",
       "setattr -R --~immutable /vservers/web1/usr    # clear the flag below usr"});
  if (auto done = parse_command_line(app, args)) return *done;
  if ((set | clear) == 0) {
    print_error("setattr", "no attribute to set or clear given (see setattr --help)");
    return exit_status(ExitCode::usage);
  }
  auto backend = choose_attr_backend("setattr", attr_backend, {});
  bool mainline = std::string(backend->name()) == "mainline";
  if (mainline && (set & k_attr_iunlink) && (set & k_attr_immutable)) {
    // util-vserver's --immu/--iunlink: mainline has no iunlink; the best it
    // offers is a fully immutable file (ARCHITECTURE.md, attributes).
    std::cerr << "setattr: warning: this kernel has no iunlink (mainline back end); files "
                 "are made immutable (not unlinkable either)\n";
    set &= ~static_cast<uint32_t>(k_attr_iunlink);
  }
  if (mainline && (clear & k_attr_iunlink) && (clear & k_attr_immutable))
    clear &= ~static_cast<uint32_t>(k_attr_iunlink);

  WalkOptions opt;
  opt.recurse = recurse;
  opt.one_file_system = one_fs;
  opt.list_directories = false;
  opt.include_self = true;
  uint64_t failed = 0;
  for (const auto& f : files) {
    bool named = true; // the first entry a walk visits is the named path
    failed += walk_path("setattr", f, opt, [&](const WalkEntry& e) {
                bool is_named = std::exchange(named, false);
                if (!is_named && !e.st.is_regular() && !e.st.is_directory())
                  return true; // -R skips these
                auto r = backend->set(e.dirfd, e.name, e.st, set, clear);
                if (!r.ok()) {
                  std::cerr << "setattr: " << e.display << ": " << r.error().message() << "\n";
                  return false;
                }
                return true;
              }).failures;
  }
  return exit_status(failed ? ExitCode::partial : ExitCode::ok);
}

} // namespace

int run_setattr(int argc, char** argv) {
  return run_program("setattr", run, argc, argv);
}

} // namespace vu
