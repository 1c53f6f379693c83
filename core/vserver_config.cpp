// A guest's run configuration (see vserver_config.h for the layout).
#include "core/vserver_config.h"

#include "kernel/fs.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <linux/capability.h>

#include <algorithm>
#include <cctype>
#include <set>

namespace vu {

namespace {

// Top-level entries of a configuration directory: applied, or known from
// util-vserver and reported as not applied on mainline Linux.
const std::set<std::string>& applied_entries() {
  static const std::set<std::string> s{
      "vdir",          "context", "name",  "uts",      "interfaces",    "apps",
      "bcapabilities", "cgroup",  "shell", "hostname", "domainname",    "run",
      "run.rev",       "cache",   "noisy", "mark",     "ccapabilities", "flags"};
  return s;
}

const std::set<std::string>& reported_entries() {
  static const std::set<std::string> s{"capabilities",
                                       "nflags",
                                       "ncapabilities",
                                       "ncontext",
                                       "spaces",
                                       "tag",
                                       "namespace",
                                       "nonamespace",
                                       "namespace-cleanup",
                                       "namespace-cleanup-skip",
                                       "schedule",
                                       "sched",
                                       "personality",
                                       "fstab",
                                       "fstab.local",
                                       "fstab.remote",
                                       "rlimits",
                                       "dlimits",
                                       "cpuset",
                                       "ionice",
                                       "nice",
                                       "scripts",
                                       "badness",
                                       "ulimits"};
  return s;
}

const std::set<std::string>& init_entries() {
  static const std::set<std::string> s{
      "style",       "runlevel",    "runlevel.start", "runlevel.stop", "cmd.start",
      "cmd.stop",    "cmd.prepare", "cmd.start-sync", "cmd.stop-sync", "killseq",
      "environment", "mark",        "sync",           "tty",           "depends"};
  return s;
}

// Reads configuration files of one guest, each at most k_max_config_bytes.
class Reader {
public:
  explicit Reader(std::string dir) : m_dir(std::move(dir)) {}

  Result<std::optional<std::string>> value(const std::string& rel) const {
    return read_config_value(m_dir + "/" + rel);
  }
  Result<std::vector<std::string>> lines(const std::string& rel) const {
    auto text = read_host_file(m_dir + "/" + rel, k_max_config_bytes);
    if (!text.ok()) {
      if (text.code() == ENOENT) return std::vector<std::string>{};
      return text.error();
    }
    return parse_config_lines(*text);
  }
  // Names in a subdirectory, sorted; empty when it does not exist.
  std::vector<std::string> entries(const std::string& rel) const {
    std::vector<std::string> out;
    auto dir = open_directory(rel.empty() ? m_dir : m_dir + "/" + rel);
    if (!dir.ok()) return out;
    auto list = read_directory(dir->get());
    if (!list.ok()) return out;
    for (const auto& e : *list) out.push_back(e.name);
    std::sort(out.begin(), out.end());
    return out;
  }
  std::string path(const std::string& rel) const { return m_dir + "/" + rel; }

private:
  std::string m_dir;
};

Error bad(const Reader& r, const std::string& rel, const std::string& what) {
  return described_error(EINVAL, r.path(rel) + ": " + what);
}

Result<unsigned> parse_unsigned(const std::string& s, unsigned max) {
  VU_TRY_ASSIGN(v, parse_decimal(s, max));
  return static_cast<unsigned>(v);
}

bool valid_hostname(const std::string& s) {
  if (s.empty() || s.size() > 64) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.' || c == '_';
  });
}

Status load_uts(const Reader& r, VServerConfig& c) {
  struct Name {
    const char* rel;
    const char* legacy;
    std::string* out;
  };
  for (const Name& n : {Name{"uts/nodename", "hostname", &c.nodename},
                        Name{"uts/domainname", "domainname", &c.domainname}}) {
    VU_TRY_ASSIGN(v, r.value(n.rel));
    if (!v) {
      VU_TRY_ASSIGN(old, r.value(n.legacy));
      v = old;
    }
    if (!v || v->empty()) continue;
    if (!valid_hostname(*v)) return bad(r, n.rel, "'" + *v + "' is not a host name");
    *n.out = *v;
  }
  if (c.nodename.empty()) c.nodename = c.guest.name;
  return {};
}

