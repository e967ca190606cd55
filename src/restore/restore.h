// Transactional restore: verify, stage beside the lake, check, swap in with renames, run the
// hooks, and roll back by itself if anything after the swap fails. A journal beside the lake
// lets the next run finish the job of a restore that was killed.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "config/config.h"
#include "core/env.h"
#include "core/result.h"
#include "core/time.h"
#include "manifest/catalog.h"

namespace lakevault {

struct RestoreRequest {
  std::string backup = "latest";    // an id or "latest"
  std::optional<TimePoint> at;      // newest backup created at or before this time
  std::vector<std::string> tables;  // table names below the lake; empty: every table
  std::optional<int64_t> version;   // Delta version to restore the one named table to
  std::string to_dir;               // restore into this folder instead (no hooks, no swap)
  bool with_config = false;         // also config files and .env
  bool dry_run = false;
  std::string backup_dir;  // the catalogue (default: the config's backup_path)
  bool run_hooks = true;
};

struct TimedStep {
  std::string name;
  double seconds = 0;
};

struct RestoreOutcome {
  std::string id;
  std::string created;
  std::vector<std::string> tables;
  std::vector<std::string> config_files;
  int64_t files = 0;
  int64_t bytes = 0;
  std::vector<TimedStep> steps;
  std::string target;        // where the data now is (the lake, or --to)
  std::string rollback_dir;  // the kept previous state ("" for --to)
  bool dry_run = false;
  double seconds = 0;
};

// Picks the backup: `selector` ("latest" or an id), or the newest at or before `at`.
Result<const CatalogEntry*> SelectBackup(const Catalog& catalog, const std::string& selector,
                                         std::optional<TimePoint> at);

Result<RestoreOutcome> RunRestore(const Config& config, const RestoreRequest& request, Env& env);

// Undoes the last successful restore from its kept copy. Fails when there is none.
Result<std::string> RunRollback(const Config& config, Env& env);

// Finishes a restore that was interrupted (killed) by putting the previous state back. Returns
// a description of what it did, or an empty string when there was nothing to do.
Result<std::string> RecoverInterruptedRestore(const Config& config, Env& env);

// Removes the kept rollback copy.
Result<std::string> CleanupRollback(const Config& config);

// The folder beside the lake that holds staging, the journal and rollback copies.
std::string RestoreWorkDir(const Config& config);

}  // namespace lakevault
