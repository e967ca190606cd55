// Logging: short lines on stderr (journald-friendly, silenced by --quiet) and full lines with
// timestamps in the configured log file.
#pragma once

#include <string>

namespace lakevault {

enum class Verbosity { kQuiet, kNormal, kVerbose };

// Sets up stderr logging. Called once at start, before the config is known.
void InitLogging(Verbosity verbosity);
// Adds the log file once the config names it; a file that cannot be opened is a warning, not
// a failure (the job itself matters more than its log).
void AddLogFile(const std::string& path);

}  // namespace lakevault