// A dotted IPv4 mask as a prefix length.
Result<int> mask_prefix(const std::string& mask) {
  in_addr a{};
  if (::inet_pton(AF_INET, mask.c_str(), &a) != 1)
    return described_error(EINVAL, "'" + mask + "' is not a mask");
  uint32_t m = ntohl(a.s_addr);
  int n = __builtin_popcount(m);
  if (n != 32 && (m << n) != 0) return described_error(EINVAL, "'" + mask + "' is not a mask");
  return n;
}

Result<InterfaceConfig> load_interface(const Reader& r, const std::string& id, size_t index) {
  InterfaceConfig i;
  i.id = id;
  const std::string d = "interfaces/" + id + "/";
  auto own_or_default = [&](const std::string& key) -> Result<std::optional<std::string>> {
    VU_TRY_ASSIGN(v, r.value(d + key));
    if (v) return v;
    return r.value("interfaces/" + key);
  };
  VU_TRY_ASSIGN(ip, r.value(d + "ip"));
  if (!ip || ip->empty()) return bad(r, d + "ip", "missing: every interface needs an address");
  i.ip = *ip;
  unsigned char buf[16];
  const bool v6 = ::inet_pton(AF_INET6, i.ip.c_str(), buf) == 1;
  if (!v6 && ::inet_pton(AF_INET, i.ip.c_str(), buf) != 1)
    return bad(r, d + "ip", "'" + i.ip + "' is not an IPv4 or IPv6 address");
  VU_TRY_ASSIGN(prefix, own_or_default("prefix"));
  VU_TRY_ASSIGN(mask, own_or_default("mask"));
  if (prefix && !prefix->empty()) {
    auto p = parse_unsigned(*prefix, v6 ? 128 : 32);
    if (!p.ok()) return bad(r, d + "prefix", p.error().message());
    i.prefix = static_cast<int>(*p);
  } else if (mask && !mask->empty()) {
    auto p = mask_prefix(*mask);
    if (!p.ok()) return bad(r, d + "mask", p.error().message());
    i.prefix = *p;
  } else {
    i.prefix = v6 ? 128 : 32;
  }
  VU_TRY_ASSIGN(dev, own_or_default("dev"));
  if (dev) i.dev = *dev;
  VU_TRY_ASSIGN(name, r.value(d + "name"));
  i.name = name && !name->empty() ? *name : "eth" + std::to_string(index);
  for (const auto& n : {i.dev, i.name})
    if (!n.empty() && (n.size() > 15 || !is_plain_name(n) || !valid_hostname(n)))
      return bad(r, d, "'" + n + "' is not a network device name");
  i.nodev = path_exists(r.path(d + "nodev"));
  i.down = path_exists(r.path(d + "down"));
  return i;
}

Status load_interfaces(const Reader& r, VServerConfig& c) {
  size_t index = 0;
  for (const auto& id : r.entries("interfaces")) {
    if (id.empty() || id[0] == '.') continue;
    auto dir = open_directory(r.path("interfaces/" + id));
    if (!dir.ok()) continue; // a default value (dev, prefix, mask) of interfaces/
    VU_TRY_ASSIGN(i, load_interface(r, id, index++));
    c.interfaces.push_back(std::move(i));
  }
  return {};
}

Result<std::vector<std::string>> environment_lines(const Reader& r) {
  VU_TRY_ASSIGN(env, r.lines("apps/init/environment"));
  for (const auto& e : env) {
    auto eq = e.find('=');
    if (eq == 0 || eq == std::string::npos ||
        !std::all_of(e.begin(), e.begin() + static_cast<long>(eq), [](char ch) {
          return std::isalnum(static_cast<unsigned char>(ch)) || ch == '_';
        }))
      return bad(r, "apps/init/environment", "'" + e + "' is not VAR=value");
  }
  return env;
}

