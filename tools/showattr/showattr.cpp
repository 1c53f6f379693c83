// showattr: one line per file, util-vserver's attribute columns.
#include "tools/showattr/showattr.h"

#include "kernel/attr.h"
#include "tools/common/attr_choice.h"
#include "tools/common/cli.h"
#include "tools/common/tree_walk.h"
#include "version.h"

#include <iostream>

namespace vu {

namespace {

int run(int argc, char** argv) {
  CLI::App app{"showattr: show Linux-VServer style file attributes", "showattr"};
  app.set_version_flag("--version", std::string("showattr ") + k_version);
  bool recurse = false, all = false, dirs = false, one_fs = false;
  std::vector<std::string> files;
  app.add_flag("-R", recurse, "recurse through directories");
  app.add_flag("-a", all, "show files starting with '.' too");
  app.add_flag("-d", dirs, "list directories like other files instead of their content");
  app.add_flag("-x", one_fs, "do not cross file systems");
  app.add_option("files", files, "files (default: .)")->check(non_empty());
  std::string attr_backend;
  add_attr_backend_option(app, attr_backend);
  app.footer("Columns: a(dmin) w(atch) h(ide) m(write) b(arrier) u(iunlink) i(mmutable) c(ow) "
             "x(id);\nupper case: set, lower case: supported but clear, '-': not supported.");
  add_help_footer(app,
                  "0 done; 1 some file could not be examined (its line shows ERR); 2 usage error",
                  {"showattr -d /vservers                # the barrier on the guest base",
                   "showattr -R /vservers/web1/usr/bin   # what unification protected"});
  if (auto done = parse_command_line(app, argc, argv)) return *done;
  if (files.empty()) files.push_back(".");
  auto backend = choose_attr_backend("showattr", attr_backend, {});
  WalkOptions opt;
  opt.recurse = recurse;
  opt.one_file_system = one_fs;
  opt.list_directories = !dirs;
  opt.include_self = dirs && recurse;
  opt.dot_files = all;
  uint64_t failed = 0;
  for (const auto& f : files) {
    failed += walk_path("showattr", f, opt, [&](const WalkEntry& e) {
                auto s = backend->get(e.dirfd, e.name, e.st);
                if (!s.ok()) {
                  std::cout << "ERR       " << e.display << "\n";
                  std::cerr << "showattr: " << e.display << ": " << s.error().message() << "\n";
                  return false;
                }
                std::cout << render_attrs(*s) << " " << e.display << "\n";
                return true;
              }).failures;
  }
  return exit_status(failed ? ExitCode::partial : ExitCode::ok);
}

} // namespace

int run_showattr(int argc, char** argv) {
  return run_program("showattr", run, argc, argv);
}

} // namespace vu
