#include "check/check.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <deque>
#include <filesystem>
#include <memory>
#include <optional>
#include <ostream>
#include <thread>

#include "backup/plan.h"
#include "delta/delta.h"
#include "parquet/parquet.h"

namespace fs = std::filesystem;

namespace lakevault {

namespace {

// What the check finds in a range of live files; ranges are checked on threads of their own and
// their tallies joined in order, so no per-file record is kept (at 300,000 files one was 5 MB).
struct Tally {
  int64_t bytes = 0;
  int64_t rows_stats = 0, rows_footers = 0;
  bool stats_complete = true, footers_complete = true;
  std::vector<std::string> missing_files, size_mismatches, unreadable;

  void Join(Tally&& o) {
    bytes += o.bytes;
    rows_stats += o.rows_stats;
    rows_footers += o.rows_footers;
    stats_complete = stats_complete && o.stats_complete;
    footers_complete = footers_complete && o.footers_complete;
    auto append = [](std::vector<std::string>& to, std::vector<std::string>& from) {
      to.insert(to.end(), std::make_move_iterator(from.begin()),
                std::make_move_iterator(from.end()));
    };
    append(missing_files, o.missing_files);
    append(size_mismatches, o.size_mismatches);
    append(unreadable, o.unreadable);
  }
};

// Checks files[begin, end): a stat relative to an open handle on the parent folder, so the
// kernel walks the table's path once per folder instead of once per file (300,000 files share
// a few hundred folders). A path the handle cannot take is stat'ed whole, as before. Only files
// without stats are opened: their footer is the only other source of rows.
Tally CheckRange(Env& env, const std::string& table_dir, const delta::FileList& files, size_t begin,
                 size_t end) {
  Tally t;
  int dir_fd = -1;
  std::string dir_rel;
  bool dir_open = false;
  for (size_t i = begin; i < end; ++i) {
    const delta::LiveFile f = files[i];
    int64_t dv = f.dv ? f.dv->cardinality : 0;
    if (f.size > 0) t.bytes += f.size;
    if (f.num_records)
      t.rows_stats += *f.num_records - dv;
    else
      t.stats_complete = false;
    if (f.absolute) {
      if (!f.num_records) t.footers_complete = false;
      continue;
    }
    std::string full = table_dir + "/";
    full += f.path;
    auto slash = f.path.rfind('/');
    std::string_view parent = slash == std::string::npos ? "" : f.path.substr(0, slash);
    std::string base(f.path.substr(slash == std::string::npos ? 0 : slash + 1));
    if (!dir_open || parent != dir_rel) {
      if (dir_fd >= 0) ::close(dir_fd);
      std::string dir = table_dir;
      if (!parent.empty()) (dir += "/") += parent;
      dir_fd = ::open(dir.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
      dir_rel = parent;
      dir_open = true;
    }
    struct stat st;
    bool found = !base.empty() && dir_fd >= 0 && ::fstatat(dir_fd, base.c_str(), &st, 0) == 0;
    if (!found) found = ::stat(full.c_str(), &st) == 0;
    if (!found) {
      t.missing_files.emplace_back(f.path);
      t.footers_complete = false;
      continue;
    }
    if (f.size >= 0 && st.st_size != f.size)
      t.size_mismatches.push_back(std::string(f.path) + ": log says " + std::to_string(f.size) +
                                  " bytes, file has " + std::to_string(st.st_size));
    if (f.num_records) {
      t.rows_footers += *f.num_records - dv;
      continue;
    }
    auto md = parquet::ReadFileMetadata(env, full);
    if (md.ok()) {
      t.rows_footers += md->num_rows - dv;
    } else {
      t.unreadable.push_back(std::string(f.path) + ": " + md.message());
      t.footers_complete = false;
    }
  }
  if (dir_fd >= 0) ::close(dir_fd);
  return t;
}

// Checks every file, on up to four threads: stat is a system call per file, and a big table's
// check is mostly those calls once its log is read.
Tally CheckFiles(Env& env, const std::string& table_dir, const delta::FileList& files) {
  size_t threads = std::clamp<size_t>(std::thread::hardware_concurrency(), 1, 4);
  if (files.size() < 4096) threads = 1;
  size_t chunk = (files.size() + threads - 1) / threads;
  std::vector<Tally> tallies(threads);
  std::vector<std::thread> pool;
  for (size_t t = 1; t < threads; ++t) {
    size_t b = t * chunk, e = std::min(files.size(), b + chunk);
    if (b < e)
      pool.emplace_back([&, t, b, e] { tallies[t] = CheckRange(env, table_dir, files, b, e); });
  }
  tallies[0] = CheckRange(env, table_dir, files, 0, std::min(files.size(), chunk));
  for (auto& th : pool) th.join();
  for (size_t t = 1; t < threads; ++t) tallies[0].Join(std::move(tallies[t]));
  return std::move(tallies[0]);
}

}  // namespace

bool CheckReport::healthy() const {
  for (const auto& t : tables)
    if (!t.healthy) return false;
  return !tables.empty();
}

TableHealth CheckTable(Env& env, const std::string& table_dir, const std::string& name,
                       size_t max_replay_bytes) {
  TableHealth h;
  h.name = name;
  h.path = table_dir;
  Tally t;
  bool whole = true;  // one replay held the whole table
  // Paths, sizes and row counts are all a check reads of the actions.
  Status read = delta::ForEachSnapshotShare(
      env, table_dir, std::nullopt, max_replay_bytes,
      [&](delta::Snapshot& snap, uint32_t, uint32_t parts) -> Status {
        whole = parts == 1;
        h.version = snap.version;
        h.checkpoint_version = snap.checkpoint_version;
        h.warnings = std::move(snap.warnings);
        for (auto& p : snap.AbsolutePaths()) h.absolute_paths.push_back(std::move(p));
        const delta::FileList& files = snap.light_files;
        h.live_files += static_cast<int64_t>(files.size());
        t.Join(CheckFiles(env, table_dir, files));
        for (const delta::LiveFile f : files)
          if (f.dv && f.dv->storage_type == "u" && !fs::exists(fs::path(table_dir) / f.dv->file))
            t.missing_files.push_back(f.dv->file);
        return Status::Ok();
      });
  if (!read.ok()) {
    h.unreadable.push_back(read.message());
    return h;
  }
  if (!whole) {
    // Shares come in hash order: the lists are given in path order, as from one replay.
    for (auto* list : {&t.missing_files, &t.size_mismatches, &t.unreadable, &h.absolute_paths})
      std::sort(list->begin(), list->end());
  }
  h.bytes = t.bytes;
  h.missing_files = std::move(t.missing_files);
  h.size_mismatches = std::move(t.size_mismatches);
  h.unreadable = std::move(t.unreadable);
  if (t.stats_complete) {
    h.rows = t.rows_stats;
    h.rows_source = "stats";
  } else if (t.footers_complete) {
    h.rows = t.rows_footers;
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

// The text CheckReportToJson(report).dump(2) gives, written as it goes: a table whose files are
// all missing lists 300,000 paths, and as a document and its dump they were held twice more.
void WriteCheckReportJson(const CheckReport& report, std::ostream& out) {
  auto strings = [&out](const std::vector<std::string>& list) {
    if (list.empty()) {
      out << "[]";
      return;
    }
    out << "[\n";
    for (size_t i = 0; i < list.size(); ++i)
      out << "        " << nlohmann::json(list[i]).dump() << (i + 1 < list.size() ? ",\n" : "\n");
    out << "      ]";
  };
  // Keys in the order a dump gives them: sorted.
  out << "{\n  \"healthy\": " << (report.healthy() ? "true" : "false") << ",\n  \"tables\": ";
  if (report.tables.empty()) out << "[]";
  for (size_t ti = 0; ti < report.tables.size(); ++ti) {
    const TableHealth& t = report.tables[ti];
    out << (ti == 0 ? "[\n" : "") << "    {\n      \"absolute_paths\": ";
    strings(t.absolute_paths);
    out << ",\n      \"bytes\": " << t.bytes
        << ",\n      \"checkpoint_version\": " << t.checkpoint_version
        << ",\n      \"healthy\": " << (t.healthy ? "true" : "false")
        << ",\n      \"live_files\": " << t.live_files << ",\n      \"missing_files\": ";
    strings(t.missing_files);
    out << ",\n      \"name\": " << nlohmann::json(t.name).dump()
        << ",\n      \"path\": " << nlohmann::json(t.path).dump()
        << ",\n      \"rows\": " << (t.rows ? std::to_string(*t.rows) : "null")
        << ",\n      \"rows_source\": " << nlohmann::json(t.rows_source).dump()
        << ",\n      \"size_mismatches\": ";
    strings(t.size_mismatches);
    out << ",\n      \"unreadable\": ";
    strings(t.unreadable);
    out << ",\n      \"version\": " << t.version << ",\n      \"warnings\": ";
    strings(t.warnings);
    out << "\n    }" << (ti + 1 < report.tables.size() ? ",\n" : "\n  ]");
  }
  out << "\n}";
}

}  // namespace lakevault
