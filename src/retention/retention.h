// Retention: which backups to keep under the configured policy, never deleting a backup that a
// kept backup depends on, nor the newest verified backup. Planning is a pure function so the
// policy can be tested against hand-computed expectations.
#pragma once

#include <string>
#include <vector>

#include "config/config.h"
#include "core/env.h"
#include "core/result.h"
#include "core/time.h"
#include "manifest/catalog.h"

namespace lakevault {

struct RetentionInput {
  std::string id;
  TimePoint created;
  std::string parent;     // empty for a full backup
  bool verified = false;  // last verification passed
};

struct RetentionDecision {
  std::string id;
  bool keep = false;
  std::string reason;  // every rule that keeps it, or why it goes
};

// `backups` oldest first; returns one decision per backup in the same order.
std::vector<RetentionDecision> PlanRetention(const std::vector<RetentionInput>& backups,
                                             const RetentionPolicy& policy, TimePoint now);

std::vector<RetentionInput> RetentionInputs(const Catalog& catalog);

struct PruneOptions {
  bool dry_run = false;
  // Test hook: the process kills itself (SIGKILL) after this many deleted files, to prove an
  // interrupted prune loses nothing. 0: never.
  int kill_after_deletes = 0;
};

struct PruneOutcome {
  std::vector<RetentionDecision> decisions;
  std::vector<std::string> deleted;          // backup ids
  std::vector<std::string> orphans_removed;  // sidecar/temp files without an archive
};

// Plans and (unless dry_run) deletes, newest first, archive before sidecars, under the backup
// folder's lock: at every instant every remaining backup still has its whole chain.
Result<PruneOutcome> RunPrune(Env& env, const std::string& backup_dir,
                              const RetentionPolicy& policy, TimePoint now,
                              const PruneOptions& options);

}  // namespace lakevault
