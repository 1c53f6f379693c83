// A pseudo-terminal for a process in a guest, relayed by the host. The
// pty is the guest's own: allocated from the guest's devpts instance by the
// entering process (in the guest's mount namespace, before it is
// confined), so the guest's programs find their terminal under their
// /dev/pts. Its master end is passed to the host over a socket; the host
// copies bytes between its own terminal and the master. The caller's
// terminal never enters the guest, so nothing there can type into it
// (TIOCSTI) or keep it open after the command ends.
#pragma once

#include "kernel/fd.h"
#include "kernel/result.h"

namespace vu {

struct Pty {
  UniqueFd master;
  UniqueFd terminal; // the end the guest's process gets
};

// A new pty from the devpts instance at /dev/pts of this mount namespace
// (opened without following symlinks and checked to be devpts).
Result<Pty> open_pty_here();

// One descriptor over a unix socket (SCM_RIGHTS).
Status send_descriptor(int socket, int fd);
Result<UniqueFd> receive_descriptor(int socket);

// Copies stdin to `master` and `master` to stdout until the process behind
// `pidfd` has exited and its output is drained; stdin is put in raw mode
// meanwhile (restored on return) and window size changes are passed on.
void relay_pty(int master, int pidfd);

} // namespace vu
