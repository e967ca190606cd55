// `lakevault check`: opens each Delta table, resolves its newest snapshot and reports what a
// reader would trip over (the guide's health_check, made precise).
#pragma once

#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "core/env.h"
#include "core/result.h"

namespace lakevault {

struct TableHealth {
  std::string name;  // below the lake root
  std::string path;  // the table folder
  int64_t version = -1;
  int64_t checkpoint_version = -1;
  int64_t live_files = 0;
  int64_t bytes = 0;
  std::optional<int64_t> rows;
  std::string rows_source;                   // "stats", "footers", or empty when unknown
  std::vector<std::string> missing_files;    // relative to the table
  std::vector<std::string> size_mismatches;  // "path: log says N bytes, file has M"
  std::vector<std::string> unreadable;       // log entries or files that could not be read
  std::vector<std::string> absolute_paths;   // referenced outside the table
  std::vector<std::string> warnings;         // tolerated oddities (stale _last_checkpoint, ...)
  bool healthy = false;
};

struct CheckReport {
  std::vector<TableHealth> tables;
  bool healthy() const;
};

// What a check's replay of a table's log may hold of its live files at once. A bigger table is
// checked in shares of its files, one replay of the log each (delta::ForEachSnapshotShare): a
// table of 300,000 files of the benchmark's (37 MB) is still read in one, under 2 s.
inline constexpr size_t kCheckReplayBytes = size_t{40} << 20;

TableHealth CheckTable(Env& env, const std::string& table_dir, const std::string& name,
                       size_t max_replay_bytes = kCheckReplayBytes);

// Checks every table below `lake_dir` (or just `only`, names relative to it). Fails only when
// the lake cannot be listed or a named table does not exist.
Result<CheckReport> CheckLake(Env& env, const std::string& lake_dir,
                              const std::vector<std::string>& only = {});

nlohmann::json CheckReportToJson(const CheckReport& report);
// Writes exactly CheckReportToJson(report).dump(2), without building the document.
void WriteCheckReportJson(const CheckReport& report, std::ostream& out);

}  // namespace lakevault
