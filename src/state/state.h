// What the jobs did, kept beside the backups so `status`, the metrics file and the report can
// answer "when did this last work" without scanning logs. One small JSON file, written
// atomically after every job.
#pragma once

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "core/env.h"
#include "core/result.h"

namespace lakevault {

struct JobRecord {
  std::string job;  // backup | verify | prune | restore | drill | consolidate | check
  bool ok = false;
  std::string time;  // ISO 8601 UTC
  double seconds = 0;
  std::string error;                                  // first line of the failure
  nlohmann::json details = nlohmann::json::object();  // bytes, files, rto, ...
};

struct JobState {
  std::optional<JobRecord> last_success;
  std::optional<JobRecord> last_failure;
  int64_t failures_since_success = 0;
};

struct State {
  std::map<std::string, JobState> jobs;
};

std::string StatePath(const std::string& backup_dir);
// A missing file is an empty state; a corrupt one is reported.
Result<State> LoadState(Env& env, const std::string& backup_dir);
// Adds `record` and rewrites the file atomically (mode 0600). Creates the folder if needed.
Status RecordJob(Env& env, const std::string& backup_dir, const JobRecord& record);

}  // namespace lakevault
