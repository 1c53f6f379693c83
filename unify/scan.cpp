// The walk.
//
// Every guest is walked in parallel with tbb::parallel_for_each and a
// feeder: each work item is one directory, named by its path relative to
// the guest root and opened with openat2(RESOLVE_BENEATH |
// RESOLVE_NO_SYMLINKS) from the root's descriptor. Re-resolving from the
// root costs a few lookups per directory but keeps the number of open
// descriptors bounded by the thread count, and a guest that swaps a
// directory for a symlink mid-walk gets ELOOP instead of steering us out of
// its tree. Directory-entry types let us skip symlinks and special files
// without a statx; only candidate regular files are stat'ed. Results go to
// thread-local bins and are merged and sorted afterwards so the output does
// not depend on scheduling.
#include "unify/scan.h"

#include "unify/swap.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <tbb/enumerable_thread_specific.h>
#include <tbb/parallel_for_each.h>
#include <tbb/parallel_sort.h>

#include <algorithm>
#include <optional>

namespace vu {

PathRef PathArena::add(std::string_view s) {
  constexpr size_t k_block = 64 * 1024;
  if (s.size() > m_capacity - m_used) {
    size_t cap = std::max(k_block, s.size());
    m_blocks.emplace_back(new char[cap]);
    m_used = 0;
    m_capacity = cap;
  }
  char* p = m_blocks.back().get() + m_used;
  std::copy(s.begin(), s.end(), p);
  m_used += s.size();
  return PathRef(p, static_cast<uint32_t>(s.size()));
}

void PathArena::absorb(PathArena&& other) {
  // Keep our current block last so that add() goes on filling it.
  std::unique_ptr<char[]> last;
  if (!m_blocks.empty()) {
    last = std::move(m_blocks.back());
    m_blocks.pop_back();
  }
  for (auto& b : other.m_blocks) m_blocks.push_back(std::move(b));
  if (last) m_blocks.push_back(std::move(last)); // else m_used == m_capacity == 0 already
  other.m_blocks.clear();
  other.m_used = other.m_capacity = 0;
}

namespace {

struct WorkItem {
  uint32_t guest;
  std::string rel; // "" for the root
};

struct Bin {
  PathArena paths;
  std::vector<FileRec> files;
  std::vector<TempRec> temps;
  uint64_t dirs = 0, files_scanned = 0, bytes_scanned = 0, excluded = 0, config = 0,
           small = 0, other = 0;
};


} // namespace

ScanResult scan_guests(const std::vector<UnifyGuest>& guests, const std::vector<UniqueFd>& roots,
                       const std::vector<std::vector<std::string>>& config_paths,
                       const ScanOptions& options, Report& report, FailureLog& log) {
  const ExcludeList* secrets = options.skip_secrets ? &secret_files() : nullptr;
  tbb::enumerable_thread_specific<Bin> bins;
  std::vector<uint64_t> root_devs;
  for (const auto& r : roots) {
    auto st = stat_fd(r.get());
    root_devs.push_back(st.ok() ? st->dev : 0);
  }
  std::vector<WorkItem> seeds;
  for (uint32_t g = 0; g < guests.size(); ++g) seeds.push_back({g, ""});

  tbb::parallel_for_each(seeds.begin(), seeds.end(), [&](const WorkItem& item,
                                                         tbb::feeder<WorkItem>& feeder) {
    Bin& bin = bins.local();
    const auto& guest = guests[item.guest];
    auto dir = open_beneath(roots[item.guest].get(), item.rel, O_RDONLY | O_DIRECTORY);
    if (!dir.ok()) {
      if (is_race(dir.code())) log.skip(Skip::changed);
      else log.add(Failure::walk, guest.guest.root + "/" + item.rel, dir.error().message());
      return;
    }
    auto entries = read_directory(dir->get());
    if (!entries.ok()) {
      log.add(Failure::walk, guest.guest.root + "/" + item.rel, entries.error().message());
      return;
    }
    ++bin.dirs;
    std::string abs = "/" + item.rel;
    if (abs.size() > 1) abs += '/';
    const size_t base_len = abs.size();
    std::optional<FileStat> dir_st; // read when a temporary's signature is checked
    for (auto& e : *entries) {
      std::string rel = item.rel.empty() ? e.name : item.rel + "/" + e.name;
      unsigned char type = e.type;
      if (type != DT_DIR && options.temp_names && TempNames::has_prefix(e.name)) {
        if (!dir_st) {
          auto ds = stat_fd(dir->get());
          dir_st = ds.ok() ? *ds : FileStat{};
        }
        // Only names signed with this host's key for this directory are
        // the suite's; anything else is the guest's own file.
        if (options.temp_names->is_ours(e.name, dir_st->dev, dir_st->ino)) {
          auto st = stat_at(dir->get(), e.name);
          if (st.ok() && st->is_regular()) bin.temps.push_back({item.guest, std::move(rel), *st});
          continue;
        }
      }
      abs.resize(base_len);
      abs += e.name;
      if ((secrets && secrets->match(abs) != MatchKind::include) ||
          guest.excludes.match(abs) != MatchKind::include) {
        ++bin.excluded;
        continue;
      }
      if (item.guest < config_paths.size() &&
          std::binary_search(config_paths[item.guest].begin(), config_paths[item.guest].end(), abs)) {
        ++bin.config;
        continue;
      }
      if (type == DT_DIR && !options.one_file_system) {
        feeder.add(WorkItem{item.guest, std::move(rel)});
        continue;
      }
      if (type != DT_REG && type != DT_UNKNOWN) {
        ++bin.other;
        continue;
      }
      auto st = stat_at(dir->get(), e.name);
      if (!st.ok()) {
        if (is_race(st.code())) log.skip(Skip::changed);
        else log.add(Failure::stat, guest.guest.root + "/" + rel, st.error().message());
        continue;
      }
      if (st->is_directory()) {
        if (options.one_file_system && st->dev != root_devs[item.guest]) continue;
        feeder.add(WorkItem{item.guest, std::move(rel)});
        continue;
      }
      if (!st->is_regular()) {
        ++bin.other;
        continue;
      }
      if (st->size < options.min_size) {
        ++bin.small;
        continue;
      }
      ++bin.files_scanned;
      bin.bytes_scanned += st->size;
      if (options.progress) options.progress->files_scanned.fetch_add(1, std::memory_order_relaxed);
      bin.files.push_back(FileRec{item.guest, bin.paths.add(rel), *st});
    }
  });

  ScanResult out;
  size_t total = 0;
  for (auto& bin : bins) total += bin.files.size();
  out.files.reserve(total);
  for (auto& bin : bins) {
    report.dirs_scanned += bin.dirs;
    report.files_scanned += bin.files_scanned;
    report.bytes_scanned += bin.bytes_scanned;
    report.files_excluded += bin.excluded;
    report.files_config += bin.config;
    report.files_small += bin.small;
    report.files_other += bin.other;
    std::move(bin.files.begin(), bin.files.end(), std::back_inserter(out.files));
    out.paths.absorb(std::move(bin.paths));
    std::vector<FileRec>().swap(bin.files); // keeps the peak at one copy of the records
    std::move(bin.temps.begin(), bin.temps.end(), std::back_inserter(out.temporaries));
  }
  tbb::parallel_sort(out.files.begin(), out.files.end(), [](const FileRec& a, const FileRec& b) {
    return a.guest != b.guest ? a.guest < b.guest : a.path < b.path;
  });
  std::sort(out.temporaries.begin(), out.temporaries.end(),
            [](const TempRec& a, const TempRec& b) {
              return a.guest != b.guest ? a.guest < b.guest : a.path < b.path;
            });
  return out;
}

} // namespace vu
