#include "tools/vhashify/vhashify.h"

int main(int argc, char** argv) {
  return vu::run_vhashify(argc, argv);
}
