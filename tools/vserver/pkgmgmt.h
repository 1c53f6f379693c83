// vserver NAME pkgmgmt externalize|internalize: moves a stopped guest's
// dpkg and rpm databases out of it (to the apps/pkgmgmt layout,
// tools/common/pkgmgmt_layout.h) or back. Each move is one rename(2)
// beneath descriptors, without following symlinks, so a kill at any moment
// leaves exactly one copy, and the layout says where it is: the external
// state directory exists, or it does not. Both places must be on one file
// system (the default <vdirbase>/.pkg/NAME is on the guests'). The
// guest's lock is held throughout; a running guest is refused.
//
// Externalizing dpkg's database also gives the host's apt its directories
// and, when the layout has no sources.list yet, the guest's sources
// (sources.list and sources.list.d/*.list lines with http or https URIs
// only - a file: source would make the host's apt read the host's files -
// and no option but arch=) and its keys (trusted.gpg.d), read beneath the
// guest's /etc/apt with bounds. The guest's apt.conf.d is never copied.
#pragma once

#include <string>
#include <vector>

namespace vu {

int run_pkgmgmt(const std::string& confdir, const std::string& name,
                const std::vector<std::string>& args, bool quiet);

} // namespace vu
