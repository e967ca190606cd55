// The backup job: plan, write the archive under a temporary name, verify it, write sidecars,
// give it its final name. Nothing under a final name exists until it has been verified.
#pragma once

#include <functional>
#include <optional>
#include <string>

#include "backup/plan.h"
#include "config/config.h"
#include "core/env.h"
#include "core/result.h"
#include "core/time.h"
#include "manifest/manifest.h"

namespace lakevault {

enum class BackupKind {
  kAuto,  // the configured cadence: a full every full_every_days, incrementals between
  kFull,
  kIncremental,  // refused when the parent chain is broken, unless full_if_needed
};

struct BackupOptions {
  BackupKind kind = BackupKind::kAuto;
  bool full_if_needed = false;
  // The time the backup is taken at (its id and "created"); the real clock when unset. Lets
  // tests and simulations take a month of daily backups in a second.
  std::optional<TimePoint> now;
  bool dry_run = false;
  std::optional<std::string> backup_dir;   // --path
  std::optional<Compression> compression;  // --compress
  bool verify_after = true;
  bool progress = false;       // draw a progress bar on stderr
  bool allow_missing = false;  // --allow-missing
  bool snapshot_only = false;  // --snapshot-only
  // Called once the archive exists under its temporary name (`path`), before any byte is
  // written; it is written by appending only, so a reader can follow it as it grows (uploads to
  // S3 during the backup). `archive_name` is its final file name.
  std::function<void(const std::string& path, const std::string& archive_name)> on_archive_created;
  // How many of the parent's entries an incremental indexes at once (0: the default, 24 MiB of
  // index); more are indexed a batch of tables at a time.
  size_t max_parent_index_records = 0;
  // What a table's log replay may hold at once (0: the default of
  // PlanOptions::max_table_replay_bytes); a bigger table is planned and written in shares.
  size_t max_table_replay_bytes = 0;
};

struct BackupOutcome {
  BackupPlan plan;
  Manifest manifest;  // empty id on a dry run
  std::string archive_path;
  int64_t archive_bytes = 0;
  int64_t files_stored = 0;  // files whose bytes this archive holds
  int64_t bytes_stored = 0;
  std::string kind_reason;  // why full or incremental
  double seconds = 0;
  size_t parent_index_batches = 0;  // the batches of groups the parent's list was indexed in
};

std::string BackupDirFor(const Config& config, const BackupOptions& options);

Result<BackupOutcome> RunBackup(const Config& config, const BackupOptions& options, Env& env);

// The version string recorded in manifests.
const char* LakevaultVersion();

}  // namespace lakevault
