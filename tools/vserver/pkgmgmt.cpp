// vserver NAME pkgmgmt (see pkgmgmt.h).
#include "tools/vserver/pkgmgmt.h"

#include "core/run_state.h"
#include "core/runtime.h"
#include "kernel/fs.h"
#include "tools/common/cli.h"
#include "tools/common/pkgmgmt_layout.h"

#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include <iostream>
#include <sstream>

namespace vu {

namespace {

constexpr uint64_t k_max_apt_file = 1 << 20;

struct Move {
  const VServerConfig& c;
  const PkgmgmtLayout& layout;
  int root;
  bool quiet;
};

void notice(const Move& m, const std::string& text) {
  if (!m.quiet) std::cerr << "vserver: " << m.c.guest.name << ": " << text << "\n";
}

std::string parent_of(const std::string& path) {
  return path.substr(0, path.rfind('/'));
}
std::string leaf_of(const std::string& path) {
  return path.substr(path.rfind('/') + 1);
}

// The lines of a one-line-style sources file whose URI is http or https,
// with no option but arch= (signed-by= would name a keyring on the host,
// trusted=yes would turn verification off).
std::string web_sources(const std::string& text, size_t* dropped) {
  std::istringstream in(text);
  std::string line, out;
  while (std::getline(in, line)) {
    std::istringstream words(line);
    std::string type, word, arch;
    words >> type;
    if (type != "deb" && type != "deb-src") continue;
    words >> word;
    if (!word.empty() && word.front() == '[') {
      std::string options = word;
      while (options.back() != ']' && words >> word) options += " " + word;
      std::istringstream each(options.substr(1, options.size() - 2));
      for (std::string o; each >> o;)
        if (o.rfind("arch=", 0) == 0) arch = " [" + o + "]";
      word.clear();
      words >> word;
    }
    std::string rest;
    std::getline(words, rest);
    if (word.rfind("http://", 0) == 0 || word.rfind("https://", 0) == 0)
      out += type + arch + " " + word + rest + "\n";
    else
      ++*dropped;
  }
  return out;
}

// The guest's regular file `name` beneath `dir`, when it is one of at most
// k_max_apt_file bytes.
Result<std::string> guest_file(int dir, const std::string& name) {
  return read_file_beneath(dir, name, k_max_apt_file);
}

// The guest's apt sources and keys for the host's apt (see pkgmgmt.h).
Status copy_apt_sources(const Move& m) {
  VU_TRY_ASSIGN(etc, open_layout_dir(m.layout.apt_etc, m.c.guest, true));
  if (stat_at(etc.get(), "sources.list").ok()) return {};
  auto guest_etc = open_beneath(m.root, "etc/apt", O_RDONLY | O_DIRECTORY);
  if (!guest_etc.ok()) return {};
  std::string sources;
  size_t dropped = 0;
  if (auto main = guest_file(guest_etc->get(), "sources.list"); main.ok())
    sources += web_sources(*main, &dropped);
  for (auto [dir, suffix] :
       {std::pair{"sources.list.d", ".list"}, std::pair{"trusted.gpg.d", ""}}) {
    auto d = open_beneath(guest_etc->get(), dir, O_RDONLY | O_DIRECTORY);
    if (!d.ok()) continue;
    VU_TRY_ASSIGN(entries, read_directory(d->get()));
    VU_TRY_ASSIGN(to, open_layout_dir(m.layout.apt_etc + "/" + dir, m.c.guest, true));
    for (const auto& e : entries) {
      auto text = guest_file(d->get(), e.name);
      if (!text.ok() || !is_plain_name(e.name)) continue;
      if (*suffix == '\0')
        VU_TRY(write_file_atomic_at(to.get(), e.name, *text, 0644));
      else if (e.name.size() > 5 && e.name.compare(e.name.size() - 5, 5, suffix) == 0)
        sources += web_sources(*text, &dropped);
    }
  }
  if (dropped > 0)
    notice(m, std::to_string(dropped) +
                  " apt source lines without an http or https URI were "
                  "not copied to " +
                  m.layout.apt_etc);
  return write_file_atomic_at(etc.get(), "sources.list", sources, 0644);
}

// Opens the guest's /var/lib and checks the database's directory there.
Result<UniqueFd> guest_var_lib(const Move& m) {
  return open_beneath(m.root, "var/lib", O_RDONLY | O_DIRECTORY);
}

Status externalize(const Move& m, PackageDb db) {
  const std::string in_guest = database_path_in_guest(db);
  const std::string leaf = leaf_of(in_guest), state = m.layout.state(db);
  VU_TRY_ASSIGN(var_lib, guest_var_lib(m));
  auto before = stat_at(var_lib.get(), leaf);
  if (!before.ok() || !before->is_directory()) return {}; // no such database
  if (db == PackageDb::dpkg) {
    for (const auto* p : {&m.layout.apt_state, &m.layout.apt_cache, &m.layout.apt_archives})
      VU_TRY(open_layout_dir(*p, m.c.guest, true));
    VU_TRY(copy_apt_sources(m));
  }
  VU_TRY_ASSIGN(parent, open_layout_dir(parent_of(state), m.c.guest, true));
  if (::unlink((m.layout.dir + "/internal").c_str()) != 0 && errno != ENOENT)
    return make_error(errno, m.layout.dir + "/internal");
  auto moved = rename_at(var_lib.get(), leaf, parent.get(), leaf_of(state), RENAME_NOREPLACE);
  if (!moved.ok() && moved.code() == EXDEV)
    return described_error(EXDEV, state + " is not on the guest's file system: a database is "
                                          "moved by one rename (set apps/pkgmgmt/base)");
  VU_TRY(moved);
  auto after = stat_at(parent.get(), leaf_of(state));
  if (!after.ok() || after->ino != before->ino || after->dev != before->dev)
    return described_error(ESTALE, "/" + in_guest + " changed while it was moved");
  if (::mkdirat(var_lib.get(), leaf.c_str(), 0755) != 0 && errno != EEXIST)
    return make_error(errno, "mkdir /" + in_guest);
  ::fsync(parent.get());
  ::fsync(var_lib.get());
  notice(m, "/" + in_guest + " moved to " + state);
  return {};
}

Status internalize(const Move& m, PackageDb db) {
  const std::string in_guest = database_path_in_guest(db);
  const std::string leaf = leaf_of(in_guest), state = m.layout.state(db);
  if (!database_is_external(m.layout, db)) return {};
  VU_TRY_ASSIGN(parent, open_layout_dir(parent_of(state), m.c.guest));
  VU_TRY_ASSIGN(var_lib, guest_var_lib(m));
  // The empty mount point the externalized database left.
  if (::unlinkat(var_lib.get(), leaf.c_str(), AT_REMOVEDIR) != 0 && errno != ENOENT)
    return make_error(errno, "/" + in_guest +
                                 " in the guest (it must be empty to take the "
                                 "database back; move it away)");
  auto moved = rename_at(parent.get(), leaf_of(state), var_lib.get(), leaf, RENAME_NOREPLACE);
  if (!moved.ok() && moved.code() == EXDEV)
    return described_error(EXDEV, state + " is not on the guest's file system");
  VU_TRY(moved);
  ::fsync(parent.get());
  ::fsync(var_lib.get());
  notice(m, state + " moved back to /" + in_guest);
  return {};
}

Status move_databases(const std::string& confdir, const VServerConfig& c, bool out, bool quiet) {
  VU_TRY_ASSIGN(dir, GuestRunDir::open(c.guest.name));
  auto lock = dir.lock(LockWait::no);
  if (!lock.ok())
    return described_error(EBUSY, "another vserver command is using '" + c.guest.name + "'");
  auto st = guest_status(c.guest.name);
  if (st.ok() && st->running)
    return described_error(EBUSY, "'" + c.guest.name + "' is running: stop it first");
  const PkgmgmtLayout layout = pkgmgmt_layout(ConfigBase(confdir), c.guest);
  if (layout.dir.empty())
    return described_error(EINVAL, "the guest has no configuration directory");
  int fd = ::open(c.guest.root.c_str(), O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return make_error(errno, "guest root " + c.guest.root);
  UniqueFd root(fd);
  Move m{c, layout, root.get(), quiet};
  for (PackageDb db : {PackageDb::dpkg, PackageDb::rpm}) {
    if (out && database_is_external(layout, db)) continue;
    VU_TRY(out ? externalize(m, db) : internalize(m, db));
  }
  return {};
}

} // namespace

int run_pkgmgmt(const std::string& confdir, const std::string& name,
                const std::vector<std::string>& args, bool quiet) {
  if (args.size() != 1 || (args[0] != "externalize" && args[0] != "internalize")) {
    print_error("vserver", "usage: vserver NAME pkgmgmt externalize|internalize");
    return exit_status(ExitCode::usage);
  }
  auto c = load_vserver_config(ConfigBase(confdir), name);
  Status r =
      c.ok() ? move_databases(confdir, *c, args[0] == "externalize", quiet) : Status(c.error());
  if (!r.ok()) {
    print_error("vserver", name + ": pkgmgmt " + args[0] + ": " + r.error().message());
    return exit_status(ExitCode::partial);
  }
  return 0;
}

} // namespace vu
