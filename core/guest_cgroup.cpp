// A guest's control groups (see guest_cgroup.h).
#include "core/guest_cgroup.h"

#include "core/run_state.h"
#include "kernel/bpf_lsm.h"
#include "kernel/fs.h"

#include <algorithm>
#include <cstdlib>
#include <set>

namespace vu {

namespace {

std::string parent_name() {
  const char* env = std::getenv("VSERVER_CGROUP");
  std::string p = env && *env ? env : "vservers";
  return is_plain_name(p) ? p : std::string("vservers");
}

// The group every guest's group is in, below the cgroup2 mount `cgroup2`.
Result<Cgroup> open_guests_parent(const std::string& cgroup2) {
  return Cgroup::open(cgroup2 + "/" + parent_name(), true);
}

std::string controller_of(const std::string& knob) {
  return knob.substr(0, knob.find('.'));
}

// Controllers enabled for the children of `group` (cgroup.subtree_control
// of its parent chain is what makes the files appear).
std::set<std::string> v2_controllers(const Cgroup& group) {
  std::set<std::string> out;
  auto text = group.read("cgroup.controllers");
  if (!text.ok()) return out;
  size_t at = 0;
  while (at < text->size()) {
    size_t sp = text->find_first_of(" \n", at);
    if (sp == std::string::npos) sp = text->size();
    if (sp > at) out.insert(text->substr(at, sp - at));
    at = sp + 1;
  }
  return out;
}

Status write_v1_limit(GuestCgroups& g, const std::string& knob, const std::string& value,
                      const std::string& name) {
  const std::string controller = controller_of(knob);
  const std::string mount = cgroup1_mount(controller);
  if (mount.empty())
    return described_error(ENOTSUP, "cgroup/" + knob + ": no " + controller +
                                        " controller on this host (neither cgroup2 nor v1)");
  const std::string dir = mount + "/" + parent_name() + "/" + name;
  Cgroup* group = nullptr;
  for (auto& c : g.v1)
    if (c.path() == dir) group = &c;
  if (!group) {
    VU_TRY_ASSIGN(parent, Cgroup::open(mount + "/" + parent_name(), true));
    (void)parent;
    VU_TRY_ASSIGN(c, Cgroup::open(dir, true));
    g.v1.push_back(std::move(c));
    group = &g.v1.back();
  }
  return group->write(knob, value);
}

} // namespace

std::pair<std::string, std::string> cgroup2_knob(const std::string& knob,
                                                 const std::string& value) {
  if (knob == "memory.limit_in_bytes") return {"memory.max", value == "-1" ? "max" : value};
  if (knob == "memory.soft_limit_in_bytes") return {"memory.low", value == "-1" ? "0" : value};
  if (knob == "memory.memsw.limit_in_bytes")
    return {"memory.swap.max", value == "-1" ? "max" : value};
  if (knob == "pids.max") return {"pids.max", value};
  if (knob == "cpu.shares") {
    // v1 shares 2..262144 (default 1024) onto v2 weights 1..10000 (100).
    long shares = std::strtol(value.c_str(), nullptr, 10);
    long weight = 1 + ((std::max(2L, std::min(shares, 262144L)) - 2) * 9999) / 262142;
    return {"cpu.weight", std::to_string(weight)};
  }
  if (knob.rfind("memory.", 0) == 0 || knob.rfind("cpu.", 0) == 0 || knob.rfind("io.", 0) == 0 ||
      knob.rfind("pids.", 0) == 0)
    return {knob, value}; // already a cgroup2 name (memory.high, cpu.max, ...)
  return {};
}

Result<Cgroup> guests_parent_cgroup() {
  VU_TRY_ASSIGN(root_path, cgroup2_root(run_directory() + "/.cgroup2"));
  return open_guests_parent(root_path);
}

Result<GuestCgroups> make_guest_cgroups(const VServerConfig& config) {
  VU_TRY_ASSIGN(root_path, cgroup2_root(run_directory() + "/.cgroup2"));
  VU_TRY_ASSIGN(root, Cgroup::open(root_path, false));
  VU_TRY_ASSIGN(parent, open_guests_parent(root_path));
  // The bpf back end's barrier holds for the processes under the parent:
  // named again on every start (the group may have been made anew).
  if (bpf_lsm_loaded())
    if (auto r = bpf_lsm_set_guests_cgroup(parent.fd()); !r.ok())
      return described_error(r.code(), "the BPF LSM program cannot be told the guests' cgroup " +
                                           parent.path() + ": " + r.error().message());
  // Controllers cgroup2 has (none on a host whose controllers are all in
  // v1 hierarchies) are handed down to the guests' groups.
  std::set<std::string> wanted;
  for (const auto& [knob, value] : config.cgroup) wanted.insert(controller_of(knob));
  const auto available = v2_controllers(root);
  for (const auto& c : wanted)
    if (available.count(c)) {
      (void)root.write("cgroup.subtree_control", "+" + c);
      (void)parent.write("cgroup.subtree_control", "+" + c);
    }
  VU_TRY_ASSIGN(group, Cgroup::open(parent.path() + "/" + config.guest.name, true));
  if (group.populated())
    return described_error(EBUSY, "cgroup " + group.path() +
                                      " still has processes: the guest runs, or a crashed run "
                                      "left them; 'vserver " +
                                      config.guest.name + " stop' ends them");
  GuestCgroups g{std::move(group), {}, {}};
  const auto in_v2 = v2_controllers(g.v2);
  for (const auto& [knob, value] : config.cgroup) {
    auto [v2knob, v2value] = cgroup2_knob(knob, value);
    if (!v2knob.empty() && in_v2.count(controller_of(v2knob))) {
      VU_TRY(g.v2.write(v2knob, v2value));
      continue;
    }
    auto w = write_v1_limit(g, knob, value, config.guest.name);
    if (!w.ok()) return w.error();
  }
  return g;
}

Result<GuestCgroups> open_guest_cgroups(const std::string& v2, const std::vector<std::string>& v1) {
  VU_TRY_ASSIGN(group, Cgroup::open(v2, false));
  GuestCgroups g{std::move(group), {}, {}};
  for (const auto& p : v1) {
    auto c = Cgroup::open(p, false);
    if (c.ok()) g.v1.push_back(std::move(*c));
  }
  return g;
}

Status join_guest_cgroups(const GuestCgroups& g, pid_t pid) {
  VU_TRY(g.v2.add(pid));
  for (const auto& c : g.v1) VU_TRY(c.add(pid));
  return {};
}

Status remove_guest_cgroups(const GuestCgroups& g) {
  VU_TRY(g.v2.kill_all(5000));
  Status first;
  for (const auto& c : g.v1) {
    auto r = c.kill_all(5000);
    if (r.ok()) r = c.remove();
    if (!r.ok() && first.ok()) first = r;
  }
  auto r = g.v2.remove();
  if (!r.ok()) return r;
  return first;
}

} // namespace vu
