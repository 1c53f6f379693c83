#pragma once
namespace vu {
// vattr-bpf load|unload|status: the BPF LSM program that gives mainline
// Linux-VServer's iunlink and barrier (the bpf attribute back end).
// Exit 0 done (status: loaded), 1 failed (status: not loaded), 2 usage.
int run_vattr_bpf(int argc, char** argv);
} // namespace vu
