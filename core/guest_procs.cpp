// The processes of running guests (see guest_procs.h).
#include "core/guest_procs.h"

#include "kernel/cgroup.h"
#include "kernel/fs.h"

#include <unistd.h>

#include <cstdlib>

namespace vu {

Result<ProcUsage> process_usage(pid_t pid) {
  auto text = read_host_file("/proc/" + std::to_string(pid) + "/stat", 4096);
  if (!text.ok()) return make_error(ESRCH, "process " + std::to_string(pid));
  size_t close = text->rfind(')');
  if (close == std::string::npos) return described_error(EINVAL, "bad /proc stat");
  std::vector<std::string> f{"", "", ""}; // fields 1 and 2 skipped: index = field number
  size_t at = close + 2;
  while (at < text->size() && f.size() < 25) {
    size_t sp = text->find(' ', at);
    if (sp == std::string::npos) sp = text->size();
    f.push_back(text->substr(at, sp - at));
    at = sp + 1;
  }
  if (f.size() < 25) return described_error(EINVAL, "short /proc stat");
  auto num = [&](int i) { return std::strtoull(f[static_cast<size_t>(i)].c_str(), nullptr, 10); };
  ProcUsage u;
  u.utime_ticks = num(14);
  u.stime_ticks = num(15);
  u.vsize = num(23);
  u.rss = num(24) * static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
  return u;
}

std::vector<RunningGuest> list_running_guests() {
  std::vector<RunningGuest> out;
  for (auto& [name, state] : running_guests()) {
    if (liveness(state) != Liveness::running) continue;
    RunningGuest g{name, state, {}};
    auto cg = Cgroup::open(state.cgroup2, false);
    if (cg.ok()) g.processes = cg->processes();
    out.push_back(std::move(g));
  }
  return out;
}

} // namespace vu
