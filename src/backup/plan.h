// What a backup will take: the tables found under the lake root, their files, and the extra
// files from the config. Built before anything is written, so --dry-run prints exactly this.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "backup/planned_files.h"
#include "config/config.h"
#include "core/result.h"

namespace lakevault {

// The files of a share of a big table (see PlanOptions::max_table_replay_bytes): those whose path
// relative to the table falls in share `part` of `parts` (delta::ShareOf), sorted by path.
struct PlannedShare {
  uint32_t part = 0;
  uint32_t parts = 1;
  PlannedFiles files;
};

struct PlannedTable {
  std::string name;           // below the lake root
  std::string relative_path;  // relative to the project root
  int64_t version = -1;
  std::optional<int64_t> rows;
  // Sorted by relative path: all of the table's files, or, for a table planned in shares, its
  // log entries (those of the pinned version, and _last_checkpoint) and the shares hold the rest.
  PlannedFiles files;
  std::vector<PlannedShare> shares;         // empty unless the table was planned in shares
  std::vector<std::string> missing;         // referenced by the log but absent
  std::vector<std::string> absolute_paths;  // referenced outside the table: not backed up
  int64_t Bytes() const;
  size_t FileCount() const;
  // Hands every file to `visit`: `files`, then each share's (PlannedFiles::ForEach).
  Status ForEachFile(Env& env, const std::function<Status(const PlannedFile&)>& visit) const;
};

struct BackupPlan;
// Where `file` is read from: the plan's root joined with its relative path.
std::string AbsolutePath(const BackupPlan& plan, const PlannedFile& file);

struct BackupPlan {
  std::string root;
  std::string lake_relative;
  std::vector<PlannedTable> tables;
  std::vector<PlannedFile> extra_files;  // config files, .env, logs
  std::vector<std::string> directories;  // relative folders, parents first, for tar entries
  std::vector<std::string> warnings;
  int64_t TotalBytes() const;
  size_t TotalFiles() const;
};

// Finds the Delta tables (folders holding _delta_log/) below `lake_dir`, not descending into a
// table once found. Names are relative to `lake_dir`, sorted.
Result<std::vector<std::string>> FindDeltaTables(const std::string& lake_dir);

// Freed memory below this is left to glibc rather than handed back with malloc_trim: a trim
// walks the whole heap and returns pages that the next step then faults in again (4 KiB at
// 10-15 us on these VMs); for a table of a few thousand files that cost more than it saved.
inline constexpr int64_t kTrimFreedBytes = int64_t{4} << 20;

struct PlanOptions {
  // Take what exists when the pinned version references missing files, recording them.
  bool allow_missing = false;
  // Only the files the pinned version needs; otherwise older versions' files are kept too.
  bool snapshot_only = false;
  // Called with each table (and its index in BackupPlan::tables) once it is planned, before the
  // next one is: a backup writes the table's files to a scratch file there
  // (PlannedFiles::Spill), so that a plan holds one table's list at a time, not the lake's.
  std::function<Status(size_t index, PlannedTable& table)> on_table_planned = nullptr;
  // What a table's log replay may hold of its live files at once. A bigger table is planned in
  // shares of its files by path (delta::ForEachSnapshotShare, and the same shares of the files
  // found beside them), two replays of the log per share: the plan holds one share at a time,
  // each handed to on_share_planned as soon as it is planned. The default keeps a table of
  // 300,000 files of the benchmark's in one piece, as a check does (kCheckReplayBytes).
  size_t max_table_replay_bytes = size_t{40} << 20;
  // Called with each share of a table planned in shares (`table` is the one being planned, its
  // `shares` not yet holding this one), before the next share is replayed: a backup spills it.
  std::function<Status(size_t index, const PlannedTable& table, size_t share, PlannedFiles& files)>
      on_share_planned = nullptr;
};

// Pins each table at its newest committed version when called and takes the log entries up to
// it and every file it references (see PlanOptions).
Result<BackupPlan> PlanBackup(const Config& config, const PlanOptions& options = {});

}  // namespace lakevault
