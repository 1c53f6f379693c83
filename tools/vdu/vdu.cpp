// vdu: argument handling and the output formats; the accounting is
// unify/usage.cpp.
#include "tools/vdu/vdu.h"

#include "barrier/barrier.h"
#include "tools/common/cli.h"
#include "tools/common/guest_selection.h"
#include "tools/common/json_out.h"
#include "tools/common/tree_walk.h"
#include "unify/usage.h"
#include "version.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <unistd.h>

#include <iostream>
#include <set>

namespace vu {

namespace {

// kib: KiB, rounded up as du counts 1K blocks (the table says the unit in
// its header); human: du -h's 1.0M, 48K; si: powers of 1000; bytes: exact.
enum class Units { bytes, kib, human, si };

std::string size_str(uint64_t b, Units u) {
  if (u == Units::bytes) return std::to_string(b);
  if (u == Units::kib) return std::to_string((b + 1023) / 1024);
  double base = u == Units::human ? 1024.0 : 1000.0;
  static const char* suffix[] = {"", "K", "M", "G", "T", "P"};
  double v = static_cast<double>(b);
  int i = 0;
  while (v >= base && i < 5) {
    v /= base;
    ++i;
  }
  if (i == 0) return std::to_string(b);
  return v < 10 ? fmt::format("{:.1f}{}", v, suffix[i]) : fmt::format("{:.0f}{}", v, suffix[i]);
}

std::string html_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
    case '&': out += "&amp;"; break;
    case '<': out += "&lt;"; break;
    case '>': out += "&gt;"; break;
    case '"': out += "&quot;"; break;
    case '\'': out += "&#39;"; break;
    default: out += c;
    }
  }
  return out;
}

std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\n") == std::string::npos) return s;
  std::string out = "\"";
  for (char c : s) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

nlohmann::json to_json(const UsageReport& r) {
  nlohmann::json j;
  auto& gs = j["guests"] = nlohmann::json::array();
  for (const auto& g : r.guests) {
    nlohmann::json o{{"name", printable_path(g.name)},
                     {"root", printable_path(g.root)},
                     {"files", g.files},
                     {"inodes", g.inodes},
                     {"apparent_bytes", g.apparent},
                     {"allocated_bytes", g.allocated},
                     {"private_bytes", g.private_bytes},
                     {"shared_bytes", g.shared},
                     {"shared_full_bytes", g.shared_full},
                     {"alone_bytes", g.alone},
                     {"saved_bytes", g.saved}};
    if (r.deep) o["possible_bytes"] = g.possible;
    if (r.extents) o["extents_shared_bytes"] = g.extents_shared;
    gs.push_back(o);
  }
  j["total"] = {{"files", r.files},
                {"allocated_bytes", r.allocated},
                {"alone_bytes", r.alone},
                {"saved_bytes", r.saved}};
  if (r.deep) j["total"]["possible_bytes"] = r.possible;
  if (r.extents) {
    j["total"]["extents_shared_bytes"] = r.extents_shared;
    j["total"]["extents_saved_bytes"] = r.extents_saved;
  }
  if (r.store_present)
    j["store"] = {
        {"path", r.store}, {"entries", r.store_entries}, {"allocated_bytes", r.store_bytes}};
  auto& top = j["top"] = nlohmann::json::array();
  for (const auto& d : r.top)
    top.push_back({{"guest", printable_path(d.guest)},
                   {"path", printable_path(d.path)},
                   {"private_bytes", d.private_bytes}});
  j["errors"] = failures_to_json(r.problems.failures);
  j["error_count"] = r.problems.failure_count();
  j["seconds"] = r.seconds;
  return j;
}

// The first column says what a row is ("guest" or "total"): a guest named
// TOTAL is still a guest. Sizes are bytes.
std::string to_csv(const UsageReport& r) {
  std::string out = "row,guest,files,inodes,apparent_bytes,allocated_bytes,private_bytes,"
                    "shared_bytes,shared_full_bytes,alone_bytes,saved_bytes";
  out += r.deep ? ",possible_bytes" : "";
  out += r.extents ? ",extents_shared_bytes,extents_saved_bytes\n" : "\n";
  for (const auto& g : r.guests) {
    out += fmt::format("guest,{},{},{},{},{},{},{},{},{},{}", csv_field(printable_path(g.name)),
                       g.files, g.inodes, g.apparent, g.allocated, g.private_bytes, g.shared,
                       g.shared_full, g.alone, g.saved);
    out += r.deep ? fmt::format(",{}", g.possible) : "";
    out += r.extents ? fmt::format(",{},\n", g.extents_shared) : "\n";
  }
  out += fmt::format("total,,{},,,{},,,,{},{}", r.files, r.allocated, r.alone, r.saved);
  out += r.deep ? fmt::format(",{}", r.possible) : "";
  out += r.extents ? fmt::format(",{},{}\n", r.extents_shared, r.extents_saved) : "\n";
  return out;
}

