#include "core/time.h"

#include <fmt/format.h>

#include <ctime>

namespace lakevault {

namespace {
std::tm ToUtc(TimePoint t) {
  std::time_t tt = Clock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  return tm;
}
}  // namespace

std::string FormatIso8601(TimePoint t) {
  std::tm tm = ToUtc(t);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::string FormatCompactStamp(TimePoint t) {
  std::tm tm = ToUtc(t);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y%m%d_%H%M%S", &tm);
  return buf;
}

Result<TimePoint> ParseTime(const std::string& text) {
  std::tm tm{};
  const char* formats[] = {
      "%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S", "%Y%m%d_%H%M%S",
      "%Y-%m-%dT%H:%MZ",    "%Y-%m-%d %H:%M",    "%Y-%m-%d"};
  for (const char* format : formats) {
    tm = {};
    const char* end = strptime(text.c_str(), format, &tm);
    if (end != nullptr && *end == '\0') return Clock::from_time_t(timegm(&tm));
  }
  return Error("cannot read time '" + text + "' (use 2026-01-27T16:00:00Z or 2026-01-27)");
}

Result<int64_t> ParseDurationSeconds(const std::string& text) {
  if (text.empty()) return Error("empty duration");
  size_t pos = 0;
  int64_t value = 0;
  try {
    value = std::stoll(text, &pos);
  } catch (...) {
    return Error("cannot read duration '" + text + "' (use 30s, 15m, 2h, 1d, 1w)");
  }
  std::string unit = text.substr(pos);
  if (value < 0) return Error("negative duration '" + text + "'");
  if (unit.empty() || unit == "s") return value;
  if (unit == "m" || unit == "min") return value * 60;
  if (unit == "h") return value * 3600;
  if (unit == "d") return value * 86400;
  if (unit == "w") return value * 7 * 86400;
  return Error("cannot read duration '" + text + "' (use 30s, 15m, 2h, 1d, 1w)");
}

std::string FormatDuration(double seconds) {
  if (seconds < 60) return fmt::format("{:.1f}s", seconds);
  int64_t s = static_cast<int64_t>(seconds);
  if (s < 3600) return fmt::format("{}m {}s", s / 60, s % 60);
  if (s < 86400) return fmt::format("{}h {}m", s / 3600, (s % 3600) / 60);
  return fmt::format("{}d {}h", s / 86400, (s % 86400) / 3600);
}

}  // namespace lakevault
