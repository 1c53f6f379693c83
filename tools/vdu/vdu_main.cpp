#include "tools/vdu/vdu.h"

int main(int argc, char** argv) {
  return vu::run_vdu(argc, argv);
}