std::string to_table(const UsageReport& r, Units u) {
  std::vector<std::vector<std::string>> rows;
  std::vector<std::string> head{"GUEST",   "FILES",  "APPARENT", "ALLOCATED",
                                "PRIVATE", "SHARED", "ALONE",    "SAVED"};
  if (r.deep) head.push_back("POSSIBLE");
  if (u == Units::kib)
    for (size_t i = 2; i < head.size(); ++i) head[i] += "(KiB)";
  rows.push_back(head);
  for (const auto& g : r.guests) {
    std::vector<std::string> row{printable_path(g.name),       std::to_string(g.files),
                                 size_str(g.apparent, u),      size_str(g.allocated, u),
                                 size_str(g.private_bytes, u), size_str(g.shared, u),
                                 size_str(g.alone, u),         size_str(g.saved, u)};
    if (r.deep) row.push_back(size_str(g.possible, u));
    rows.push_back(row);
  }
  std::vector<std::string> total{"TOTAL",
                                 std::to_string(r.files),
                                 "",
                                 size_str(r.allocated, u),
                                 "",
                                 "",
                                 size_str(r.alone, u),
                                 size_str(r.saved, u)};
  if (r.deep) total.push_back(size_str(r.possible, u));
  rows.push_back(total);
  std::vector<size_t> width(head.size(), 0);
  for (const auto& row : rows)
    for (size_t i = 0; i < row.size(); ++i) width[i] = std::max(width[i], row[i].size());
  std::string out;
  for (const auto& row : rows) {
    for (size_t i = 0; i < row.size(); ++i) {
      if (i == 0)
        out += fmt::format("{:<{}}", row[i], width[i]);
      else
        out += fmt::format("  {:>{}}", row[i], width[i]);
    }
    out += "\n";
  }
  out += "ALLOCATED of TOTAL: disk used by all guests, each inode once; SHARED: each guest's "
         "share of inodes it shares\n(split evenly); ALONE: what a guest would use if no two "
         "names shared an inode; SAVED = ALONE - PRIVATE - SHARED.\n";
  const char* unit = u == Units::kib ? " KiB" : "";
  if (r.extents)
    out += fmt::format("shared extents (btrfs, XFS): {}{} of the guests' files lie in extents "
                       "shared with other files,\n{}{} saved by that among these guests (not "
                       "in SAVED: each such file has its own inode)\n",
                       size_str(r.extents_shared, u), unit, size_str(r.extents_saved, u), unit);
  if (r.store_present)
    out += fmt::format("hash store {}: {} entries, {}{}\n", r.store, r.store_entries,
                       size_str(r.store_bytes, u), unit);
  if (!r.top.empty()) {
    out += fmt::format("top {} directories by private bytes:\n", r.top.size());
    for (const auto& d : r.top)
      out += fmt::format("  {:>10}{}  {}:{}\n", size_str(d.private_bytes, u), unit,
                         printable_path(d.guest), printable_path(d.path));
  }
  return out;
}

std::string host_name() {
  char name[256] = {};
  if (::gethostname(name, sizeof name - 1) != 0) return "(unknown)";
  return name;
}

