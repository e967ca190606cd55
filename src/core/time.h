// UTC timestamps and durations as the CLI and the manifest write them.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include "core/result.h"

namespace lakevault {

using Clock = std::chrono::system_clock;
using TimePoint = Clock::time_point;

// "2026-01-27T16:00:00Z"
std::string FormatIso8601(TimePoint t);
// "20260127_160000", the backup-id stamp.
std::string FormatCompactStamp(TimePoint t);
// Accepts "2026-01-27T16:00:00Z", "2026-01-27 16:00:00", "2026-01-27" (UTC).
Result<TimePoint> ParseTime(const std::string& text);
// "2h", "30m", "1d", "45s", "1w", or plain seconds.
Result<int64_t> ParseDurationSeconds(const std::string& text);
// "3h 2m" style for humans.
std::string FormatDuration(double seconds);

}  // namespace lakevault
