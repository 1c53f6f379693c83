#pragma once

namespace vu {
int run_vapt_get(int argc, char** argv);
}
