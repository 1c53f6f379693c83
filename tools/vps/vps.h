#pragma once

namespace vu {
int run_vps(int argc, char** argv);
}
