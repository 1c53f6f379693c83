// The attribute back end of a program (see attr_choice.h).
#include "tools/common/attr_choice.h"

#include "core/guest.h"
#include "kernel/bpf_lsm.h"
#include "tools/common/cli.h"

#include <algorithm>
#include <iostream>
#include <iterator>
#include <stdexcept>

namespace vu {

CLI::Option* add_attr_backend_option(CLI::App& app, std::string& choice) {
  std::vector<std::string> names(std::begin(k_attr_backend_names), std::end(k_attr_backend_names));
  return app
      .add_option("--attr-backend", choice,
                  "how attributes are kept: auto (default: Linux-VServer's kernel, else bpf when "
                  "vattr-bpf has loaded its program, else mainline), mainline, bpf, linux-vserver")
      ->check(CLI::IsMember(names));
}

namespace {

std::string config_file(const std::string& confdir) {
  return ConfigBase(confdir).dir() + "/.defaults/apps/vunify/attr-backend";
}

} // namespace

Result<std::string> configured_attr_backend(const std::string& confdir) {
  VU_TRY_ASSIGN(value, read_config_value(config_file(confdir)));
  return value.value_or("");
}

Status check_attr_backend_for_start(const std::string& confdir) {
  VU_TRY_ASSIGN(conf, configured_attr_backend(confdir));
  if (conf != "bpf") return {};
  auto state = bpf_lsm_state();
  if (state.loaded) return {};
  return described_error(EPERM, "this host is configured for the bpf attribute back end (" +
                                    config_file(confdir) + "), but " + state.why_not +
                                    "; guests start only while it protects their shared files");
}

std::unique_ptr<AttrBackend> choose_attr_backend(const char* prog, const std::string& cli,
                                                 const std::string& confdir) {
  require_config_base(confdir);
  std::string notice;
  std::unique_ptr<AttrBackend> backend;
  if (!cli.empty()) {
    backend = select_attr_backend(cli, &notice);
  } else if (auto conf = configured_attr_backend(confdir); !conf.ok()) {
    // A configuration that cannot be read (a FIFO, a directory, too big) is
    // a set-up error, as for every other configuration file.
    throw std::runtime_error(conf.error().message());
  } else if (*conf == "bpf") {
    auto state = bpf_lsm_state();
    if (state.loaded) {
      backend = make_bpf_attr_backend();
    } else {
      notice = "the configured bpf attribute back end is unavailable: " + state.why_not +
               "; shared files are made immutable instead";
      backend = make_mainline_attr_backend();
    }
  } else {
    bool known =
        conf->empty() || std::find(std::begin(k_attr_backend_names), std::end(k_attr_backend_names),
                                   *conf) != std::end(k_attr_backend_names);
    if (!known)
      notice = "unknown attribute back end '" + *conf + "' in " + config_file(confdir) +
               " ignored (auto, mainline, bpf, linux-vserver)";
    backend = select_attr_backend(known ? *conf : "auto", known ? &notice : nullptr);
  }
  if (!notice.empty()) std::cerr << prog << ": warning: " << notice << "\n";
  return backend;
}

} // namespace vu
