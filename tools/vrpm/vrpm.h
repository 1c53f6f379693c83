#pragma once

namespace vu {
int run_vrpm(int argc, char** argv);
}
