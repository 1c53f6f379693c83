#include "tools/vserver-stat/vserver-stat.h"

int main(int argc, char** argv) {
  return vu::run_vserver_stat(argc, argv);
}
