// Report formatting: JSON for machines, a short text summary for people.
#include "unify/report.h"

#include <algorithm>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace vu {

const char* failure_name(Failure f) {
  switch (f) {
  case Failure::walk: return "walk";
  case Failure::open: return "open";
  case Failure::stat: return "stat";
  case Failure::read: return "read";
  case Failure::xattr: return "xattr";
  case Failure::attr: return "attr";
  case Failure::link: return "link";
  case Failure::rename: return "rename";
  case Failure::unlink: return "unlink";
  case Failure::verify: return "verify";
  case Failure::config: return "config";
  case Failure::pkgmgmt: return "pkgmgmt";
  case Failure::cache: return "cache";
  case Failure::store: return "store";
  case Failure::dedupe: return "dedupe";
  }
  return "unknown";
}

const char* skip_name(Skip s) {
  switch (s) {
  case Skip::changed: return "changed";
  case Skip::partial: return "partial";
  case Skip::busy: return "busy";
  case Skip::written: return "written";
  case Skip::immutable: return "immutable";
  }
  return "unknown";
}

const char* progress_stage_name(ProgressStage s) {
  switch (s) {
  case ProgressStage::scan: return "scanning";
  case ProgressStage::hash: return "hashing";
  case ProgressStage::link: return "linking";
  case ProgressStage::done: return "done";
  }
  return "?";
}

const char* guest_role_name(GuestRole r) {
  return r == GuestRole::member ? "member" : "reference";
}

const char* pkgmgmt_use_name(PkgmgmtUse use) {
  switch (use) {
  case PkgmgmtUse::none: return "none";
  case PkgmgmtUse::used: return "used";
  case PkgmgmtUse::ignored: return "ignored";
  }
  return "none";
}

uint64_t Report::failure_count() const {
  uint64_t n = 0;
  for (const auto& [k, v] : failures) n += v.count;
  return n;
}

void merge_failures(Report& into, const Report& from) {
  for (const auto& [k, v] : from.failures) {
    auto& dst = into.failures[k];
    if (dst.count == 0) {
      dst.first_path = v.first_path;
      dst.first_message = v.first_message;
    }
    dst.count += v.count;
  }
  for (const auto& [k, v] : from.skipped) into.skipped[k] += v;
  for (const auto& [k, v] : from.skip_examples) {
    auto& dst = into.skip_examples[k];
    if (dst.count == 0) {
      dst.first_path = v.first_path;
      dst.first_message = v.first_message;
    }
    dst.count += v.count;
  }
}

void FailureLog::add(Failure kind, const std::string& path, const std::string& message) {
  std::lock_guard lock(m_mutex);
  auto& info = m_failures[kind];
  if (info.count++ == 0) {
    info.first_path = path;
    info.first_message = message;
  }
}

void FailureLog::skip(Skip kind) {
  std::lock_guard lock(m_mutex);
  ++m_skipped[kind];
}

void FailureLog::skip(Skip kind, const std::string& path, const std::string& message) {
  std::lock_guard lock(m_mutex);
  ++m_skipped[kind];
  auto& info = m_skip_examples[kind];
  if (info.count++ == 0) {
    info.first_path = path;
    info.first_message = message;
  }
}

void FailureLog::action(std::string line) {
  std::lock_guard lock(m_mutex);
  m_actions.push_back(std::move(line));
}

void FailureLog::drain_into(Report& report) {
  std::lock_guard lock(m_mutex);
  Report mine;
  mine.failures = std::move(m_failures);
  mine.skipped = std::move(m_skipped);
  mine.skip_examples = std::move(m_skip_examples);
  merge_failures(report, mine);
  std::sort(m_actions.begin(), m_actions.end());
  report.actions.insert(report.actions.end(), m_actions.begin(), m_actions.end());
  m_failures.clear();
  m_skipped.clear();
  m_actions.clear();
}

std::string human_bytes(uint64_t bytes) {
  static const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
  double v = static_cast<double>(bytes);
  int u = 0;
  while (v >= 1024 && u < 5) {
    v /= 1024;
    ++u;
  }
  return u == 0 ? fmt::format("{} B", bytes) : fmt::format("{:.1f} {}", v, units[u]);
}

std::string printable_path(const std::string& path) {
  std::string out;
  out.reserve(path.size());
  for (size_t i = 0; i < path.size();) {
    unsigned char c = static_cast<unsigned char>(path[i]);
    size_t len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    bool valid = len > 0 && i + len <= path.size();
    for (size_t k = 1; valid && k < len; ++k)
      valid = (static_cast<unsigned char>(path[i + k]) >> 6) == 2;
    if (valid && len == 1 && (c < 0x20 || c == 0x7f || c == '\\')) valid = false;
    if (!valid) {
      out += fmt::format("\\x{:02x}", c);
      ++i;
      continue;
    }
    out.append(path, i, len);
    i += len;
  }
  return out;
}

namespace {
// {kind: {count, example, message}}: errors and notices alike.
template <typename Kind>
nlohmann::json examples_to_json(const std::map<Kind, FailureInfo>& examples,
                                const char* (*name)(Kind)) {
  auto out = nlohmann::json::object();
  for (const auto& [k, v] : examples)
    out[name(k)] = {{"count", v.count},
                    {"example", printable_path(v.first_path)},
                    {"message", printable_path(v.first_message)}};
  return out;
}
} // namespace

nlohmann::json failures_to_json(const std::map<Failure, FailureInfo>& failures) {
  return examples_to_json(failures, failure_name);
}

