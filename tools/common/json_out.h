// What every program's JSON object carries besides its figures: which tool
// wrote it, its version and when (UTC), so a collected report says where
// it came from.
#pragma once

#include <nlohmann/json.hpp>

#include <string>

namespace vu {

// The current time in UTC, formatted by strftime's `format`.
std::string utc_now(const char* format);

// Adds "tool", "version" and "timestamp" ("2026-11-30T16:54:29Z") to `j`
// (an object) and returns it.
nlohmann::json with_run_info(nlohmann::json j, const char* tool);

} // namespace vu
