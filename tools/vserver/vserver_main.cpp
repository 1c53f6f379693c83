#include "tools/vserver/vserver.h"

int main(int argc, char** argv) {
  return vu::run_vserver(argc, argv);
}
