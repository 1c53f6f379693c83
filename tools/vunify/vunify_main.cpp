#include "tools/vunify/vunify.h"

int main(int argc, char** argv) {
  return vu::run_vunify(argc, argv);
}
