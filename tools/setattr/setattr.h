#pragma once
namespace vu {
// setattr [-Rx] [--FLAG|--~FLAG|--!FLAG|--flags N]... <file>+ (see
// man/setattr.8). Exit 0, 1 when some file failed, 2 on usage errors.
int run_setattr(int argc, char** argv);
} // namespace vu