// One self-contained page: where and when it was made, an inline SVG
// stacked bar per guest (private - what could still be shared drawn inside
// it - and its share of shared inodes), a second chart of what sharing
// saved per guest, and the table; no scripts, no network.
std::string to_html(const UsageReport& r) {
  uint64_t max = 1;
  for (const auto& g : r.guests) max = std::max(max, g.private_bytes + g.shared);
  const int bar_w = 600, row_h = 28, left = 160;
  int height = static_cast<int>(r.guests.size()) * row_h + 50;
  std::string svg = fmt::format(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" id=\"chart\" width=\"{}\" height=\"{}\" "
      "role=\"img\" aria-label=\"disk use per guest\">\n",
      left + bar_w + 120, height);
  int y = 10;
  for (const auto& g : r.guests) {
    auto w = [&](uint64_t v) { return static_cast<double>(v) * bar_w / static_cast<double>(max); };
    double x = left;
    std::string name = html_escape(printable_path(g.name));
    svg += fmt::format("<g class=\"guest\" data-guest=\"{}\">\n", name);
    svg += fmt::format("  <text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>\n", left - 8,
                       y + 17, name);
    // What unification could still free is part of the private bytes:
    // drawn inside them, so a bar is always what the guest uses.
    const uint64_t possible = std::min(g.possible, g.private_bytes);
    const std::pair<const char*, uint64_t> parts[] = {
        {"private", g.private_bytes - possible}, {"possible", possible}, {"shared", g.shared}};
    for (const auto& [cls, v] : parts) {
      svg +=
          fmt::format("  <rect class=\"{}\" x=\"{:.1f}\" y=\"{}\" width=\"{:.1f}\" height=\"20\">"
                      "<title>{}: {} bytes</title></rect>\n",
                      cls, x, y + 2, w(v), cls, v);
      x += w(v);
    }
    svg += fmt::format("  <text x=\"{:.1f}\" y=\"{}\">{}</text>\n</g>\n", x + 6, y + 17,
                       size_str(g.private_bytes + g.shared, Units::human));
    y += row_h;
  }
  svg += fmt::format(
      "<g class=\"legend\" transform=\"translate({},{})\">"
      "<rect class=\"private\" width=\"12\" height=\"12\"/><text x=\"16\" y=\"11\">private</text>"
      "<rect class=\"shared\" x=\"90\" width=\"12\" height=\"12\"/><text x=\"106\" y=\"11\">shared "
      "(its share)</text>"
      "<rect class=\"possible\" x=\"240\" width=\"12\" height=\"12\"/><text x=\"256\" "
      "y=\"11\">private, could still be shared</text></g>\n",
      left, y + 8);
  svg += "</svg>\n";

  // What sharing saved: per guest, what it uses and what it saves of what
  // it would use alone.
  uint64_t alone_max = 1;
  for (const auto& g : r.guests) alone_max = std::max(alone_max, g.alone);
  std::string saved_svg = fmt::format(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" id=\"saved\" width=\"{}\" height=\"{}\" "
      "role=\"img\" aria-label=\"disk saved per guest\">\n",
      left + bar_w + 120, height);
  y = 10;
  for (const auto& g : r.guests) {
    auto w = [&](uint64_t v) {
      return static_cast<double>(v) * bar_w / static_cast<double>(alone_max);
    };
    const uint64_t used = g.private_bytes + g.shared;
    std::string name = html_escape(printable_path(g.name));
    saved_svg += fmt::format("<g class=\"guest\" data-guest=\"{}\">\n", name);
    saved_svg += fmt::format("  <text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>\n", left - 8,
                             y + 17, name);
    saved_svg += fmt::format("  <rect class=\"used\" x=\"{}\" y=\"{}\" width=\"{:.1f}\" "
                             "height=\"20\"><title>used: {} bytes</title></rect>\n",
                             left, y + 2, w(used), used);
    saved_svg += fmt::format("  <rect class=\"saved\" x=\"{:.1f}\" y=\"{}\" width=\"{:.1f}\" "
                             "height=\"20\"><title>saved: {} bytes</title></rect>\n",
                             left + w(used), y + 2, w(g.saved), g.saved);
    saved_svg += fmt::format("  <text x=\"{:.1f}\" y=\"{}\">{} saved</text>\n</g>\n",
                             left + w(used + g.saved) + 6, y + 17, size_str(g.saved, Units::human));
    y += row_h;
  }
  saved_svg += fmt::format(
      "<g class=\"legend\" transform=\"translate({},{})\">"
      "<rect class=\"used\" width=\"12\" height=\"12\"/><text x=\"16\" y=\"11\">used</text>"
      "<rect class=\"saved\" x=\"90\" width=\"12\" height=\"12\"/><text x=\"106\" "
      "y=\"11\">saved by sharing</text></g>\n</svg>\n",
      left, y + 8);

  std::string table =
      "<table>\n<thead><tr><th>guest</th><th>files</th><th>allocated</th><th>private</th>"
      "<th>shared</th><th>alone</th><th>saved</th><th>still possible</th></tr></thead>\n<tbody>\n";
  for (const auto& g : r.guests)
    table += fmt::format("<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</"
                         "td><td>{}</td><td>{}</td></tr>\n",
                         html_escape(printable_path(g.name)), g.files,
                         size_str(g.allocated, Units::human),
                         size_str(g.private_bytes, Units::human), size_str(g.shared, Units::human),
                         size_str(g.alone, Units::human), size_str(g.saved, Units::human),
                         r.deep ? size_str(g.possible, Units::human) : std::string("-"));
  table += fmt::format("<tr "
                       "class=\"total\"><td>total</td><td>{}</td><td>{}</td><td></td><td></"
                       "td><td>{}</td><td>{}</td><td>{}</td></tr>\n",
                       r.files, size_str(r.allocated, Units::human),
                       size_str(r.alone, Units::human), size_str(r.saved, Units::human),
                       r.deep ? size_str(r.possible, Units::human) : std::string("-"));
  table += "</tbody>\n</table>\n";
  return "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
         "<title>vdu: disk use of guests</title>\n<style>\n"
         "body{font-family:sans-serif;margin:2em;color:#222}\n"
         "rect.private{fill:#3b6fb6} rect.shared{fill:#5aa469} rect.possible{fill:#e8a33d}\n"
         "rect.used{fill:#8a8a8a} rect.saved{fill:#2a9d8f}\n"
         "svg text{font-size:13px;fill:#222}\n"
         "table{border-collapse:collapse;margin-top:1.5em}\n"
         "td,th{border:1px solid #bbb;padding:4px 10px;text-align:right}\n"
         "td:first-child,th:first-child{text-align:left} tr.total{font-weight:bold}\n"
         "</style>\n</head>\n<body>\n<h1>Disk use of guests</h1>\n"
         "<p class=\"origin\">Host " +
         html_escape(printable_path(host_name())) + ", " +
         html_escape(utc_now("%Y-%m-%d %H:%M UTC")) + ", vdu " + k_version +
         ".</p>\n"
         "<p>Disk used by all guests: " +
         size_str(r.allocated, Units::human) +
         "; without sharing: " + size_str(r.alone, Units::human) +
         "; saved: " + size_str(r.saved, Units::human) +
         (r.deep ? "; still possible: " + size_str(r.possible, Units::human) : std::string()) +
         (r.extents ? "; in shared extents: " + size_str(r.extents_shared, Units::human) +
                          ", saving " + size_str(r.extents_saved, Units::human)
                    : std::string()) +
         ".</p>\n<h2>Disk use</h2>\n" + svg + "<h2>Saved by sharing</h2>\n" + saved_svg + table +
         "</body>\n</html>\n";
}

