#include "tools/common/tree_walk.h"

#include <fcntl.h>
#include <iostream>

#include <algorithm>

namespace vu {

namespace {

struct Walker {
  const std::string& prog;
  const WalkOptions& opt;
  const std::function<bool(const WalkEntry&)>& visit;
  uint64_t failures = 0;

  void fail(const std::string& where, const std::string& msg) {
    std::cerr << prog << ": " << where << ": " << msg << "\n";
    ++failures;
  }

  // Lists the directory `dir` (open descriptor) shown as `display`.
  void list(int dir, const std::string& display, uint64_t dev) {
    auto entries = read_directory(dir);
    if (!entries.ok()) return fail(display, entries.error().message());
    std::sort(entries->begin(), entries->end(),
              [](const DirEntry& a, const DirEntry& b) { return a.name < b.name; });
    for (const auto& e : *entries) {
      if (!opt.dot_files && e.name[0] == '.') continue;
      std::string shown = display == "/" ? "/" + e.name : display + "/" + e.name;
      auto st = stat_at(dir, e.name);
      if (!st.ok()) {
        fail(shown, st.error().message());
        continue;
      }
      if (!visit({dir, e.name, shown, *st})) ++failures;
      if (opt.recurse && st->is_directory() && !(opt.one_file_system && st->dev != dev)) {
        auto sub = open_beneath(dir, e.name, O_RDONLY | O_DIRECTORY);
        if (!sub.ok()) {
          fail(shown, sub.error().message());
          continue;
        }
        list(sub->get(), shown, dev);
      }
    }
  }
};

} // namespace

uint64_t walk_path(const std::string& prog, const std::string& path, const WalkOptions& opt,
                   const std::function<bool(const WalkEntry&)>& visit) {
  Walker w{prog, opt, visit};
  std::string p = path;
  while (p.size() > 1 && p.back() == '/') p.pop_back();
  auto slash = p.rfind('/');
  std::string parent = slash == std::string::npos ? "." : (slash == 0 ? "/" : p.substr(0, slash));
  std::string name = slash == std::string::npos ? p : p.substr(slash + 1);
  if (p == "/") {
    parent = "/";
    name = ".";
  }
  auto dir = open_directory(parent);
  if (!dir.ok()) {
    w.fail(path, dir.error().message());
    return w.failures;
  }
  auto st = stat_at(dir->get(), name);
  if (!st.ok()) {
    w.fail(path, st.error().message());
    return w.failures;
  }
  bool expand = st->is_directory() && (opt.list_directories || opt.recurse);
  if (!expand || opt.include_self)
    if (!visit({dir->get(), name, path, *st})) ++w.failures;
  if (expand) {
    auto sub = open_beneath(dir->get(), name, O_RDONLY | O_DIRECTORY);
    if (!sub.ok()) w.fail(path, sub.error().message());
    else w.list(sub->get(), p, st->dev);
  }
  return w.failures;
}

} // namespace vu