Status load_init(const Reader& r, VServerConfig& c) {
  VU_TRY_ASSIGN(style, r.value("apps/init/style"));
  VU_TRY_ASSIGN(start, r.lines("apps/init/cmd.start"));
  const std::string s = style ? *style : "";
  if (s.empty() || s == "sysv")
    c.style = InitStyle::sysv;
  else if (s == "plain")
    c.style = InitStyle::plain;
  else if (s == "none" || s == "cmd")
    c.style = InitStyle::commands;
  else
    return bad(r, "apps/init/style",
               "'" + s + "' is not an init style of this suite (sysv, plain, none with cmd.start)");
  if (c.style == InitStyle::commands && start.empty())
    return bad(r, "apps/init/cmd.start", "missing: init style 'none' runs cmd.start");
  c.cmd_start = std::move(start);
  VU_TRY_ASSIGN(stop, r.lines("apps/init/cmd.stop"));
  c.cmd_stop = std::move(stop);
  VU_TRY_ASSIGN(prepare, r.lines("apps/init/cmd.prepare"));
  c.cmd_prepare = std::move(prepare);
  VU_TRY_ASSIGN(level, r.value("apps/init/runlevel"));
  VU_TRY_ASSIGN(level_start, r.value("apps/init/runlevel.start"));
  VU_TRY_ASSIGN(level_stop, r.value("apps/init/runlevel.stop"));
  c.runlevel_start = level_start ? *level_start : level ? *level : "";
  c.runlevel_stop = level_stop ? *level_stop : "";
  if (c.style == InitStyle::sysv) {
    if (c.runlevel_start.empty()) c.runlevel_start = "3";
    if (c.runlevel_stop.empty()) c.runlevel_stop = "6";
  }
  for (const auto& lvl : {c.runlevel_start, c.runlevel_stop})
    if (!lvl.empty() && !valid_hostname(lvl))
      return bad(r, "apps/init/runlevel", "'" + lvl + "' is not a runlevel");
  VU_TRY_ASSIGN(env, environment_lines(r));
  c.environment = std::move(env);
  VU_TRY_ASSIGN(killseq, r.lines("apps/init/killseq"));
  if (!killseq.empty()) {
    c.killseq.clear();
    for (const auto& k : killseq) {
      auto v = parse_unsigned(k, 3600);
      if (!v.ok()) return bad(r, "apps/init/killseq", v.error().message());
      c.killseq.push_back(static_cast<int>(*v));
    }
  }
  VU_TRY_ASSIGN(mark, r.value("apps/init/mark"));
  c.mark = mark ? *mark : "";
  VU_TRY_ASSIGN(depends, r.lines("apps/init/depends"));
  for (const auto& d : depends)
    if (d.empty() || d.find('/') != std::string::npos || d[0] == '.')
      return bad(r, "apps/init/depends", "'" + d + "' is not a guest name");
  c.depends = std::move(depends);
  for (const auto& e : r.entries("apps/init"))
    if (!init_entries().count(e))
      c.notices.push_back(r.path("apps/init/" + e) + ": unknown setting, ignored");
  return {};
}

Status load_capabilities(const Reader& r, VServerConfig& c) {
  VU_TRY_ASSIGN(lines, r.lines("bcapabilities"));
  auto caps = apply_bcapabilities(default_guest_capabilities(), lines);
  if (!caps.ok()) return bad(r, "bcapabilities", caps.error().message());
  const CapMask refused = *caps & forbidden_guest_capabilities();
  if (refused)
    c.notices.push_back(r.path("bcapabilities") + ": " + capability_list(refused) +
                        " would let a guest reach the host; not kept");
  c.capabilities = *caps & ~forbidden_guest_capabilities() & all_capabilities();
  return {};
}

// A ccapabilities/flags line as a name: upper case, and only [A-Z0-9_]
// (a guest's configuration is not trusted to be printable).
std::string flag_name(std::string name) {
  for (auto& ch : name) {
    ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
    if (!std::isalnum(static_cast<unsigned char>(ch)) && ch != '_') return "(an unreadable name)";
  }
  return name;
}

// The names of a ccapabilities or flags file, each with whether it is
// taken away ('~' or '!' before it).
struct FlagLine {
  std::string name;
  bool removed = false;
};

