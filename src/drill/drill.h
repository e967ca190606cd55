// Recovery drills (the guide's monthly restore test and quarterly recovery-time test): restore a
// backup into a scratch folder, check every table against the manifest, time every step and
// compare the total with the RTO objective.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "config/config.h"
#include "core/env.h"
#include "core/result.h"
#include "restore/restore.h"

namespace lakevault {

struct DrillTableResult {
  std::string name;
  int64_t version = -1;
  int64_t expected_version = -1;
  std::optional<int64_t> rows;
  std::optional<int64_t> expected_rows;
  bool ok = false;
  std::string problem;
};

struct DrillReport {
  std::string id;
  std::string time;
  bool ok = false;
  std::string failure;  // first problem, empty when ok
  std::vector<TimedStep> steps;
  std::vector<DrillTableResult> tables;
  double rto_seconds = 0;  // measured
  int64_t rto_objective_seconds = 0;
  bool rto_ok = false;
  int64_t files = 0;
  int64_t bytes = 0;
  std::string report_path;
};

nlohmann::json DrillReportToJson(const DrillReport& report);
Result<DrillReport> DrillReportFromJson(const nlohmann::json& doc);

// Runs the drill and stores its report in <backup_dir>/drills/. The returned report says
// whether it passed; an Error is returned only when no drill could be attempted.
// `prior_steps` (a download from a remote, say) count toward the measured RTO and head the steps.
Result<DrillReport> RunDrill(const Config& config, const std::string& backup_dir,
                             const std::string& selector, Env& env,
                             const std::vector<TimedStep>& prior_steps = {});

// The newest stored drill report, if any.
std::optional<DrillReport> LastDrill(const std::string& backup_dir);
// Every stored drill report, oldest first (unreadable ones skipped).
std::vector<DrillReport> AllDrills(const std::string& backup_dir);

}  // namespace lakevault
