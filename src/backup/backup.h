// The backup job: plan, write the archive under a temporary name, verify it, write sidecars,
// give it its final name. Nothing under a final name exists until it has been verified.
#pragma once

#include <optional>
#include <string>

#include "backup/plan.h"
#include "config/config.h"
#include "core/env.h"
#include "core/result.h"
#include "manifest/manifest.h"

namespace lakevault {

struct BackupOptions {
  bool dry_run = false;
  std::optional<std::string> backup_dir;   // --path
  std::optional<Compression> compression;  // --compress
  bool verify_after = true;
};

struct BackupOutcome {
  BackupPlan plan;
  Manifest manifest;  // empty id on a dry run
  std::string archive_path;
  int64_t archive_bytes = 0;
  double seconds = 0;
};

std::string BackupDirFor(const Config& config, const BackupOptions& options);

Result<BackupOutcome> RunBackup(const Config& config, const BackupOptions& options, Env& env);

// The version string recorded in manifests.
const char* LakevaultVersion();

}  // namespace lakevault
