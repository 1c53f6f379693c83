#include "tools/vrpm/vrpm.h"

int main(int argc, char** argv) {
  return vu::run_vrpm(argc, argv);
}
