#pragma once

namespace vu {
int run_start_vservers(int argc, char** argv);
}
