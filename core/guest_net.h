// A guest's network: its own network namespace with loopback up, and one
// device per interfaces/N - a macvlan on the host device `dev` (bridge
// mode: the guest is one more host on that segment), or a veth pair
// whose host end is named vs<context or pid>.<N> and left for the
// administrator to route or bridge - with the configured address, up
// unless `down`. `nodev` interfaces get their address on the guest's
// loopback. Devices are made with the host's iproute2 (`ip`), run by the
// host in the guest's network namespace only: no guest file is involved.
#pragma once

#include "core/vserver_config.h"

#include <sys/types.h>

namespace vu {

// In the guest's network namespace (the calling process is in it).
Status bring_up_loopback();

// From the host, for the guest whose init is `pid` (`pidfd`).
Status configure_interfaces(const VServerConfig& config, pid_t pid, int pidfd);

// The host end of a veth pair for interface `index` of a guest.
std::string host_veth_name(const VServerConfig& config, pid_t pid, size_t index);

} // namespace vu
