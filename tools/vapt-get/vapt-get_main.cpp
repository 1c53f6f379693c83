#include "tools/vapt-get/vapt-get.h"

int main(int argc, char** argv) {
  return vu::run_vapt_get(argc, argv);
}
