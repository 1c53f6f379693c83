#include "tools/showattr/showattr.h"

#include "kernel/attr.h"
#include "tools/common/tree_walk.h"
#include "version.h"

#include <CLI/CLI.hpp>

#include <iostream>

namespace vu {

int run_showattr(int argc, char** argv) {
  try {
    CLI::App app{"showattr: show Linux-VServer style file attributes", "showattr"};
    app.set_version_flag("--version", std::string("showattr ") + k_version);
    bool recurse = false, all = false, dirs = false, one_fs = false;
    std::vector<std::string> files;
    app.add_flag("-R", recurse, "recurse through directories");
    app.add_flag("-a", all, "show files starting with '.' too");
    app.add_flag("-d", dirs, "list directories like other files instead of their content");
    app.add_flag("-x", one_fs, "do not cross file systems");
    app.add_option("files", files, "files (default: .)");
    app.footer("Columns: a(dmin) w(atch) h(ide) m(write) b(arrier) u(iunlink) i(mmutable) c(ow) "
               "x(id);\nupper case: set, lower case: supported but clear, '-': not supported.");
    try {
      app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
      return app.exit(e) == 0 ? 0 : 2;
    }
    if (files.empty()) files.push_back(".");
    auto backend = detect_attr_backend();
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
      });
    }
    return failed ? 1 : 0;
  } catch (const std::exception& e) {
    std::cerr << "showattr: error: " << e.what() << "\n";
    return 2;
  }
}

} // namespace vu
