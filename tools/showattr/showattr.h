#pragma once
namespace vu {
// showattr [-Radx] <file>*: one line per file, nine attribute columns
// (a w h m b u i c x: upper case set, lower case clear, '-' unsupported), a
// space and the name. Exit 0, 1 when some file failed, 2 on usage errors.
int run_showattr(int argc, char** argv);
} // namespace vu
