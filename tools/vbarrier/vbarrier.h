#pragma once
namespace vu {
// vbarrier check [BASE] | vbarrier set [BASE]: check or make the guest base
// a chroot barrier. Exit 0 good, 1 problems found (check) or failed (set),
// 2 usage.
int run_vbarrier(int argc, char** argv);
} // namespace vu
