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
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <optional>

namespace vu {

size_t SizeHistogram::slot(uint64_t size) {
  if (size < 16) return static_cast<size_t>(size);
  const int p = 63 - __builtin_clzll(size); // 4..63
  const uint64_t part = (size - (uint64_t(1) << p)) >> (p - 4);
  return static_cast<size_t>(p) * k_parts + static_cast<size_t>(part);
}

uint64_t SizeHistogram::lowest(size_t slot) {
  if (slot < 16) return slot;
  const size_t p = slot / k_parts;
  if (p < 4) return 16; // rows never used
  return (uint64_t(1) << p) + (uint64_t(slot % k_parts) << (p - 4));
}

PathRef::PathRef(const char* p) : m_bits(reinterpret_cast<uintptr_t>(p)) {
  if (m_bits & ~k_address) { // an address above 2^48: mmap was asked for one
    std::fprintf(stderr, "vunify: internal error: path storage at an address above 2^48\n");
    std::abort();
  }
}

namespace {

uint16_t guest_tag(uint32_t guest) {
  if (guest > FileRec::k_max_guests) {
    std::fprintf(stderr, "vunify: internal error: guest index %u above %u\n", guest,
                 FileRec::k_max_guests);
    std::abort();
  }
  return static_cast<uint16_t>(guest);
}

} // namespace

FileRec::FileRec(uint32_t guest, PathRef p, const FileStat& s)
    : path(p.tagged(guest_tag(guest))), st(s) {}

PathRef PathArena::add(std::string_view s) {
  constexpr size_t k_block = 64 * 1024;
  const uint32_t n = static_cast<uint32_t>(s.size()); // a walk's paths are far below 4 GiB
  const size_t need = sizeof n + s.size();
  if (need > m_capacity - m_used) {
    size_t cap = std::max(k_block, need);
    m_blocks.emplace_back(new char[cap]);
    m_used = 0;
    m_capacity = cap;
  }
  char* p = m_blocks.back().get() + m_used;
  std::memcpy(p, &n, sizeof n);
  std::copy(s.begin(), s.end(), p + sizeof n);
  m_used += need;
  return PathRef(p + sizeof n);
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

PathRef PathInterner::add(std::string_view s) {
  const uint64_t h = std::hash<std::string_view>{}(s);
  Shard& sh = m_shards[h >> 58]; // the top 6 bits: k_shards == 64
  const uint32_t check = static_cast<uint32_t>(h >> 26);
  std::lock_guard lock(sh.mutex);
  if ((sh.used + 1) * 4 > sh.table.size() * 3) grow(sh);
  const size_t mask = sh.table.size() - 1;
  for (size_t k = 0, i = h & mask; k < k_max_probe; ++k, i = (i + 1) & mask) {
    Slot& slot = sh.table[i];
    if (!slot.p) {
      PathRef r = sh.arena.add(s);
      slot = Slot{r.view().data(), static_cast<uint32_t>(s.size()), check};
      ++sh.used;
      return r;
    }
    if (slot.check == check && slot.n == s.size() && std::memcmp(slot.p, s.data(), s.size()) == 0)
      return PathArena::at(slot.p);
  }
  return sh.arena.add(s); // a long probe: kept again, not in the table
}

void PathInterner::grow(Shard& sh) {
  std::vector<Slot> old = std::move(sh.table);
  sh.table.assign(std::max<size_t>(1024, old.size() * 2), Slot{});
  sh.used = 0;
  const size_t mask = sh.table.size() - 1;
  for (const Slot& o : old) {
    if (!o.p) continue;
    const uint64_t h = std::hash<std::string_view>{}(std::string_view(o.p, o.n));
    for (size_t k = 0, i = h & mask; k < k_max_probe; ++k, i = (i + 1) & mask)
      if (!sh.table[i].p) {
        sh.table[i] = o;
        ++sh.used;
        break;
      } // a long probe: the path stays valid, it is only no longer found
  }
}

PathArena PathInterner::take() {
  PathArena out;
  for (Shard& sh : m_shards) {
    out.absorb(std::move(sh.arena));
    std::vector<Slot>().swap(sh.table);
    sh.used = 0;
  }
  return out;
}

namespace {

struct WorkItem {
  uint32_t guest;
  std::string rel; // "" for the root
};

struct Bin {
  MappedVector<FileRec> files;
  std::vector<TempRec> temps;
  uint64_t dirs = 0, files_scanned = 0, bytes_scanned = 0, excluded = 0, config = 0, small = 0,
           large = 0, other = 0;
};

bool by_guest_then_path(const FileRec& a, const FileRec& b) {
  return a.guest() != b.guest() ? a.guest() < b.guest() : a.path < b.path;
}

bool temp_by_guest_then_path(const TempRec& a, const TempRec& b) {
  return a.guest != b.guest ? a.guest < b.guest : a.path < b.path;
}

// One directory being read: its descriptor, its path and the stat that
// signed temporary names are checked against (read on first need).
struct OpenDir {
  const WorkItem& item;
  UniqueFd fd;
  std::optional<FileStat> st;

  const FileStat& stat() {
    if (!st) {
      auto ds = stat_fd(fd.get());
      st = ds.ok() ? *ds : FileStat{};
    }
    return *st;
  }
};

// The parallel walk's shared state; each thread fills its own Bin.
class Walker {
public:
  Walker(const std::vector<UnifyGuest>& guests, const std::vector<UniqueFd>& roots,
         const std::vector<std::vector<std::string>>& config_paths, const ScanOptions& options,
         FailureLog& log)
      : m_guests(guests), m_roots(roots), m_config_paths(config_paths), m_options(options),
        m_log(log), m_secrets(options.skip_secrets ? &secret_files() : nullptr) {
    for (const auto& r : roots) {
      auto st = stat_fd(r.get());
      m_root_devs.push_back(st.ok() ? st->dev : 0);
    }
  }

  void visit(const WorkItem& item, tbb::feeder<WorkItem>& feeder) {
    Bin& bin = m_bins.local();
    const std::string where = m_guests[item.guest].guest.root + "/" + item.rel;
    auto fd = open_beneath(m_roots[item.guest].get(), item.rel, O_RDONLY | O_DIRECTORY);
    if (!fd.ok()) {
      if (is_race(fd.code()))
        m_log.skip(Skip::changed);
      else
        m_log.add(Failure::walk, where, fd.error().message());
      return;
    }
    auto entries = read_directory(fd->get());
    if (!entries.ok()) {
      m_log.add(Failure::walk, where, entries.error().message());
      return;
    }
    ++bin.dirs;
    OpenDir dir{item, std::move(*fd), std::nullopt};
    std::string abs = "/" + item.rel;
    if (abs.size() > 1) abs += '/';
    const size_t base_len = abs.size();
    for (auto& e : *entries) {
      abs.resize(base_len);
      abs += e.name;
      visit_entry(bin, dir, e, abs, feeder);
    }
  }

  ScanResult collect(Report& report) {
    ScanResult out;
    for (auto& bin : m_bins) {
      report.dirs_scanned += bin.dirs;
      report.files_scanned += bin.files_scanned;
      report.bytes_scanned += bin.bytes_scanned;
      report.files_excluded += bin.excluded;
      report.files_config += bin.config;
      report.files_small += bin.small;
      report.files_large += bin.large;
      report.files_other += bin.other;
      out.files.absorb(std::move(bin.files)); // the peak stays at one copy of the records
      std::move(bin.temps.begin(), bin.temps.end(), std::back_inserter(out.temporaries));
    }
    out.paths = m_paths.take();
    tbb::parallel_sort(out.files.begin(), out.files.end(), by_guest_then_path);
    std::sort(out.temporaries.begin(), out.temporaries.end(), temp_by_guest_then_path);
    return out;
  }

private:
  // -vv: "left alone guest:/path: why".
  void left_alone(uint32_t g, const std::string& abs, const std::string& why) {
    if (m_options.log_skips)
      m_log.action("left alone " + printable_path(m_guests[g].guest.name + ":" + abs) + ": " +
                   printable_path(why));
  }

  // Decides what one directory entry is: the suite's temporary, excluded,
  // a config file, a directory to walk, or a candidate file.
  void visit_entry(Bin& bin, OpenDir& dir, const DirEntry& e, const std::string& abs,
                   tbb::feeder<WorkItem>& feeder) {
    const uint32_t g = dir.item.guest;
    std::string rel = dir.item.rel.empty() ? e.name : dir.item.rel + "/" + e.name;
    // Only names signed with this host's key for this directory are the
    // suite's; anything else is the guest's own file.
    if (e.type != DT_DIR && m_options.temp_names && TempNames::has_prefix(e.name) &&
        m_options.temp_names->is_ours(e.name, dir.stat().dev, dir.stat().ino)) {
      auto st = stat_at(dir.fd.get(), e.name);
      if (st.ok() && st->is_regular()) bin.temps.push_back({g, std::move(rel), *st});
      return;
    }
    if (m_secrets && m_secrets->match(abs) != MatchKind::include) {
      ++bin.excluded;
      left_alone(g, abs, "a file that holds secrets (never read)");
      return;
    }
    if (m_guests[g].excludes.match(abs) != MatchKind::include) {
      ++bin.excluded;
      if (m_options.log_skips) {
        const ExcludeRule* r = m_guests[g].excludes.matching_rule(abs);
        left_alone(g, abs, "excluded by " + r->origin + " (" + r->pattern + ")");
      }
      return;
    }
    if (g < m_config_paths.size() &&
        std::binary_search(m_config_paths[g].begin(), m_config_paths[g].end(), abs)) {
      ++bin.config;
      left_alone(g, abs, "a configuration file of the package manager");
      return;
    }
    if (e.type == DT_DIR && !m_options.one_file_system) {
      feeder.add(WorkItem{g, std::move(rel)});
      return;
    }
    if (e.type != DT_REG && e.type != DT_DIR && e.type != DT_UNKNOWN) {
      ++bin.other;
      return;
    }
    visit_file(bin, dir, e.name, std::move(rel), feeder);
  }

  // A regular file, a directory seen with --one-file-system, or an entry
  // whose type the file system did not report: one statx decides.
  void visit_file(Bin& bin, OpenDir& dir, const std::string& name, std::string rel,
                  tbb::feeder<WorkItem>& feeder) {
    const uint32_t g = dir.item.guest;
    auto st = stat_at(dir.fd.get(), name);
    if (!st.ok()) {
      if (is_race(st.code()))
        m_log.skip(Skip::changed);
      else
        m_log.add(Failure::stat, m_guests[g].guest.root + "/" + rel, st.error().message());
      return;
    }
    if (st->is_directory()) {
      if (!m_options.one_file_system || st->dev == m_root_devs[g])
        feeder.add(WorkItem{g, std::move(rel)});
      return;
    }
    if (!st->is_regular()) {
      ++bin.other;
      return;
    }
    if (st->size < m_options.min_size) {
      ++bin.small;
      left_alone(g, "/" + rel, "smaller than --min-size");
      return;
    }
    if (m_options.max_size && st->size > m_options.max_size) {
      ++bin.large;
      left_alone(g, "/" + rel, "larger than --max-size");
      return;
    }
    if (m_options.histogram)
      m_options.histogram->count[SizeHistogram::slot(st->size)].fetch_add(
          1, std::memory_order_relaxed);
    if (st->size < m_options.range_lo || st->size > m_options.range_hi) return;
    ++bin.files_scanned;
    bin.bytes_scanned += st->size;
    if (m_options.progress)
      m_options.progress->files_scanned.fetch_add(1, std::memory_order_relaxed);
    if (m_options.budget) {
      ScanBudget& b = *m_options.budget;
      if (b.overflow.load(std::memory_order_relaxed) ||
          b.kept.fetch_add(1, std::memory_order_relaxed) >= b.max_files) {
        b.overflow.store(true, std::memory_order_relaxed);
        return; // the caller drops this walk's records and runs in ranges
      }
    }
    bin.files.push_back(FileRec{g, m_paths.add(rel), *st});
  }

  const std::vector<UnifyGuest>& m_guests;
  const std::vector<UniqueFd>& m_roots;
  const std::vector<std::vector<std::string>>& m_config_paths;
  const ScanOptions& m_options;
  FailureLog& m_log;
  const ExcludeList* m_secrets;
  std::vector<uint64_t> m_root_devs;
  tbb::enumerable_thread_specific<Bin> m_bins;
  PathInterner m_paths; // every guest's path bytes, each distinct path once
};

} // namespace

ScanResult scan_guests(const std::vector<UnifyGuest>& guests, const std::vector<UniqueFd>& roots,
                       const std::vector<std::vector<std::string>>& config_paths,
                       const ScanOptions& options, Report& report, FailureLog& log) {
  Walker walker(guests, roots, config_paths, options, log);
  std::vector<WorkItem> seeds;
  for (uint32_t g = 0; g < guests.size(); ++g) seeds.push_back({g, ""});
  tbb::parallel_for_each(
      seeds.begin(), seeds.end(),
      [&](const WorkItem& item, tbb::feeder<WorkItem>& feeder) { walker.visit(item, feeder); });
  return walker.collect(report);
}

} // namespace vu