// util-vserver's form: per directory, blocks and inodes, each inode once,
// staying on the directory's file system. A directory that cannot be
// examined prints no line (a number there would be taken for its size).
int run_classic(const std::vector<std::string>& dirs, bool space, bool inodes, uint64_t blocksize,
                bool script) {
  int rc = exit_status(ExitCode::ok);
  for (const auto& d : dirs) {
    std::set<std::pair<uint64_t, uint64_t>> seen;
    uint64_t blocks = 0, count = 0;
    WalkOptions opt;
    opt.recurse = true;
    opt.one_file_system = true;
    opt.include_self = true;
    WalkResult walked = walk_path("vdu", d, opt, [&](const WalkEntry& e) {
      if (e.st.nlink > 1 && !e.st.is_directory() && !seen.insert({e.st.dev, e.st.ino}).second)
        return true;
      blocks += e.st.blocks;
      ++count;
      return true;
    });
    if (walked.failures) rc = exit_status(ExitCode::partial);
    if (!walked.reached) continue;
    std::string line = script ? "" : d + " ";
    std::string sep;
    if (space) {
      line += std::to_string(blocks * 512 / blocksize);
      sep = " ";
    }
    if (inodes) line += sep + std::to_string(count);
    std::cout << line << "\n";
  }
  return rc;
}

struct VduArgs {
  GuestSelection sel;
  bool human = false, si = false, json = false, csv = false, deep = false, no_store = false;
  std::string html, store, xid;
  uint32_t top = 0, threads = 0;
  // The classic form.
  bool space = false, inodes = false, script = false;
  uint64_t blocksize = 1024;
};

void add_options(CLI::App& app, VduArgs& a) {
  app.add_option("guests", a.sel.args, "guest names or paths (classic form: directories)")
      ->check(non_empty());
  app.add_flag("--all", a.sel.all, "every guest of the configuration base");
  add_confdir_option(app, a.sel.confdir);
  app.add_flag("-h,--human-readable", a.human, "sizes in powers of 1024 (K, M, G)");
  app.add_flag("--si", a.si, "sizes in powers of 1000");
  app.add_flag("--json", a.json, "one JSON object on stdout");
  app.add_flag("--csv", a.csv, "CSV on stdout");
  app.add_option("--html", a.html, "also write a self-contained HTML page with a chart to FILE")
      ->check(non_empty());
  app.add_flag("--deep", a.deep, "also find identical files not yet linked (reads file content)");
  app.add_flag("--no-pkgmgmt", a.sel.no_pkgmgmt,
               "with --deep: ignore package managers' config files");
  app.add_option("--top", a.top, "list the N directories with most private bytes");
  app.add_option("--store", a.store,
                 "hash store (default: the first guest's, see vhashify(8), or <vdirbase>/.hash)")
      ->check(non_empty());
  app.add_flag("--no-store", a.no_store, "do not look for a hash store");
  app.add_option("--threads", a.threads, "worker threads (default: 8 per core, 8 to 32)")
      ->check(CLI::Range(1u, 256u));
  app.add_flag("--space", a.space, "classic form: allocated space of each directory");
  app.add_flag("--inodes,--inode", a.inodes, "classic form: inodes of each directory");
  app.add_option("--blocksize", a.blocksize, "classic form: unit of --space (default 1024)")
      ->check(CLI::Range(uint64_t(1), uint64_t(1) << 40));
  app.add_flag("--script", a.script, "classic form: values only, without the directory");
  app.add_option("--xid", a.xid,
                 "classic form: count only files of context N - needs a Linux-VServer kernel; "
                 "refused on mainline");
}