nlohmann::json report_to_json(const Report& r) {
  nlohmann::json j;
  j["dry_run"] = r.dry_run;
  auto& guests = j["guests"] = nlohmann::json::array();
  for (const auto& g : r.guests) {
    nlohmann::json sources = nlohmann::json::array();
    for (const auto& src : g.config_sources) sources.push_back(printable_path(src));
    guests.push_back({{"name", printable_path(g.name)},
                      {"root", printable_path(g.root)},
                      {"role", guest_role_name(g.role)},
                      {"pkgmgmt", pkgmgmt_use_name(g.pkgmgmt)},
                      {"config_files", g.config_files},
                      {"config_sources", sources}});
  }
  j["dirs_scanned"] = r.dirs_scanned;
  j["files_scanned"] = r.files_scanned;
  j["bytes_scanned"] = r.bytes_scanned;
  j["files_excluded"] = r.files_excluded;
  j["files_config"] = r.files_config;
  j["files_small"] = r.files_small;
  j["files_large"] = r.files_large;
  j["files_other"] = r.files_other;
  j["files_hashed"] = r.files_hashed;
  j["bytes_hashed"] = r.bytes_hashed;
  j["files_compared"] = r.files_compared;
  j["duplicate_groups"] = r.duplicate_groups;
  j["mode"] = r.reflink ? "reflink" : "link";
  j["parts"] = r.parts;
  j["files_linked"] = r.files_linked;
  j["bytes_saved"] = r.bytes_saved;
  j["files_already_shared"] = r.files_already_shared;
  j["inodes_protected"] = r.inodes_protected;
  j["temporaries_removed"] = r.temporaries_removed;
  j["bytes_compared"] = r.bytes_compared;
  j["bytes_read"] = r.bytes_hashed + r.bytes_compared;
  j["files_in_store"] = r.files_in_store;
  j["cache_hits"] = r.cache_hits;
  j["store_entries_created"] = r.store_entries_created;
  j["store_entries_removed"] = r.store_entries_removed;
  j["files_deunified"] = r.files_deunified;
  j["bytes_copied"] = r.bytes_copied;
  auto& skipped = j["skipped"] = nlohmann::json::object();
  for (const auto& [k, v] : r.skipped) skipped[skip_name(k)] = v;
  // Skips worth an example: files left alone because a process had them
  // open for writing, shared files a guest process opened for writing.
  j["notices"] = examples_to_json(r.skip_examples, skip_name);
  j["errors"] = failures_to_json(r.failures);
  j["error_count"] = r.failure_count();
  auto& stages = j["stage_seconds"] = nlohmann::json::object();
  for (const auto& [k, v] : r.stage_seconds) stages[k] = v;
  j["seconds"] = r.seconds;
  return j;
}

std::string report_to_text(const Report& r, int verbosity) {
  std::string out;
  const char* would = r.dry_run ? "would be " : "";
  out += fmt::format("{} guests, {} files ({}) scanned, {} files ({}) hashed\n", r.guests.size(),
                     r.files_scanned, human_bytes(r.bytes_scanned), r.files_hashed,
                     human_bytes(r.bytes_hashed));
  if (r.reflink)
    out += fmt::format("{} files {}sharing extents in {} groups, {} {}saved; {} already shared\n",
                       r.files_linked, r.dry_run ? "would be " : "now ", r.duplicate_groups,
                       human_bytes(r.bytes_saved), would, r.files_already_shared);
  else
    out += fmt::format("{} files {}linked in {} groups, {} {}saved; {} already shared\n",
                       r.files_linked, would, r.duplicate_groups, human_bytes(r.bytes_saved), would,
                       r.files_already_shared);
  if (verbosity > 0) {
    for (const auto& g : r.guests) {
      if (g.pkgmgmt == PkgmgmtUse::ignored) {
        out += fmt::format("{}: package manager ignored (pkgmgmt-ignore or --no-pkgmgmt)\n",
                           printable_path(g.name));
        continue;
      }
      std::string from;
      for (const auto& src : g.config_sources) from += (from.empty() ? "" : ", ") + src;
      out += fmt::format("{}: {} configuration files kept private ({})\n", printable_path(g.name),
                         g.config_files,
                         from.empty() ? "no package database found" : printable_path(from));
    }
    if (r.parts > 1)
      out += fmt::format("made of {} runs over size ranges (--memory-limit)\n", r.parts);
    out += fmt::format("{} config files, {} excluded, {} under and {} over the size limits, {} not "
                       "regular files; {} inodes newly protected, {} temporaries removed\n",
                       r.files_config, r.files_excluded, r.files_small, r.files_large,
                       r.files_other, r.inodes_protected, r.temporaries_removed);
    for (const auto& [k, v] : r.skipped) out += fmt::format("skipped ({}): {}\n", skip_name(k), v);
  }
  // Always shown: a guest writing to a shared file is an event to look at.
  if (auto w = r.skip_examples.find(Skip::written); w != r.skip_examples.end())
    out += fmt::format("notice: {} shared files were opened for writing by a guest process during "
                       "the run; the writer's guest keeps its own copy, e.g. {}: {}\n",
                       w->second.count, printable_path(w->second.first_path),
                       printable_path(w->second.first_message));
  for (const auto& [k, v] : r.failures)
    out += fmt::format("errors ({}): {}, e.g. {}: {}\n", failure_name(k), v.count,
                       printable_path(v.first_path), printable_path(v.first_message));
  return out;
}

} // namespace vu
