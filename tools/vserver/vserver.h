#pragma once

namespace vu {
int run_vserver(int argc, char** argv);
}
