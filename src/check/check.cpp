#include "check/check.h"

#include <sys/stat.h>

#include <filesystem>

#include "backup/plan.h"
#include "delta/delta.h"
#include "parquet/parquet.h"

namespace fs = std::filesystem;

namespace lakevault {

bool CheckReport::healthy() const {
  for (const auto& t : tables)
    if (!t.healthy) return false;
  return !tables.empty();
}

TableHealth CheckTable(Env& env, const std::string& table_dir, const std::string& name) {
  TableHealth h;
  h.name = name;
  h.path = table_dir;
  auto snap = delta::LoadSnapshot(env, table_dir);
  if (!snap.ok()) {
    h.unreadable.push_back(snap.message());
    return h;
  }
  h.version = snap->version;
  h.checkpoint_version = snap->checkpoint_version;
  h.warnings = snap->warnings;
  h.absolute_paths = snap->AbsolutePaths();
  h.live_files = static_cast<int64_t>(snap->files.size());
  bool stats_complete = true;
  bool footers_complete = true;
  int64_t rows_stats = 0, rows_footers = 0;
  for (const auto& f : snap->files) {
    int64_t dv = f.dv ? f.dv->cardinality : 0;
    if (f.size > 0) h.bytes += f.size;
    if (f.num_records)
      rows_stats += *f.num_records - dv;
    else
      stats_complete = false;
    if (f.absolute) {
      if (!f.num_records) footers_complete = false;
      continue;
    }
    std::string full = table_dir + "/" + f.path;
    struct stat st;
    if (::stat(full.c_str(), &st) != 0) {
      h.missing_files.push_back(f.path);
      footers_complete = false;
      continue;
    }
    if (f.size >= 0 && st.st_size != f.size)
      h.size_mismatches.push_back(f.path + ": log says " + std::to_string(f.size) +
                                  " bytes, file has " + std::to_string(st.st_size));
    if (!f.num_records) {
      // Only files without stats are opened: their footer is the only other source of rows.
      auto md = parquet::ReadFileMetadata(env, full);
      if (md.ok())
        rows_footers += md->num_rows - dv;
      else {
        h.unreadable.push_back(f.path + ": " + md.message());
        footers_complete = false;
      }
    } else {
      rows_footers += *f.num_records - dv;
    }
  }
  for (const auto& f : snap->files)
    if (f.dv && f.dv->storage_type == "u" && !fs::exists(fs::path(table_dir) / f.dv->file))
      h.missing_files.push_back(f.dv->file);
  if (stats_complete) {
    h.rows = rows_stats;
    h.rows_source = "stats";
  } else if (footers_complete) {
    h.rows = rows_footers;
    h.rows_source = "footers";
  }
  h.healthy = h.missing_files.empty() && h.size_mismatches.empty() && h.unreadable.empty();
  return h;
}

Result<CheckReport> CheckLake(Env& env, const std::string& lake_dir,
                              const std::vector<std::string>& only) {
  std::error_code ec;
  if (!fs::is_directory(lake_dir, ec)) return Error("lake folder " + lake_dir + " does not exist");
  std::vector<std::string> names = only;
  if (names.empty()) {
    LV_ASSIGN_OR_RETURN(names, FindDeltaTables(lake_dir));
    if (names.empty()) return Error("no Delta table (a folder with _delta_log/) under " + lake_dir);
  }
  CheckReport report;
  for (const auto& n : names) {
    fs::path dir = fs::path(lake_dir) / n;
    if (names.size() == 1 && fs::path(n).filename() == fs::path(lake_dir).filename() &&
        delta::IsTable(lake_dir))
      dir = lake_dir;  // the lake root is itself a table
    if (!delta::IsTable(dir.string()))
      return Error("table " + n + " not found (no " + (dir / "_delta_log").string() + ")");
    report.tables.push_back(CheckTable(env, dir.string(), n));
  }
  return report;
}

nlohmann::json CheckReportToJson(const CheckReport& report) {
  nlohmann::json doc;
  doc["tables"] = nlohmann::json::array();
  for (const auto& t : report.tables) {
    doc["tables"].push_back({{"name", t.name},
                             {"path", t.path},
                             {"version", t.version},
                             {"checkpoint_version", t.checkpoint_version},
                             {"live_files", t.live_files},
                             {"bytes", t.bytes},
                             {"rows", t.rows ? nlohmann::json(*t.rows) : nlohmann::json()},
                             {"rows_source", t.rows_source},
                             {"missing_files", t.missing_files},
                             {"size_mismatches", t.size_mismatches},
                             {"unreadable", t.unreadable},
                             {"absolute_paths", t.absolute_paths},
                             {"warnings", t.warnings},
                             {"healthy", t.healthy}});
  }
  doc["healthy"] = report.healthy();
  return doc;
}

}  // namespace lakevault
