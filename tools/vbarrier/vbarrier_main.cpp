#include "tools/vbarrier/vbarrier.h"

int main(int argc, char** argv) {
  return vu::run_vbarrier(argc, argv);
}
