#include "tools/common/guest_selection.h"

#include "kernel/fs.h"
#include "pkgmgmt/config_files.h"

#include <algorithm>

namespace vu {

namespace {

Result<ExcludeList> base_excludes(const GuestSelection& s) {
  if (!s.exclude_from.empty()) return ExcludeList::load(s.exclude_from);
  if (s.no_default_excludes) return ExcludeList{};
  return ExcludeList::parse(default_exclude_text(), "built-in default list");
}

UnifyGuest make_guest(Guest g, GuestRole role, ExcludeList excludes) {
  UnifyGuest u;
  u.guest = std::move(g);
  u.role = role;
  u.excludes = std::move(excludes);
  return u;
}

// Reads the guest's package databases into u.config_files; false (with a
// message) when a database exists but cannot be read.
bool apply_pkgmgmt(UnifyGuest& u, const ConfigBase& config, std::string& message) {
  auto root = open_directory(u.guest.root);
  if (!root.ok()) {
    message = root.error().message();
    return false;
  }
  auto files = read_guest_config_files(root->get(), locate_package_dbs(u.guest, config));
  if (!files.ok()) {
    message = files.error().message();
    return false;
  }
  u.pkgmgmt = "used";
  u.config_files = std::move(files->paths);
  for (const auto& src : files->sources) {
    std::string s = src.kind + " " + src.location + ": " + std::to_string(src.config_files) +
                    " files of " + std::to_string(src.packages) + " packages";
    if (src.cross_check_only)
      s += ", " + std::to_string(src.cross_check_only) + " only in info/*.conffiles";
    u.config_sources.push_back(std::move(s));
  }
  return true;
}

} // namespace

bool use_pkgmgmt(const Guest& guest, const ConfigBase& config) {
  if (!guest.confdir.empty()) {
    std::string app = guest.confdir + "/apps/vunify/";
    if (path_exists(app + "pkgmgmt-ignore")) return false;
    if (path_exists(app + "pkgmgmt-force")) return true;
  }
  std::string def = config.dir() + "/.defaults/apps/vunify/";
  if (path_exists(def + "pkgmgmt-ignore")) return false;
  return true;
}

Result<SelectedGuests> select_guests(const GuestSelection& sel) {
  ConfigBase config(sel.confdir);
  SelectedGuests out;
  VU_TRY_ASSIGN(base, base_excludes(sel));

  if (sel.manually) {
    // util-vserver: <path> <excludelist> [<path> <excludelist>]+; the first
    // path is unified against the others, only the given lists apply.
    if (sel.args.size() % 2 != 0)
      return described_error(EINVAL, "--manually needs <path> <excludelist> pairs");
    if (sel.args.size() < 4)
      return described_error(EINVAL, "--manually needs at least two <path> <excludelist> pairs");
    for (size_t i = 0; i < sel.args.size(); i += 2) {
      VU_TRY_ASSIGN(root, real_path(sel.args[i]));
      ExcludeList ex;
      if (!sel.args[i + 1].empty()) {
        VU_TRY_ASSIGN(l, ExcludeList::load(sel.args[i + 1]));
        ex = std::move(l);
      }
      Guest g{root.substr(root.rfind('/') + 1), root, {}};
      out.guests.push_back(
          make_guest(g, i == 0 ? GuestRole::member : GuestRole::reference, std::move(ex)));
    }
    // References first, so their inodes are preferred as the shared ones.
    std::rotate(out.guests.begin(), out.guests.begin() + 1, out.guests.end());
  } else {
    std::vector<Guest> guests;
    if (sel.all) {
      VU_TRY_ASSIGN(all, config.all());
      guests = std::move(all);
    }
    for (const auto& a : sel.args) {
      VU_TRY_ASSIGN(g, config.resolve(a));
      guests.push_back(std::move(g));
    }
    if (guests.empty()) return described_error(EINVAL, "no guests given (name guests, paths, or --all)");
    auto add = [&](const Guest& g, GuestRole role) -> Status {
      VU_TRY_ASSIGN(ex, guest_excludes(g, config, base));
      out.guests.push_back(make_guest(g, role, std::move(ex)));
      return {};
    };
    if (sel.classic_refservers && !sel.all && guests.size() == 1) {
      // Classic form: link the guest to its reference guests.
      VU_TRY_ASSIGN(refs, config.refservers(guests[0]));
      if (refs.empty())
        return described_error(EINVAL, "guest '" + guests[0].name +
                                      "' has no reference guests (apps/vunify/refserver.*); "
                                      "name two or more guests to unify them with each other");
      for (auto& r : refs) VU_TRY(add(r, GuestRole::reference));
      VU_TRY(add(guests[0], GuestRole::member));
    } else {
      for (auto& g : guests) VU_TRY(add(g, GuestRole::member));
    }
  }
  for (size_t i = 0; i < out.guests.size(); ++i)
    for (size_t j = i + 1; j < out.guests.size(); ++j)
      if (out.guests[i].guest.root == out.guests[j].guest.root)
        return described_error(EINVAL, "guest root " + out.guests[i].guest.root + " given twice");

  // Configuration files: a guest whose package database exists but cannot
  // be read is left out entirely rather than risk sharing its config files.
  std::vector<UnifyGuest> kept;
  for (auto& u : out.guests) {
    if (sel.no_pkgmgmt || !use_pkgmgmt(u.guest, config)) {
      u.pkgmgmt = "ignored";
      kept.push_back(std::move(u));
      continue;
    }
    std::string message;
    if (apply_pkgmgmt(u, config, message)) kept.push_back(std::move(u));
    else out.rejected.push_back({u.guest.name, message});
  }
  out.guests = std::move(kept);
  return out;
}

} // namespace vu
