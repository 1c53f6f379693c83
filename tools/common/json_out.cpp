#include "tools/common/json_out.h"

#include "version.h"

#include <ctime>

namespace vu {

std::string utc_now(const char* format) {
  std::time_t now = std::time(nullptr);
  std::tm utc{};
  ::gmtime_r(&now, &utc);
  char text[64];
  if (std::strftime(text, sizeof text, format, &utc) == 0) return {};
  return text;
}

nlohmann::json with_run_info(nlohmann::json j, const char* tool) {
  j["tool"] = tool;
  j["version"] = k_version;
  j["timestamp"] = utc_now("%Y-%m-%dT%H:%M:%SZ");
  return j;
}

} // namespace vu
