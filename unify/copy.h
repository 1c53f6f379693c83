// The one way the suite copies a file: a private copy that is the same
// file in every respect a guest can see, made where nobody can reach it
// until it is complete and verified.
#pragma once

#include "kernel/fd.h"
#include "kernel/fs.h"
#include "kernel/result.h"

#include <cstdint>

namespace vu {

// Copies a file's data (keeping holes: SEEK_DATA/SEEK_HOLE and
// copy_file_range) into `to`, adding the bytes copied to `copied`.
Status copy_data(int from, int to, uint64_t size, uint64_t& copied);
// Copies owner and group, every xattr (ACLs and file capabilities, after
// the chown that would drop them), mode and times.
Status copy_metadata(int from, int to);

// A copy of the open file `from` (of `size` bytes) as an unnamed file
// (O_TMPFILE) in directory `dirfd` - so on its file system and invisible
// until linked - with data and metadata copied, then compared with `from`
// byte for byte. ESTALE when the bytes differ (`from` changed meanwhile).
// `copied` gets the bytes of data copied. The descriptor returned is
// read-only (the writable one is closed). Thread-safe.
Result<UniqueFd> make_private_copy(int from, int dirfd, uint64_t size, uint64_t& copied);

} // namespace vu
