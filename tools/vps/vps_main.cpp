#include "tools/vps/vps.h"

int main(int argc, char** argv) {
  return vu::run_vps(argc, argv);
}
