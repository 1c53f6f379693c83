#pragma once
namespace vu {
// vdu [OPTIONS] GUEST... | --all: per-guest private, shared, saved and
// still-possible bytes as a table, JSON, CSV or an HTML page; or
// util-vserver's vdu --space|--inodes [--blocksize N] DIR... (man/vdu.8).
int run_vdu(int argc, char** argv);
} // namespace vu
