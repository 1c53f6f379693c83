// The run context (see run.h).
#include "unify/run.h"

#include "kernel/path.h"
#include "unify/workers.h"

#include <fcntl.h>
#include <sys/random.h>

#include <algorithm>
#include <map>

namespace vu {

uint64_t random_seed() {
  uint64_t r = 0;
  while (::getrandom(&r, sizeof r, 0) != sizeof r) {
  }
  return r;
}

FdBudget FdBudget::for_limit(uint64_t limit, uint32_t link_workers) {
  // Kept aside: the walk (one directory per worker), the opener of each
  // hash worker, stdio, libraries: 32 workers use under 100.
  const uint64_t reserve = 160;
  uint64_t usable = limit > reserve + 64 ? limit - reserve : 64;
  FdBudget b;
  b.reaper_queue = static_cast<size_t>(std::clamp<uint64_t>(usable / 4, 8, 512));
  uint64_t per_worker = (usable - b.reaper_queue) / std::max(1u, link_workers);
  // A name being swapped holds its directory, a target its own descriptor.
  b.names_per_batch = static_cast<size_t>(std::clamp<uint64_t>(per_worker / 3, 4, 256));
  return b;
}

void RunContext::set_names(InodeRec& r, std::span<const uint32_t> names) {
  std::vector<uint32_t> copy(names.begin(), names.end()); // names may move as the vector grows
  r.names_begin = static_cast<uint32_t>(inode_names.size());
  r.names_count = static_cast<uint32_t>(copy.size());
  inode_names.insert(inode_names.end(), copy.begin(), copy.end());
}

RunContext::RunContext(const RunOptions& o, std::vector<UnifyGuest> g)
    : options(o), guests(std::move(g)), m_start(std::chrono::steady_clock::now()) {}

Result<std::unique_ptr<RunContext>> RunContext::open(std::vector<UnifyGuest> guests,
                                                     const RunOptions& options) {
  // A name's record keeps its guest's index in 16 bits (FileRec); the hash
  // store is one more guest.
  if (guests.size() >= FileRec::k_max_guests)
    return described_error(E2BIG, "too many guests for one run (" + std::to_string(guests.size()) +
                                      "): at most " + std::to_string(FileRec::k_max_guests - 1) +
                                      "; run over fewer at a time");
  auto rc = std::make_unique<RunContext>(options, std::move(guests));
  rc->report.dry_run = options.dry_run;
  for (const auto& g : rc->guests)
    rc->report.guests.push_back(
        {g.guest.name, g.guest.root, g.role, g.pkgmgmt, g.config_files.size(), g.config_sources});
  for (const auto& g : rc->guests) {
    VU_TRY_ASSIGN(fd, open_directory(g.guest.root));
    VU_TRY_ASSIGN(st, stat_fd(fd.get()));
    rc->roots.push_back(std::move(fd));
    rc->root_ids.push_back({st.dev, st.ino});
  }
  // The state: signed temporary names, and locks so that two runs never
  // change one guest at once. A dry run creates nothing and takes no lock.
  auto state = StateDir::open(StateDir::default_path(), options.dry_run ? Create::no : Create::yes);
  if (state.ok()) {
    VU_TRY_ASSIGN(temps, state->temp_names(options.dry_run ? Create::no : Create::yes));
    rc->temps = temps;
    if (!options.dry_run) {
      rc->prelinks = PreLinks(*state);
      std::vector<Guest> locked;
      for (const auto& g : rc->guests) locked.push_back(g.guest);
      VU_TRY_ASSIGN(locks, GuestLocks::acquire(*state, locked, options.lock_holder,
                                               options.wait_for_lock, options.on_lock_wait));
      rc->m_locks = std::move(locks);
    }
  } else if (!options.dry_run || state.code() != ENOENT) {
    return state.error();
  }
  if (options.attrs) {
    rc->attrs = options.attrs;
  } else {
    rc->m_own_attrs = detect_attr_backend();
    rc->attrs = rc->m_own_attrs.get();
  }
  rc->seed = random_seed();
  rc->budget = FdBudget::for_limit(raise_fd_limit(), cpu_threads(worker_threads(options.threads)));
  rc->reaper.set_capacity(rc->budget.reaper_queue);
  return rc;
}

std::string RunContext::display(uint32_t file) const {
  const auto& f = scan.files[file];
  return guests[f.guest()].guest.name + ":/" + f.path;
}

Status RunContext::protect(int fd, uint32_t guest, const std::string& path, Protection p) {
  if (!attrs->protect_needs_path()) return attrs->protect(fd, -1, path, p);
  VU_TRY_ASSIGN(dir, open_beneath(roots[guest].get(), parent_of(path), O_RDONLY | O_DIRECTORY));
  return attrs->protect(fd, dir.get(), name_of(path), p);
}

Status RunContext::protect_fd(int fd, Protection p) {
  if (attrs->protect_needs_path()) return described_error(ENOTSUP, "protection by descriptor");
  return attrs->protect(fd, -1, "", p);
}

void RunContext::record_prelinks(const InodeRec& inode) {
  if (names_of(inode).size() < 2) return;
  std::map<uint32_t, std::vector<std::string>> by_guest;
  for (uint32_t n : names_of(inode))
    by_guest[scan.files[n].guest()].push_back(std::string(scan.files[n].path));
  for (auto& [g, paths] : by_guest)
    if (paths.size() >= 2) prelinks.record(root_ids[g], paths);
}

void RunContext::stage(ProgressStage s) {
  if (options.progress) options.progress->stage.store(s, std::memory_order_relaxed);
}

Report RunContext::finish() {
  reaper.finish(); // replaced inodes freed before the run reports
  report.bytes_hashed += bytes_hashed.exchange(0);
  report.files_linked += files_linked.exchange(0);
  report.bytes_saved += bytes_saved.exchange(0);
  report.files_compared += files_compared.exchange(0);
  report.bytes_compared += bytes_compared.exchange(0);
  report.inodes_protected += inodes_protected.exchange(0);
  stage(ProgressStage::done);
  log.drain_into(report);
  std::chrono::duration<double> d = std::chrono::steady_clock::now() - m_start;
  report.seconds = d.count();
  return std::move(report);
}

PassTimer::PassTimer(RunContext& rc, const char* name)
    : m_rc(rc), m_name(name), m_start(std::chrono::steady_clock::now()) {}

PassTimer::~PassTimer() {
  std::chrono::duration<double> d = std::chrono::steady_clock::now() - m_start;
  m_rc.report.stage_seconds.emplace_back(m_name, d.count());
}

} // namespace vu
