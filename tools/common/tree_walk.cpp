// The command-line walk, depth first, in name order, without recursion.
//
// Each directory on the current path is a frame holding its sorted entry
// names and its identity (dev, ino), but no descriptor: only the
// directory being listed is open. Descending closes it; coming back opens
// it again by its path beneath the named directory and checks it is the
// same directory (a directory swapped meanwhile ends that branch with an
// error). So a tree 100,000 levels deep needs no more descriptors than a
// flat one, and the stack lives on the heap.
#include "tools/common/tree_walk.h"

#include <fcntl.h>

#include <algorithm>
#include <cstring>
#include <iostream>
#include <vector>

namespace vu {

namespace {

struct Frame {
  std::string rel;     // path below the named directory ("" for itself)
  std::string display; // as shown to the user
  uint64_t dev = 0, ino = 0;
  std::vector<std::string> names; // sorted
  size_t next = 0;
};

class Walker {
public:
  Walker(const std::string& prog, const WalkOptions& opt,
         const std::function<bool(const WalkEntry&)>& visit)
      : m_prog(prog), m_opt(opt), m_visit(visit) {}

  void fail(const std::string& where, const std::string& msg) {
    std::cerr << m_prog << ": " << where << ": " << msg << "\n";
    ++m_failures;
  }

  // Lists the directory `top` (the named one, open) and everything below.
  void run(int top, const std::string& display, uint64_t root_dev) {
    std::vector<Frame> stack;
    auto push = [&](std::string rel, std::string shown, int fd) -> bool {
      auto st = stat_fd(fd);
      auto entries = read_directory(fd);
      if (!st.ok() || !entries.ok()) {
        fail(shown, (!st.ok() ? st.error() : entries.error()).message());
        return false;
      }
      Frame f{std::move(rel), std::move(shown), st->dev, st->ino, {}, 0};
      for (auto& e : *entries)
        if (m_opt.dot_files || e.name[0] != '.') f.names.push_back(std::move(e.name));
      std::sort(f.names.begin(), f.names.end());
      stack.push_back(std::move(f));
      return true;
    };
    if (!push("", display, top)) return;
    while (!stack.empty()) {
      Frame& f = stack.back();
      if (f.next == f.names.size()) {
        stack.pop_back();
        continue;
      }
      // (Re)open the frame's directory and check it is still the one listed.
      auto dir = f.rel.empty() ? open_beneath(top, ".", O_RDONLY | O_DIRECTORY)
                               : open_beneath(top, f.rel, O_RDONLY | O_DIRECTORY);
      auto now = dir.ok() ? stat_fd(dir->get()) : Result<FileStat>(dir.error());
      if (!now.ok() || now->dev != f.dev || now->ino != f.ino) {
        fail(f.display, now.ok() ? "changed while it was walked" : now.error().message());
        stack.pop_back();
        continue;
      }
      // Visit entries until one is a directory to descend into.
      while (f.next < f.names.size()) {
        const std::string& name = f.names[f.next++];
        std::string shown = f.display == "/" ? "/" + name : f.display + "/" + name;
        auto st = stat_at(dir->get(), name);
        if (!st.ok()) {
          fail(shown, std::strerror(st.code())); // the name is shown already
          continue;
        }
        if (!m_visit({dir->get(), name, shown, *st})) ++m_failures;
        if (!m_opt.recurse || !st->is_directory()) continue;
        if (m_opt.one_file_system && st->dev != root_dev) continue;
        auto sub = open_beneath(dir->get(), name, O_RDONLY | O_DIRECTORY);
        if (!sub.ok()) {
          fail(shown, sub.error().message());
          continue;
        }
        std::string rel = f.rel.empty() ? name : f.rel + "/" + name;
        dir->reset(); // only the directory being listed stays open
        push(std::move(rel), std::move(shown), sub->get());
        break;
      }
    }
  }

  uint64_t failures() const { return m_failures; }

private:
  const std::string& m_prog;
  const WalkOptions& m_opt;
  const std::function<bool(const WalkEntry&)>& m_visit;
  uint64_t m_failures = 0;
};

} // namespace

WalkResult walk_path(const std::string& prog, const std::string& path, const WalkOptions& opt,
                     const std::function<bool(const WalkEntry&)>& visit) {
  Walker w(prog, opt, visit);
  WalkResult result;
  std::string p = path;
  const bool trailing_slash = p.size() > 1 && p.back() == '/';
  while (p.size() > 1 && p.back() == '/') p.pop_back();
  // The entry for the named path: (directory, name). With a trailing '/'
  // the path is resolved as given (symlinks followed) and names a
  // directory: it is its own entry, ".".
  UniqueFd holder;
  std::string name(1, '.');
  if (trailing_slash || p == "/") {
    auto dir = open_directory(p);
    if (!dir.ok()) {
      w.fail(path, dir.error().message());
      return {w.failures(), false};
    }
    holder = std::move(*dir);
  } else {
    auto slash = p.rfind('/');
    std::string parent = slash == std::string::npos ? "." : (slash == 0 ? "/" : p.substr(0, slash));
    name = slash == std::string::npos ? p : p.substr(slash + 1);
    auto dir = open_directory(parent);
    if (!dir.ok()) {
      w.fail(path, dir.error().message());
      return {w.failures(), false};
    }
    holder = std::move(*dir);
  }
  auto st = stat_at(holder.get(), name);
  if (!st.ok()) {
    w.fail(path, std::strerror(st.code())); // the name is shown already
    return {w.failures(), false};
  }
  result.reached = true;
  const std::string shown = trailing_slash ? p : path;
  bool expand = st->is_directory() && (opt.list_directories || opt.recurse);
  uint64_t self_failed = 0;
  if (!expand || opt.include_self)
    if (!visit({holder.get(), name, shown, *st})) ++self_failed;
  if (expand) {
    auto sub = open_beneath(holder.get(), name, O_RDONLY | O_DIRECTORY);
    if (!sub.ok())
      w.fail(path, sub.error().message());
    else
      w.run(sub->get(), shown, st->dev);
  }
  result.failures = w.failures() + self_failed;
  return result;
}

} // namespace vu
