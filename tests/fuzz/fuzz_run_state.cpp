// libFuzzer target: the run-state file of a guest (core/run_state.h) and
// the list and capability parsers of its configuration. A state that
// parses formats back to a state that parses to the same values.
#include "core/run_state.h"
#include "core/vserver_config.h"

#include <cstddef>
#include <cstdint>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto s = vu::parse_run_state(text);
  if (s.ok()) {
    auto again = vu::parse_run_state(vu::format_run_state(*s));
    if (!again.ok() || again->pid != s->pid || again->cgroup2 != s->cgroup2 ||
        again->cgroup1 != s->cgroup1 || again->start_ticks != s->start_ticks)
      __builtin_trap();
  }
  auto lines = vu::parse_config_lines(text);
  for (const auto& l : lines)
    if (l.empty() || l.find('\n') != std::string::npos) __builtin_trap();
  (void)vu::apply_bcapabilities(0, lines);
  return 0;
}
