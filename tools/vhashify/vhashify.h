#pragma once
namespace vu {
// vhashify [OPTIONS] GUEST... | --all [--gc] | --gc: link guests' files to
// the hash store (man/vhashify.8). Exit 0, 1 when some file failed, 2 on
// usage or set-up errors (including a busy store with --no-wait).
int run_vhashify(int argc, char** argv);
} // namespace vu