// The report form: guests of the configuration base or paths.
int run_report(VduArgs& a) {
  a.sel.no_pkgmgmt = a.sel.no_pkgmgmt || !a.deep; // config files only matter for --deep
  a.sel.classic_refservers = false;
  auto selected = select_guests(a.sel);
  if (!selected.ok()) {
    print_error("vdu", selected.error().message());
    return exit_status(ExitCode::usage);
  }
  print_left_out("vdu", *selected);
  // vdu reports on every named guest; the classic refserver form of
  // vunify does not apply.
  std::vector<UnifyGuest> guests;
  for (auto& g : selected->guests) {
    g.role = GuestRole::member;
    guests.push_back(std::move(g));
  }
  UsageOptions opt;
  opt.threads = a.threads;
  opt.deep = a.deep;
  opt.top = a.top;
  if (!a.no_store && !a.store.empty()) opt.store = a.store;
  if (!a.no_store && a.store.empty() && !guests.empty()) {
    auto s = ConfigBase(a.sel.confdir).hash_store_of(guests.front().guest);
    if (s.ok()) opt.store = *s;
  }
  auto report = compute_usage(guests, opt);
  if (!report.ok()) {
    print_error("vdu", report.error().message());
    return exit_status(ExitCode::usage);
  }
  Units units = a.si ? Units::si : a.human ? Units::human : Units::kib;
  if (a.json)
    std::cout << with_run_info(to_json(*report), "vdu").dump(2) << "\n";
  else if (a.csv)
    std::cout << to_csv(*report);
  else
    std::cout << to_table(*report, units);
  if (!a.html.empty()) {
    // A new file renamed into place: a symlink planted at FILE is
    // replaced, never written through.
    auto w = write_file_atomic(a.html, to_html(*report), 0644);
    if (!w.ok()) {
      print_error("vdu", "cannot write " + w.error().message());
      return exit_status(ExitCode::usage);
    }
  }
  const uint64_t errors = report->problems.failure_count();
  bool failed = errors > 0 || !selected->rejected.empty() || !selected->skipped.empty();
  if (errors > 0) std::cerr << "vdu: " << errors << " files could not be examined\n";
  return exit_status(failed ? ExitCode::partial : ExitCode::ok);
}

int run(int argc, char** argv) {
  CLI::App app{"vdu: what each guest uses, shares and could still save", "vdu"};
  app.set_help_flag("--help", "print this help and exit");
  app.set_version_flag("--version", std::string("vdu ") + k_version);
  VduArgs a;
  add_options(app, a);
  add_help_footer(app, k_common_exit_codes,
                  {"vdu --all                      # every guest: used, shared, still possible",
                   "vdu --html /tmp/vdu.html --all # the same as a page with charts"});
  if (auto done = parse_command_line(app, argc, argv)) return *done;
  if (!a.xid.empty()) {
    // Whole-tree numbers under --xid would be wrong data for the scripts
    // that feed limits from them.
    print_error("vdu", "--xid: this kernel has no context tags (mainline Linux), so the files of "
                       "context " +
                           a.xid + " cannot be told apart; run vdu without --xid for whole trees");
    return exit_status(ExitCode::usage);
  }
  if (a.space || a.inodes) {
    if (a.sel.args.empty()) {
      print_error("vdu", "no directory given (see vdu --help)");
      return exit_status(ExitCode::usage);
    }
    return run_classic(a.sel.args, a.space, a.inodes, a.blocksize, a.script);
  }
  return run_report(a);
}

} // namespace

int run_vdu(int argc, char** argv) {
  return run_program("vdu", run, argc, argv);
}

} // namespace vu
