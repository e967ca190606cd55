// The HTML report: backup history with sizes and durations as inline SVG charts, RPO
// compliance, drills against the RTO, and the health of each table. One self-contained file,
// no scripts and no network, readable in any browser or mail client.
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace lakevault {

struct ReportBackup {
  std::string id;
  std::string kind;
  std::string created;  // ISO 8601 UTC
  int64_t archive_bytes = 0;
  int64_t lake_bytes = 0;
  double duration_seconds = 0;
  std::optional<bool> verified;
};

struct ReportDrill {
  std::string time;
  std::string backup_id;
  double rto_seconds = 0;
  bool ok = false;
};

struct ReportTable {
  std::string name;
  int64_t version = -1;
  std::optional<int64_t> rows;
  int64_t live_files = 0;
  int64_t bytes = 0;
  bool healthy = true;
  std::string problem;
};

struct ReportData {
  std::string title = "lakevault report";
  std::string generated;  // ISO 8601 UTC
  std::string now;        // the time RPO age is measured against
  std::string lake;
  int64_t rpo_seconds = 86400;
  int64_t rto_seconds = 7200;
  std::vector<ReportBackup> backups;  // oldest first
  std::vector<ReportDrill> drills;    // oldest first
  std::vector<ReportTable> tables;
  bool tables_checked = false;
};

std::string RenderHtmlReport(const ReportData& data);

// RPO compliance: how many of the intervals between consecutive backups (and from the newest to
// `now`) were within the objective.
struct RpoCompliance {
  int intervals = 0;
  int within = 0;
  double worst_gap_seconds = 0;
};
RpoCompliance ComputeRpoCompliance(const std::vector<ReportBackup>& backups, const std::string& now,
                                   int64_t rpo_seconds);

}  // namespace lakevault
