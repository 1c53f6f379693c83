#include "tools/vattr-bpf/vattr-bpf.h"

int main(int argc, char** argv) {
  return vu::run_vattr_bpf(argc, argv);
}
