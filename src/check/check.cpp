#include "check/check.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <deque>
#include <filesystem>
#include <memory>
#include <optional>
#include <thread>

#include "backup/plan.h"
#include "delta/delta.h"
#include "parquet/parquet.h"

namespace fs = std::filesystem;

namespace lakevault {

namespace {

// What the check learns from the filesystem about one live file. Small: there is one per live
// file, and only files without stats have a footer read.
struct Probe {
  int64_t size = -1;                             // -1: missing
  std::unique_ptr<Result<int64_t>> footer_rows;  // files without stats only
};

// Probes files[begin, end): a stat relative to an open handle on the parent folder, so the
// kernel walks the table's path once per folder instead of once per file (300,000 files share
// a few hundred folders). A path the handle cannot take is stat'ed whole, as before.
void ProbeRange(Env& env, const std::string& table_dir, const std::deque<delta::FileAction>& files,
                size_t begin, size_t end, std::vector<Probe>& out) {
  int dir_fd = -1;
  std::string dir_rel;
  bool dir_open = false;
  for (size_t i = begin; i < end; ++i) {
    const auto& f = files[i];
    if (f.absolute) continue;
    std::string full = table_dir + "/" + f.path;
    auto slash = f.path.rfind('/');
    std::string parent = slash == std::string::npos ? "" : f.path.substr(0, slash);
    std::string base = f.path.substr(slash == std::string::npos ? 0 : slash + 1);
    if (!dir_open || parent != dir_rel) {
      if (dir_fd >= 0) ::close(dir_fd);
      dir_fd = ::open((parent.empty() ? table_dir : table_dir + "/" + parent).c_str(),
                      O_PATH | O_DIRECTORY | O_CLOEXEC);
      dir_rel = parent;
      dir_open = true;
    }
    struct stat st;
    bool found = !base.empty() && dir_fd >= 0 && ::fstatat(dir_fd, base.c_str(), &st, 0) == 0;
    if (!found) found = ::stat(full.c_str(), &st) == 0;
    if (!found) continue;
    Probe& p = out[i];
    p.size = st.st_size;
    // Only files without stats are opened: their footer is the only other source of rows.
    if (!f.num_records) {
      auto md = parquet::ReadFileMetadata(env, full);
      p.footer_rows = std::make_unique<Result<int64_t>>(md.ok() ? Result<int64_t>(md->num_rows)
                                                                : Result<int64_t>(md.status()));
    }
  }
  if (dir_fd >= 0) ::close(dir_fd);
}

// Probes every file, on up to four threads: stat is a system call per file, and a big table's
// check is mostly those calls once its log is read.
std::vector<Probe> ProbeFiles(Env& env, const std::string& table_dir,
                              const std::deque<delta::FileAction>& files) {
  std::vector<Probe> out(files.size());
  size_t threads = std::clamp<size_t>(std::thread::hardware_concurrency(), 1, 4);
  if (files.size() < 4096) threads = 1;
  size_t chunk = (files.size() + threads - 1) / threads;
  std::vector<std::thread> pool;
  for (size_t t = 1; t < threads; ++t) {
    size_t b = t * chunk, e = std::min(files.size(), b + chunk);
    if (b < e) pool.emplace_back([&, b, e] { ProbeRange(env, table_dir, files, b, e, out); });
  }
  ProbeRange(env, table_dir, files, 0, std::min(files.size(), chunk), out);
  for (auto& th : pool) th.join();
  return out;
}

}  // namespace

bool CheckReport::healthy() const {
  for (const auto& t : tables)
    if (!t.healthy) return false;
  return !tables.empty();
}

TableHealth CheckTable(Env& env, const std::string& table_dir, const std::string& name) {
  TableHealth h;
  h.name = name;
  h.path = table_dir;
  // Paths, sizes and row counts are all a check reads of the actions.
  auto snap = delta::LoadSnapshot(env, table_dir, std::nullopt, {.keep_actions = false});
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
  std::vector<Probe> probes = ProbeFiles(env, table_dir, snap->files);
  for (size_t i = 0; i < snap->files.size(); ++i) {
    const auto& f = snap->files[i];
    const Probe& probe = probes[i];
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
    if (probe.size < 0) {
      h.missing_files.push_back(f.path);
      footers_complete = false;
      continue;
    }
    if (f.size >= 0 && probe.size != f.size)
      h.size_mismatches.push_back(f.path + ": log says " + std::to_string(f.size) +
                                  " bytes, file has " + std::to_string(probe.size));
    if (!f.num_records) {
      const auto& md = *probe.footer_rows;
      if (md.ok())
        rows_footers += *md - dv;
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
