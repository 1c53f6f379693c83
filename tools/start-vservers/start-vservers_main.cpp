#include "tools/start-vservers/start-vservers.h"

int main(int argc, char** argv) {
  return vu::run_start_vservers(argc, argv);
}
