#include "tools/setattr/setattr.h"

int main(int argc, char** argv) {
  return vu::run_setattr(argc, argv);
}