Result<std::vector<FlagLine>> flag_lines(const Reader& r, const std::string& file) {
  VU_TRY_ASSIGN(lines, r.lines(file));
  std::vector<FlagLine> out;
  for (std::string name : lines) {
    if (name.empty()) continue;
    bool removed = name[0] == '~' || name[0] == '!';
    if (removed) name.erase(0, 1);
    out.push_back({flag_name(name), removed});
  }
  return out;
}

// One notice naming what `file` asks for and mainline cannot give: at most
// ten names, then how many more.
void notice_not_applied(const Reader& r, VServerConfig& c, const std::string& file,
                        const std::vector<std::string>& names, const std::string& tail) {
  if (names.empty()) return;
  std::string list;
  for (size_t i = 0; i < names.size() && i < 10; ++i) list += (i ? ", " : "") + names[i];
  if (names.size() > 10) list += " and " + std::to_string(names.size() - 10) + " more";
  c.notices.push_back(r.path(file) + ": " + list + " not applied on mainline Linux" + tail);
}

// util-vserver's context capabilities: RAW_ICMP has a mainline counterpart
// (ping sockets for the guest's users, per network namespace); the others
// would need CAP_SYS_ADMIN or the Linux-VServer kernel, and are named in a
// notice. '~' or '!' before a name removes it (nothing to remove here).
Status load_ccapabilities(const Reader& r, VServerConfig& c) {
  VU_TRY_ASSIGN(lines, flag_lines(r, "ccapabilities"));
  std::vector<std::string> not_applied;
  for (const auto& l : lines) {
    if (l.name == "RAW_ICMP")
      c.raw_icmp = !l.removed;
    else if (!l.removed)
      not_applied.push_back(l.name);
  }
  notice_not_applied(r, c, "ccapabilities", not_applied, " (RAW_ICMP is)");
  return {};
}

// util-vserver's context flags. What the guest's namespaces already do is
// not worth a notice; the rest is named once.
Status load_flags(const Reader& r, VServerConfig& c) {
  static const std::set<std::string> given_by_namespaces{
      "HIDE_NETIF",   "HIDE_MOUNT", "INIT_PID",  "PRIVATE",    "NAMESPACE",
      "VIRT_UTSNAME", "STATE",      "SC_HELPER", "PERSISTENT", "HIDE_LOOPBACK"};
  VU_TRY_ASSIGN(lines, flag_lines(r, "flags"));
  std::vector<std::string> not_applied;
  for (const auto& l : lines) // clearing a flag sets nothing
    if (!l.removed && !given_by_namespaces.count(l.name)) not_applied.push_back(l.name);
  notice_not_applied(r, c, "flags", not_applied, "");
  return {};
}

Status load_cgroup(const Reader& r, VServerConfig& c) {
  for (const auto& knob : r.entries("cgroup")) {
    if (knob.empty() || knob[0] == '.') continue;
    const bool plain = std::all_of(knob.begin(), knob.end(), [](char ch) {
      return std::islower(static_cast<unsigned char>(ch)) ||
             std::isdigit(static_cast<unsigned char>(ch)) || ch == '.' || ch == '_';
    });
    if (!plain || knob.find('.') == std::string::npos)
      return bad(r, "cgroup/" + knob, "not a cgroup setting");
    VU_TRY_ASSIGN(v, r.value("cgroup/" + knob));
    if (!v || v->empty() || v->size() > 64 || v->find_first_of(" \t") != std::string::npos)
      return bad(r, "cgroup/" + knob, "one value expected");
    c.cgroup.emplace_back(knob, *v);
  }
  return {};
}

Status load_misc(const Reader& r, VServerConfig& c) {
  VU_TRY_ASSIGN(ctx, r.value("context"));
  if (ctx && !ctx->empty()) {
    auto n = parse_unsigned(*ctx, 4294967294u);
    if (!n.ok() || *n == 0) return bad(r, "context", "'" + *ctx + "' is not a context number");
    c.context = *n;
  }
  VU_TRY_ASSIGN(shell, r.value("shell"));
  if (shell && !shell->empty()) {
    size_t at = 0;
    while (at < shell->size()) {
      size_t sp = shell->find_first_of(" \t", at);
      if (sp == std::string::npos) sp = shell->size();
      if (sp > at) c.shell.push_back(shell->substr(at, sp - at));
      at = sp + 1;
    }
  }
  for (const auto& e : r.entries("")) {
    if (e.empty() || e[0] == '.' || applied_entries().count(e)) continue;
    if (reported_entries().count(e))
      c.notices.push_back(r.path(e) + ": util-vserver setting not applied on mainline Linux");
    else
      c.notices.push_back(r.path(e) + ": unknown setting, ignored");
  }
  return {};
}

