#include "tools/showattr/showattr.h"

int main(int argc, char** argv) {
  return vu::run_showattr(argc, argv);
}
