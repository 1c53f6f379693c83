#include "tools/common/guest_selection.h"

#include "kernel/fs.h"
#include "pkgmgmt/config_files.h"

#include <algorithm>
#include <iostream>

namespace vu {

namespace {

// The default list every configured guest's own list is followed by:
// --exclude-from, none, the base's .defaults/apps/vunify/exclude (as in
// util-vserver, it replaces the built-in list: the package installs the
// built-in list there, so editing it edits the default), else built-in.
Result<ExcludeList> base_excludes(const GuestSelection& s, const ConfigBase& config) {
  if (!s.exclude_from.empty()) return ExcludeList::load(s.exclude_from);
  if (s.no_default_excludes) return ExcludeList{};
  std::string defaults = config.dir() + "/.defaults/apps/vunify/exclude";
  if (path_exists(defaults)) return ExcludeList::load(defaults);
  return ExcludeList::parse(default_exclude_text(), "built-in default list");
}

// --include and --exclude as rules before every list, includes first.
Result<ExcludeList> command_line_rules(const GuestSelection& s) {
  std::string text;
  for (const auto& [sign, patterns] : {std::pair{'+', &s.includes}, std::pair{'-', &s.excludes}})
    for (const auto& p : *patterns) {
      if (p.find('\n') != std::string::npos)
        return described_error(EINVAL, "a pattern holds a line break");
      text += sign + p + "\n";
    }
  return ExcludeList::parse(text, "--include/--exclude pattern");
}

UnifyGuest make_guest(Guest g, GuestRole role, ExcludeList excludes) {
  UnifyGuest u;
  u.guest = std::move(g);
  u.role = role;
  u.excludes = std::move(excludes);
  return u;
}

// Reads the guest's package databases into u.config_files; an error when
// a database exists but cannot be read.
Status apply_pkgmgmt(UnifyGuest& u, const ConfigBase& config) {
  VU_TRY_ASSIGN(root, open_directory(u.guest.root));
  VU_TRY_ASSIGN(files, read_guest_config_files(root.get(), locate_package_dbs(u.guest, config)));
  u.pkgmgmt = PkgmgmtUse::used;
  u.config_files = std::move(files.paths);
  for (const auto& src : files.sources) {
    std::string s = src.kind + " " + src.location + ": " + std::to_string(src.config_files) +
                    " files of " + std::to_string(src.packages) + " packages";
    if (src.cross_check_only)
      s += ", " + std::to_string(src.cross_check_only) + " only in info/*.conffiles";
    u.config_sources.push_back(std::move(s));
  }
  return {};
}

} // namespace

namespace {
void note_warning(const ExcludeList& list, std::vector<std::string>& warnings) {
  const std::string& w = list.crossing_warning();
  if (!w.empty() && std::find(warnings.begin(), warnings.end(), w) == warnings.end())
    warnings.push_back(w);
}
} // namespace

Result<ExcludeList> guest_excludes(const Guest& guest, const ExcludeList& first,
                                   const ExcludeList& base, std::vector<std::string>& warnings) {
  ExcludeList list = first;
  std::string own = guest.confdir + "/apps/vunify/exclude";
  if (!guest.confdir.empty() && path_exists(own)) {
    VU_TRY_ASSIGN(l, ExcludeList::load(own));
    note_warning(l, warnings);
    list.append(l);
  }
  list.append(base);
  return list;
}

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

namespace {

// util-vserver's manual form: <path> <excludelist> [<path> <excludelist>]+;
// the first path is unified against the others, only the given lists apply.
Status select_manually(const GuestSelection& sel, const ExcludeList& first, SelectedGuests& out) {
  if (sel.args.size() % 2 != 0)
    return described_error(EINVAL, "--manually needs <path> <excludelist> pairs");
  if (sel.args.size() < 2 * sel.min_manual_pairs)
    return described_error(EINVAL,
                           sel.min_manual_pairs == 1
                               ? "--manually needs a <path> <excludelist> pair"
                               : "--manually needs at least two <path> <excludelist> pairs");
  for (size_t i = 0; i < sel.args.size(); i += 2) {
    VU_TRY_ASSIGN(root, real_path(sel.args[i]));
    VU_TRY_ASSIGN(own, ExcludeList::load(sel.args[i + 1]));
    note_warning(own, out.warnings);
    ExcludeList ex = first;
    ex.append(own);
    Guest g{root.substr(root.rfind('/') + 1), root, {}};
    bool reference = sel.min_manual_pairs == 2 && i > 0;
    out.guests.push_back(
        make_guest(g, reference ? GuestRole::reference : GuestRole::member, std::move(ex)));
  }
  // References first, so their inodes are preferred as the shared ones.
  if (sel.min_manual_pairs == 2)
    std::rotate(out.guests.begin(), out.guests.begin() + 1, out.guests.end());
  return {};
}

// Guests by name or path, or --all; one guest alone in the classic form
// is unified with its reference guests.
Status select_configured(const GuestSelection& sel, const ConfigBase& config,
                         const ExcludeList& first, const ExcludeList& base, SelectedGuests& out) {
  std::vector<Guest> guests;
  if (sel.all) {
    VU_TRY_ASSIGN(all, config.all());
    guests = std::move(all.guests);
    for (auto& s : all.skipped) out.skipped.push_back({s.name, s.reason});
    for (auto& s : all.stray) out.stray.push_back({s.name, s.reason});
  }
  for (const auto& a : sel.args) {
    VU_TRY_ASSIGN(g, config.resolve(a));
    guests.push_back(std::move(g));
  }
  if (guests.empty())
    return described_error(EINVAL, "no guests given (name guests, paths, or --all)");
  auto add = [&](const Guest& g, GuestRole role) -> Status {
    VU_TRY_ASSIGN(ex, guest_excludes(g, first, base, out.warnings));
    out.guests.push_back(make_guest(g, role, std::move(ex)));
    return {};
  };
  if (!sel.classic_refservers || sel.all || guests.size() != 1) {
    for (auto& g : guests) VU_TRY(add(g, GuestRole::member));
    return {};
  }
  VU_TRY_ASSIGN(refs, config.refservers(guests[0]));
  if (refs.empty())
    return described_error(EINVAL, "guest '" + guests[0].name +
                                       "' has no reference guests (apps/vunify/refserver.*); "
                                       "name two or more guests to unify them with each other");
  for (auto& r : refs) VU_TRY(add(r, GuestRole::reference));
  return add(guests[0], GuestRole::member);
}

// Configuration files: a guest whose package database exists but cannot
// be read is left out entirely rather than risk sharing its config files.
void apply_config_files(const GuestSelection& sel, const ConfigBase& config, SelectedGuests& out) {
  std::vector<UnifyGuest> kept;
  for (auto& u : out.guests) {
    if (sel.no_pkgmgmt || !use_pkgmgmt(u.guest, config)) {
      u.pkgmgmt = PkgmgmtUse::ignored;
      kept.push_back(std::move(u));
      continue;
    }
    auto used = apply_pkgmgmt(u, config);
    if (used.ok())
      kept.push_back(std::move(u));
    else
      out.rejected.push_back({u.guest.name, used.error().message()});
  }
  out.guests = std::move(kept);
}

} // namespace

Result<SelectedGuests> select_guests(const GuestSelection& sel) {
  ConfigBase config(sel.confdir);
  if (!sel.manually) VU_TRY(config.check());
  SelectedGuests out;
  VU_TRY_ASSIGN(first, command_line_rules(sel));
  VU_TRY_ASSIGN(base, base_excludes(sel, config));
  note_warning(base, out.warnings);
  if (sel.manually)
    VU_TRY(select_manually(sel, first, out));
  else
    VU_TRY(select_configured(sel, config, first, base, out));
  std::vector<Guest> roots;
  for (const auto& u : out.guests) roots.push_back(u.guest);
  VU_TRY(check_guest_roots(roots));
  apply_config_files(sel, config, out);
  return out;
}

void note_left_out(const SelectedGuests& selected, Report& report) {
  auto add = [&](Failure kind, const LeftOutGuest& g) {
    auto& f = report.failures[kind];
    if (f.count++ == 0) {
      f.first_path = g.name;
      f.first_message = g.message;
    }
  };
  for (const auto& g : selected.rejected) add(Failure::pkgmgmt, g);
  for (const auto& g : selected.skipped) add(Failure::config, g);
}

void print_left_out(const std::string& prog, const SelectedGuests& selected) {
  for (const auto& g : selected.rejected)
    std::cerr << prog << ": guest '" << printable_path(g.name)
              << "' left out: " << printable_path(g.message)
              << " (--no-pkgmgmt or apps/vunify/pkgmgmt-ignore include it anyway)\n";
  for (const auto& g : selected.skipped)
    std::cerr << prog << ": guest '" << printable_path(g.name)
              << "' skipped: " << printable_path(g.message) << "\n";
  for (const auto& g : selected.stray)
    std::cerr << prog << ": warning: " << printable_path(g.message) << "\n";
  for (const auto& w : selected.warnings)
    std::cerr << prog << ": warning: " << printable_path(w) << "\n";
}

} // namespace vu
