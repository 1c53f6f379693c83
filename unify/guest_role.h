// How a guest takes part in a run, and how its package manager was used:
// small enums shared by the guest list (guests.h) and the report.
#pragma once

namespace vu {

// member: files may be replaced by links and may serve as the shared inode.
// reference: files may serve as the shared inode but are never replaced
// (classic `vunify <vserver>` links a guest to its refservers).
enum class GuestRole { member, reference };
const char* guest_role_name(GuestRole r); // "member", "reference"

// How the package manager was consulted for a guest.
enum class PkgmgmtUse { none, used, ignored };
const char* pkgmgmt_use_name(PkgmgmtUse use); // "none", "used", "ignored"

} // namespace vu
