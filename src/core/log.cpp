#include "core/log.h"

#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <filesystem>

namespace lakevault {

void InitLogging(Verbosity verbosity) {
  auto stderr_sink = std::make_shared<spdlog::sinks::stderr_sink_mt>();
  stderr_sink->set_pattern("lakevault: %^%l%$: %v");
  switch (verbosity) {
    case Verbosity::kQuiet:
      stderr_sink->set_level(spdlog::level::err);
      break;
    case Verbosity::kNormal:
      // Progress lines are for an operator at a terminal. Unattended runs (systemd, cron,
      // scripts) get warnings and the one error line on stderr, the result on stdout, and
      // every operation in the log file.
      stderr_sink->set_level(::isatty(2) ? spdlog::level::info : spdlog::level::warn);
      break;
    case Verbosity::kVerbose:
      stderr_sink->set_level(spdlog::level::debug);
      break;
  }
  auto logger = std::make_shared<spdlog::logger>("lakevault", stderr_sink);
  logger->set_level(spdlog::level::debug);
  spdlog::set_default_logger(logger);
}

void AddLogFile(const std::string& path) {
  if (path.empty()) return;
  try {
    std::error_code ec;
    std::filesystem::create_directories(std::filesystem::path(path).parent_path(), ec);
    auto sink = std::make_shared<spdlog::sinks::basic_file_sink_mt>(path, /*truncate=*/false);
    sink->set_formatter(std::make_unique<spdlog::pattern_formatter>(
        "%Y-%m-%dT%H:%M:%S.%eZ [%P] %l: %v", spdlog::pattern_time_type::utc));
    sink->set_level(spdlog::level::debug);
    spdlog::default_logger()->sinks().push_back(sink);
    spdlog::default_logger()->flush_on(spdlog::level::info);
  } catch (const spdlog::spdlog_ex& e) {
    spdlog::warn("cannot write log file {}: {}", path, e.what());
  }
}

}  // namespace lakevault
