#include "drill/drill.h"

#include <unistd.h>

#include <chrono>
#include <filesystem>

#include "check/check.h"
#include "core/time.h"
#include "manifest/catalog.h"

namespace fs = std::filesystem;

namespace lakevault {

nlohmann::json DrillReportToJson(const DrillReport& r) {
  nlohmann::json steps = nlohmann::json::array();
  for (const auto& s : r.steps) steps.push_back({{"name", s.name}, {"seconds", s.seconds}});
  nlohmann::json tables = nlohmann::json::array();
  for (const auto& t : r.tables)
    tables.push_back(
        {{"name", t.name},
         {"version", t.version},
         {"expected_version", t.expected_version},
         {"rows", t.rows ? nlohmann::json(*t.rows) : nlohmann::json()},
         {"expected_rows", t.expected_rows ? nlohmann::json(*t.expected_rows) : nlohmann::json()},
         {"ok", t.ok},
         {"problem", t.problem}});
  return {{"id", r.id},
          {"time", r.time},
          {"ok", r.ok},
          {"failure", r.failure},
          {"steps", steps},
          {"tables", tables},
          {"rto_seconds", r.rto_seconds},
          {"rto_objective_seconds", r.rto_objective_seconds},
          {"rto_ok", r.rto_ok},
          {"files", r.files},
          {"bytes", r.bytes}};
}

Result<DrillReport> DrillReportFromJson(const nlohmann::json& doc) {
  if (!doc.is_object() || !doc.contains("id")) return Error("not a drill report");
  DrillReport r;
  r.id = doc.value("id", "");
  r.time = doc.value("time", "");
  r.ok = doc.value("ok", false);
  r.failure = doc.value("failure", "");
  r.rto_seconds = doc.value("rto_seconds", 0.0);
  r.rto_objective_seconds = doc.value("rto_objective_seconds", int64_t{0});
  r.rto_ok = doc.value("rto_ok", false);
  r.files = doc.value("files", int64_t{0});
  r.bytes = doc.value("bytes", int64_t{0});
  if (doc.contains("steps") && doc["steps"].is_array())
    for (const auto& s : doc["steps"])
      r.steps.push_back({s.value("name", ""), s.value("seconds", 0.0)});
  return r;
}

std::vector<DrillReport> AllDrills(const std::string& backup_dir) {
  std::vector<DrillReport> out;
  fs::path dir = fs::path(backup_dir) / "drills";
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return out;
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(dir, ec))
    if (e.path().extension() == ".json" && e.path().filename().string().rfind("drill_", 0) == 0)
      files.push_back(e.path());
  std::sort(files.begin(), files.end());
  for (const auto& f : files) {
    auto text = ReadWholeFile(Env::Default(), f.string());
    if (!text.ok()) continue;
    auto r = DrillReportFromJson(nlohmann::json::parse(*text, nullptr, false));
    if (!r.ok()) continue;
    r->report_path = f.string();
    out.push_back(std::move(r).value());
  }
  return out;
}

std::optional<DrillReport> LastDrill(const std::string& backup_dir) {
  auto all = AllDrills(backup_dir);
  if (all.empty()) return std::nullopt;
  return all.back();
}

Result<DrillReport> RunDrill(const Config& config, const std::string& backup_dir,
                             const std::string& selector, Env& env,
                             const std::vector<TimedStep>& prior_steps) {
  DrillReport report;
  report.time = FormatIso8601(Clock::now());
  report.rto_objective_seconds = config.rto_seconds;
  auto started = std::chrono::steady_clock::now();
  LV_ASSIGN_OR_RETURN(Catalog catalog, Catalog::Load(backup_dir));
  if (catalog.entries().empty()) return Error("no backups in " + backup_dir + " to drill");
  LV_ASSIGN_OR_RETURN(const CatalogEntry* entry, catalog.Find(selector));
  if (!entry->manifest) return Error("backup " + entry->id + ": " + entry->manifest_error);
  report.id = entry->id;

  // Scratch beside the lake: the restore is timed on the disk a real one would use.
  fs::path scratch =
      fs::path(RestoreWorkDir(config)) /
      ("drill_" + FormatCompactStamp(Clock::now()) + "_" + std::to_string(::getpid()));
  std::error_code ec;
  fs::create_directories(scratch, ec);
  if (ec) return Error("creating scratch folder " + scratch.string() + ": " + ec.message());
  RestoreRequest req;
  req.backup = entry->id;
  req.backup_dir = backup_dir;
  req.to_dir = (scratch / "restored").string();
  req.run_hooks = false;
  auto restored = RunRestore(config, req, env);
  if (!restored.ok()) {
    report.failure = restored.message();
  } else {
    report.steps = prior_steps;
    report.steps.insert(report.steps.end(), restored->steps.begin(), restored->steps.end());
    report.files = restored->files;
    report.bytes = restored->bytes;
    auto t0 = std::chrono::steady_clock::now();
    fs::path lake = fs::path(req.to_dir) / entry->manifest->lake;
    for (const auto& mt : entry->manifest->tables) {
      DrillTableResult tr;
      tr.name = mt.name;
      tr.expected_version = mt.version;
      tr.expected_rows = mt.rows;
      TableHealth h = CheckTable(env, (fs::path(req.to_dir) / mt.path).string(), mt.name);
      tr.version = h.version;
      tr.rows = h.rows;
      if (!h.unreadable.empty())
        tr.problem = h.unreadable.front();
      else if (!h.missing_files.empty() && entry->manifest->complete())
        tr.problem = "missing " + h.missing_files.front();
      else if (h.version != mt.version)
        tr.problem = "version " + std::to_string(h.version) + ", manifest says " +
                     std::to_string(mt.version);
      else if (mt.rows && h.rows && *mt.rows != *h.rows)
        tr.problem =
            "rows " + std::to_string(*h.rows) + ", manifest says " + std::to_string(*mt.rows);
      tr.ok = tr.problem.empty();
      if (!tr.ok && report.failure.empty()) report.failure = "table " + mt.name + ": " + tr.problem;
      report.tables.push_back(tr);
    }
    report.steps.push_back(
        {"check every table",
         std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count()});
  }
  fs::remove_all(scratch, ec);
  report.rto_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  for (const auto& s : prior_steps) report.rto_seconds += s.seconds;
  report.rto_ok = report.rto_seconds <= static_cast<double>(config.rto_seconds);
  if (report.failure.empty() && !report.rto_ok)
    report.failure = "measured recovery time " +
                     FormatDuration(static_cast<int64_t>(report.rto_seconds)) +
                     " exceeds the RTO objective " + FormatDuration(config.rto_seconds);
  report.ok = report.failure.empty();
  fs::path dir = fs::path(backup_dir) / "drills";
  fs::create_directories(dir, ec);
  report.report_path = (dir / ("drill_" + FormatCompactStamp(Clock::now()) + ".json")).string();
  LV_RETURN_IF_ERROR(
      WriteFileAtomically(env, report.report_path, DrillReportToJson(report).dump(2) + "\n", 0600));
  return report;
}

}  // namespace lakevault
