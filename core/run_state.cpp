// Run states of guests (see run_state.h).
#include "core/run_state.h"

#include "core/guest.h"
#include "kernel/fs.h"
#include "kernel/ns.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>

namespace vu {

namespace {

constexpr uint64_t k_max_state_bytes = 16 * 1024;

Result<std::string> parse_path(std::string_view v) {
  if (v.empty() || v[0] != '/' || v.size() > 4096 || v.find("/../") != std::string_view::npos ||
      v.find('\0') != std::string_view::npos)
    return described_error(EINVAL, "'" + std::string(v) + "' is not an absolute path");
  return std::string(v);
}

Status apply(RunState& s, std::string_view key, std::string_view value) {
  if (key == "pid") {
    VU_TRY_ASSIGN(n, parse_decimal(value, 4194304));
    s.pid = static_cast<pid_t>(n);
  } else if (key == "start") {
    VU_TRY_ASSIGN(n, parse_decimal(value, UINT64_MAX));
    s.start_ticks = n;
  } else if (key == "boot") {
    if (value.size() > 64) return described_error(EINVAL, "boot id too long");
    s.boot = std::string(value);
  } else if (key == "context") {
    VU_TRY_ASSIGN(n, parse_decimal(value, 4294967294u));
    s.context = static_cast<unsigned>(n);
  } else if (key == "cgroup") {
    VU_TRY_ASSIGN(p, parse_path(value));
    s.cgroup2 = p;
  } else if (key == "cgroup1") {
    VU_TRY_ASSIGN(p, parse_path(value));
    if (s.cgroup1.size() >= 32) return described_error(E2BIG, "too many cgroup1 lines");
    s.cgroup1.push_back(p);
  } else if (key == "started") {
    VU_TRY_ASSIGN(n, parse_decimal(value, INT64_MAX));
    s.started = static_cast<int64_t>(n);
  } // other keys: written by a later version, ignored
  return {};
}

} // namespace

std::string format_run_state(const RunState& s) {
  std::string out = "pid=" + std::to_string(s.pid) + "\nstart=" + std::to_string(s.start_ticks) +
                    "\nboot=" + s.boot + "\ncontext=" + std::to_string(s.context) +
                    "\ncgroup=" + s.cgroup2 + "\nstarted=" + std::to_string(s.started) + "\n";
  for (const auto& c : s.cgroup1) out += "cgroup1=" + c + "\n";
  return out;
}

Result<RunState> parse_run_state(std::string_view text) {
  RunState s;
  while (!text.empty()) {
    size_t eol = text.find('\n');
    std::string_view line = text.substr(0, eol);
    text.remove_prefix(eol == std::string_view::npos ? text.size() : eol + 1);
    if (line.empty()) continue;
    size_t eq = line.find('=');
    if (eq == std::string_view::npos)
      return described_error(EINVAL, "state line without '=': " + std::string(line.substr(0, 80)));
    auto r = apply(s, line.substr(0, eq), line.substr(eq + 1));
    if (!r.ok())
      return described_error(EINVAL, "state " + std::string(line.substr(0, eq)) + ": " +
                                         r.error().message());
  }
  if (s.pid <= 0 || s.start_ticks == 0 || s.cgroup2.empty())
    return described_error(EINVAL, "state without pid, start or cgroup");
  return s;
}

Liveness liveness(const RunState& s) {
  if (s.boot != boot_id()) return Liveness::stale;
  auto ticks = process_start_ticks(s.pid);
  return ticks.ok() && *ticks == s.start_ticks ? Liveness::running : Liveness::stale;
}

std::string run_directory() {
  const char* env = std::getenv("VSERVER_RUNDIR");
  return env && *env == '/' ? std::string(env) : std::string("/run/vservers");
}

Result<GuestRunDir> GuestRunDir::open(const std::string& name) {
  if (!is_plain_name(name) || name[0] == '.')
    return described_error(EINVAL, "'" + name + "' is not a guest name");
  const std::string base = run_directory();
  if (::mkdir(base.c_str(), 0755) != 0 && errno != EEXIST)
    return make_error(errno, "mkdir " + base);
  GuestRunDir d;
  d.m_path = base + "/" + name;
  if (::mkdir(d.m_path.c_str(), 0700) != 0 && errno != EEXIST)
    return make_error(errno, "mkdir " + d.m_path);
  int fd = ::open(d.m_path.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return make_error(errno, "open " + d.m_path);
  d.m_fd = UniqueFd(fd);
  return d;
}

Result<UniqueFd> GuestRunDir::lock(LockWait wait) const {
  int fd = ::openat(m_fd.get(), "lock", O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) return make_error(errno, "open " + m_path + "/lock");
  UniqueFd f(fd);
  int op = LOCK_EX | (wait == LockWait::yes ? 0 : LOCK_NB);
  while (::flock(fd, op) != 0) {
    if (errno == EINTR) continue;
    return make_error(errno, "lock " + m_path + "/lock");
  }
  return f;
}

Result<std::optional<RunState>> GuestRunDir::read() const {
  int fd = ::openat(m_fd.get(), "state", O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return std::optional<RunState>{};
    return make_error(errno, "open " + m_path + "/state");
  }
  UniqueFd f(fd);
  VU_TRY_ASSIGN(text, read_to_end(fd, k_max_state_bytes, m_path + "/state"));
  auto s = parse_run_state(text);
  if (!s.ok()) return described_error(EINVAL, m_path + "/state: " + s.error().message());
  return std::optional<RunState>(std::move(*s));
}

Status GuestRunDir::write(const RunState& s) const {
  return write_file_atomic_at(m_fd.get(), "state", format_run_state(s), 0600);
}

Status GuestRunDir::clear() const {
  if (::unlinkat(m_fd.get(), "state", 0) != 0 && errno != ENOENT)
    return make_error(errno, "remove " + m_path + "/state");
  return {};
}

std::vector<std::pair<std::string, RunState>> running_guests() {
  std::vector<std::pair<std::string, RunState>> out;
  auto dir = open_directory(run_directory());
  if (!dir.ok()) return out;
  auto entries = read_directory(dir->get());
  if (!entries.ok()) return out;
  for (const auto& e : *entries) {
    if (e.name.empty() || e.name[0] == '.') continue;
    auto d = GuestRunDir::open(e.name);
    if (!d.ok()) continue;
    auto s = d->read();
    if (s.ok() && *s) out.emplace_back(e.name, std::move(**s));
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  return out;
}

} // namespace vu