// The guest's root must not be, hold or lie inside another guest's.
Status check_root_alone(const ConfigBase& base, const Guest& g) {
  auto all = base.all();
  if (!all.ok()) return {};
  std::vector<Guest> roots{g};
  for (auto& o : all->guests)
    if (o.confdir != g.confdir) roots.push_back(o);
  return check_guest_roots(roots);
}

} // namespace

CapMask default_guest_capabilities() {
  CapMask m = 0;
  for (int c :
       {CAP_CHOWN, CAP_DAC_OVERRIDE, CAP_FOWNER, CAP_FSETID, CAP_KILL, CAP_SETGID, CAP_SETUID,
        CAP_SETPCAP, CAP_NET_BIND_SERVICE, CAP_NET_BROADCAST, CAP_NET_RAW, CAP_IPC_LOCK,
        CAP_IPC_OWNER, CAP_SYS_CHROOT, CAP_SYS_NICE, CAP_LEASE, CAP_AUDIT_WRITE, CAP_SETFCAP})
    m |= cap_bit(c);
  return m;
}

CapMask forbidden_guest_capabilities() {
  CapMask m = 0;
  for (int c : {CAP_LINUX_IMMUTABLE,
                CAP_SYS_ADMIN,
                CAP_SYS_MODULE,
                CAP_SYS_RAWIO,
                CAP_SYS_TIME,
                CAP_SYS_BOOT,
                CAP_MKNOD,
                CAP_DAC_READ_SEARCH,
                CAP_MAC_ADMIN,
                CAP_MAC_OVERRIDE,
                CAP_BPF,
                CAP_PERFMON,
                CAP_SYSLOG,
                CAP_SYS_PACCT,
                CAP_AUDIT_CONTROL,
                CAP_AUDIT_READ,
                CAP_CHECKPOINT_RESTORE,
                CAP_WAKE_ALARM,
                CAP_BLOCK_SUSPEND,
                CAP_SYS_TTY_CONFIG,
                CAP_SYS_PTRACE})
    m |= cap_bit(c);
  return m;
}

Result<CapMask> apply_bcapabilities(CapMask caps, const std::vector<std::string>& lines) {
  for (const auto& line : lines) {
    const bool drop = line[0] == '!' || line[0] == '~';
    const std::string name = drop ? line.substr(1) : line;
    std::optional<int> cap;
    if (!name.empty() && name[0] == '^') {
      auto n = parse_unsigned(name.substr(1), 63);
      if (n.ok()) cap = static_cast<int>(*n);
    } else {
      cap = capability_by_name(name);
    }
    if (!cap) return described_error(EINVAL, "'" + line + "' is not a capability");
    if (drop)
      caps &= ~cap_bit(*cap);
    else
      caps |= cap_bit(*cap);
  }
  return caps;
}

Result<VServerConfig> load_vserver_config(const ConfigBase& base, const std::string& name) {
  if (!is_plain_name(name) || name[0] == '.')
    return described_error(EINVAL, "'" + name + "' is not a guest name");
  VServerConfig c;
  VU_TRY_ASSIGN(guest, base.resolve(name));
  if (guest.confdir.empty())
    return described_error(ENOENT, "no configuration for guest '" + name + "' in " + base.dir());
  c.guest = std::move(guest);
  VU_TRY(check_root_alone(base, c.guest));
  Reader r(c.guest.confdir);
  VU_TRY(load_misc(r, c));
  VU_TRY(load_uts(r, c));
  VU_TRY(load_interfaces(r, c));
  VU_TRY(load_init(r, c));
  VU_TRY(load_capabilities(r, c));
  VU_TRY(load_ccapabilities(r, c));
  VU_TRY(load_flags(r, c));
  VU_TRY(load_cgroup(r, c));
  return c;
}

} // namespace vu
