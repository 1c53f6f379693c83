// vattr-bpf: loads, unloads and reports the BPF LSM program of the bpf
// attribute back end (kernel/bpf/vunify_lsm.bpf.c, built into this program
// as a libbpf skeleton).
//
// load attaches every hook and pins the links and maps into a fresh
// directory beside the pin directory (<dir>-new), then renames it into place: other
// programs see all of it or nothing, and a load killed half-way leaves a
// directory the next load removes. The links stay attached while pinned,
// after this program exits; unload removes the pins (the links detach).
#include "tools/vattr-bpf/vattr-bpf.h"

#include "core/guest_cgroup.h"
#include "kernel/bpf_lsm.h"
#include "tools/common/cli.h"
#include "tools/common/json_out.h"
#include "version.h"
#include "vunify_lsm.skel.h"

#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <nlohmann/json.hpp>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstdarg>
#include <cstring>
#include <fstream>
#include <iostream>

namespace vu {

namespace {

bool g_verbose = false;
std::string g_last_libbpf_line;

int libbpf_message(enum libbpf_print_level level, const char* format, va_list args) {
  char line[1024];
  std::vsnprintf(line, sizeof(line), format, args);
  if (level != LIBBPF_DEBUG && line[0]) g_last_libbpf_line = line;
  if (g_verbose) std::fputs(line, stderr);
  return 0;
}

std::string parent_of_dir(const std::string& dir) {
  auto slash = dir.find_last_of('/');
  return slash == std::string::npos || slash == 0 ? std::string("/") : dir.substr(0, slash);
}

// The pin directory's parent must be a BPF file system; /sys/fs/bpf is
// mounted when it is not one yet.
Status ensure_bpffs(const std::string& dir) {
  const std::string parent = parent_of_dir(dir);
  struct statfs fs {};
  if (::statfs(parent.c_str(), &fs) == 0 && fs.f_type == BPF_FS_MAGIC) return {};
  if (parent != "/sys/fs/bpf")
    return described_error(EINVAL,
                           parent + " is not a BPF file system (mount -t bpf bpf " + parent + ")");
  if (::mount("bpf", parent.c_str(), "bpf", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=0700") != 0)
    return errno_error("mount the BPF file system on " + parent);
  return {};
}

// Removes a pin directory and what is pinned in it.
Status remove_pins(const std::string& dir) {
  for (const auto& name : k_bpf_lsm_hooks) ::unlink((dir + "/" + name).c_str());
  for (const auto& name : k_bpf_lsm_newer_hooks) ::unlink((dir + "/" + name).c_str());
  ::unlink((dir + "/" + k_bpf_lsm_barrier_hook).c_str());
  for (const char* map : {"config", "refusals"}) ::unlink((dir + "/" + map).c_str());
  if (::rmdir(dir.c_str()) != 0 && errno != ENOENT) return errno_error("remove " + dir);
  return {};
}

std::string read_first_line(const char* path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  return line;
}

// Why the kernel refused the program, as far as it says (securityfs is
// mounted where systemd has not).
std::string refusal_reason() {
  if (::access("/sys/kernel/security/lsm", F_OK) != 0)
    (void)::mount("securityfs", "/sys/kernel/security", "securityfs",
                  MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr);
  const std::string lsms = read_first_line("/sys/kernel/security/lsm");
  const std::string lockdown = read_first_line("/sys/kernel/security/lockdown");
  if (lockdown.find("[integrity]") != std::string::npos ||
      lockdown.find("[confidentiality]") != std::string::npos)
    return "the kernel is locked down (" + lockdown + ") and refuses BPF LSM programs";
  if (!lsms.empty() && (',' + lsms + ',').find(",bpf,") == std::string::npos)
    return "the kernel's active LSMs (" + lsms + ") lack bpf: boot with lsm=" + lsms + ",bpf";
  std::string last = g_last_libbpf_line;
  while (!last.empty() && last.back() == '\n') last.pop_back();
  return last.empty() ? "vattr-bpf -v load shows the kernel's log"
                      : last + " (vattr-bpf -v load shows more)";
}

struct Skeleton {
  vunify_lsm* skel = vunify_lsm__open();
  ~Skeleton() { vunify_lsm__destroy(skel); }
};

// The name of the type that parameter `index` of LSM hook `hook` points
// to in the running kernel; empty when the kernel lacks the hook.
std::string hook_param_type(const btf* vmlinux, const std::string& hook, unsigned index) {
  int id = btf__find_by_name_kind(vmlinux, ("bpf_lsm_" + hook).c_str(), BTF_KIND_FUNC);
  if (id < 0) return {};
  const btf_type* proto = btf__type_by_id(vmlinux, btf__type_by_id(vmlinux, id)->type);
  if (!proto || !btf_is_func_proto(proto) || btf_vlen(proto) <= index) return {};
  const btf_type* t = btf__type_by_id(vmlinux, btf_params(proto)[index].type);
  while (t && (btf_is_ptr(t) || btf_is_mod(t) || btf_is_typedef(t)))
    t = btf__type_by_id(vmlinux, t->type);
  return t ? btf__name_by_offset(vmlinux, t->name_off) : "";
}

// Chooses, from the kernel's BTF, the variant of each hook whose
// arguments match, and loads the hooks of newer kernels where they exist.
Status choose_variants(vunify_lsm* skel, bool barrier) {
  btf* vmlinux = btf__load_vmlinux_btf();
  if (!vmlinux) return described_error(ENOENT, "the kernel has no BTF (/sys/kernel/btf/vmlinux)");
  const bool plain_setattr = hook_param_type(vmlinux, "inode_setattr", 0) == "dentry";
  const bool xattr_dentry = hook_param_type(vmlinux, "inode_setxattr", 1) == "dentry";
  bpf_program__set_autoload(skel->progs.vu_inode_setattr, plain_setattr);
  bpf_program__set_autoload(skel->progs.vu_inode_setattr_idmap, !plain_setattr);
  const std::pair<bpf_program*, const char*> newer[] = {
      {skel->progs.vu_inode_set_acl, "inode_set_acl"},
      {skel->progs.vu_inode_remove_acl, "inode_remove_acl"},
      {skel->progs.vu_file_truncate, "file_truncate"},
      {skel->progs.vu_file_ioctl_compat, "file_ioctl_compat"}};
  for (auto [prog, hook] : newer)
    bpf_program__set_autoload(prog, !hook_param_type(vmlinux, hook, 0).empty());
  bpf_program__set_autoload(skel->progs.vu_inode_permission, barrier);
  btf__free(vmlinux);
  if (!xattr_dentry)
    return described_error(ENOTSUP, "this kernel's LSM hooks are older than Linux 5.12's");
  return {};
}

// Loads, attaches and pins everything into `fresh`.
Status load_into(const std::string& fresh, bool barrier) {
  Skeleton s;
  if (!s.skel) return described_error(ENOMEM, "cannot open the BPF program");
  VU_TRY(choose_variants(s.skel, barrier));
  if (vunify_lsm__load(s.skel) != 0 || vunify_lsm__attach(s.skel) != 0)
    return described_error(EPERM, "the kernel refused the BPF LSM program: " + refusal_reason());
  if (::mkdir(fresh.c_str(), 0700) != 0) return errno_error("mkdir " + fresh);
  auto& l = s.skel->links;
  // Pinned under the names bpf_lsm.h lists, whichever variant ran.
  const std::pair<const char*, bpf_link*> pins[] = {
      {"vu_file_open", l.vu_file_open},
      {"vu_path_truncate", l.vu_path_truncate},
      {"vu_inode_setattr", l.vu_inode_setattr ? l.vu_inode_setattr : l.vu_inode_setattr_idmap},
      {"vu_inode_setxattr", l.vu_inode_setxattr},
      {"vu_inode_removexattr", l.vu_inode_removexattr},
      {"vu_file_ioctl", l.vu_file_ioctl},
      {"vu_inode_permission", l.vu_inode_permission},
      {"vu_inode_set_acl", l.vu_inode_set_acl},
      {"vu_inode_remove_acl", l.vu_inode_remove_acl},
      {"vu_file_truncate", l.vu_file_truncate},
      {"vu_file_ioctl_compat", l.vu_file_ioctl_compat}};
  for (auto [name, link] : pins) {
    if (!link) continue; // a hook of newer kernels, or no barrier
    const std::string path = fresh + "/" + name;
    if (bpf_link__pin(link, path.c_str()) != 0) return errno_error("pin " + path);
  }
  if (bpf_map__pin(s.skel->maps.config, (fresh + "/config").c_str()) != 0 ||
      bpf_map__pin(s.skel->maps.refusals, (fresh + "/refusals").c_str()) != 0)
    return errno_error("pin the maps in " + fresh);
  return {};
}

Status name_guests_cgroup() {
  VU_TRY_ASSIGN(parent, guests_parent_cgroup());
  return bpf_lsm_set_guests_cgroup(parent.fd());
}

int fail(const std::string& what) {
  print_error("vattr-bpf", what);
  return exit_status(ExitCode::partial);
}

int load(bool quiet, bool barrier) {
  const std::string dir = bpf_lsm_pin_dir();
  if (auto state = bpf_lsm_state(); state.loaded && state.barrier == barrier) {
    if (auto r = name_guests_cgroup(); !r.ok()) return fail(r.error().message());
    if (!quiet) std::cout << "vattr-bpf: already loaded (" << dir << ")\n";
    return exit_status(ExitCode::ok);
  }
  if (auto r = ensure_bpffs(dir); !r.ok()) return fail(r.error().message());
  // Not "vunify.new": a BPF file system refuses names with a dot (EPERM).
  const std::string fresh = dir + "-new";
  (void)remove_pins(fresh); // what a killed load left
  auto r = load_into(fresh, barrier);
  if (!r.ok()) {
    (void)remove_pins(fresh);
    return fail(r.error().message());
  }
  (void)remove_pins(dir); // the other barrier choice, or a broken set
  if (::rename(fresh.c_str(), dir.c_str()) != 0) {
    int err = errno;
    (void)remove_pins(fresh);
    return fail("rename " + fresh + " to " + dir + ": " + std::strerror(err));
  }
  if (auto n = name_guests_cgroup(); !n.ok()) return fail(n.error().message());
  if (!quiet)
    std::cout << "vattr-bpf: loaded; marks are enforced" << (barrier ? "" : " (not the barrier)")
              << " (" << dir << ")\n";
  return exit_status(ExitCode::ok);
}

int unload(bool quiet) {
  const std::string dir = bpf_lsm_pin_dir();
  if (auto r = remove_pins(dir); !r.ok()) return fail(r.error().message());
  if (!quiet) std::cout << "vattr-bpf: unloaded; marks stay on the files, not enforced\n";
  return exit_status(ExitCode::ok);
}

int status(bool json) {
  BpfLsmState s = bpf_lsm_state();
  if (json) {
    nlohmann::json j{{"loaded", s.loaded},
                     {"barrier", s.barrier},
                     {"pin_dir", bpf_lsm_pin_dir()},
                     {"guests_cgroup_id", s.guests_cgroup},
                     {"guests_cgroup_level", s.guests_level}};
    if (!s.loaded) j["why_not"] = s.why_not;
    nlohmann::json counts = nlohmann::json::object();
    for (size_t i = 0; i < s.refusals.size(); ++i) counts[k_bpf_lsm_refusals[i]] = s.refusals[i];
    j["refusals"] = counts;
    std::cout << with_run_info(j, "vattr-bpf").dump(2) << "\n";
  } else if (!s.loaded) {
    std::cout << "not loaded: " << s.why_not << "\n";
  } else {
    std::cout << "loaded (" << bpf_lsm_pin_dir() << "), barrier "
              << (s.barrier ? "enforced" : "not enforced (--no-barrier)") << "; guests' cgroup id "
              << s.guests_cgroup << " at level " << s.guests_level << "\nrefused:";
    for (size_t i = 0; i < s.refusals.size(); ++i)
      std::cout << " " << k_bpf_lsm_refusals[i] << "=" << s.refusals[i];
    std::cout << "\n";
  }
  return exit_status(s.loaded ? ExitCode::ok : ExitCode::partial);
}

int run(int argc, char** argv) {
  CLI::App app{"vattr-bpf: the BPF LSM program behind the bpf attribute back end (iunlink and "
               "barrier on mainline Linux)",
               "vattr-bpf"};
  app.set_version_flag("--version", std::string("vattr-bpf ") + k_version);
  app.require_subcommand(1);
  bool quiet = false, json = false, no_barrier = false;
  app.add_flag("-v,--verbose", g_verbose, "show libbpf's messages (the verifier's log)");
  app.add_flag("-q,--quiet", quiet, "print nothing on success");
  auto* load_cmd = app.add_subcommand("load", "load and attach the program, pin it (idempotent)");
  load_cmd->add_flag("--no-barrier", no_barrier,
                     "leave the barrier's hook out: every path lookup costs less; barriers are "
                     "then mode 000 alone");
  auto* unload_cmd = app.add_subcommand("unload", "remove the pins: marks are no longer enforced");
  auto* status_cmd = app.add_subcommand("status", "whether it is loaded, and what it refused");
  status_cmd->add_flag("--json", json, "one JSON object");
  add_help_footer(
      app, "0 done (status: loaded); 1 failed (status: not loaded); 2 usage error",
      {"vattr-bpf load        # what vattr-bpf.service does at boot", "vattr-bpf status --json"});
  if (auto done = parse_command_line(app, argc, argv)) return *done;
  libbpf_set_print(libbpf_message);
  if (::geteuid() != 0 && !status_cmd->parsed())
    return fail("must run as root (loading BPF LSM programs needs CAP_BPF and CAP_SYS_ADMIN)");
  if (load_cmd->parsed()) return load(quiet, !no_barrier);
  if (unload_cmd->parsed()) return unload(quiet);
  return status(json);
}

} // namespace

int run_vattr_bpf(int argc, char** argv) {
  return run_program("vattr-bpf", run, argc, argv);
}

} // namespace vu
