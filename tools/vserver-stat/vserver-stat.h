#pragma once

namespace vu {
int run_vserver_stat(int argc, char** argv);
}
