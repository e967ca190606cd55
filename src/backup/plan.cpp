#include "backup/plan.h"

#include <dirent.h>
#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <functional>
#include <optional>
#include <set>
#include <string_view>

#include "core/buffer.h"
#include "core/env.h"
#include "core/folder.h"
#include "delta/delta.h"
#include "parquet/parquet.h"

namespace fs = std::filesystem;

namespace lakevault {

int64_t PlannedTable::Bytes() const {
  int64_t total = files.Bytes();
  for (const auto& s : shares) total += s.files.Bytes();
  return total;
}

size_t PlannedTable::FileCount() const {
  size_t total = files.size();
  for (const auto& s : shares) total += s.files.size();
  return total;
}

Status PlannedTable::ForEachFile(Env& env,
                                 const std::function<Status(const PlannedFile&)>& visit) const {
  LV_RETURN_IF_ERROR(files.ForEach(env, visit));
  for (const auto& s : shares) LV_RETURN_IF_ERROR(s.files.ForEach(env, visit));
  return Status::Ok();
}

std::string AbsolutePath(const BackupPlan& plan, const PlannedFile& file) {
  return (fs::path(plan.root) / file.relative_path).string();
}

int64_t BackupPlan::TotalBytes() const {
  int64_t total = 0;
  for (const auto& t : tables) total += t.Bytes();
  for (const auto& f : extra_files) total += f.size;
  return total;
}

size_t BackupPlan::TotalFiles() const {
  size_t total = extra_files.size();
  for (const auto& t : tables) total += t.FileCount();
  return total;
}

namespace {

// Whether `rest` is a relative path that lexically_relative would give back unchanged: no
// empty, "." or ".." component.
bool IsPlainRelative(std::string_view rest) {
  if (rest.empty()) return false;
  for (size_t start = 0; start <= rest.size();) {
    size_t end = rest.find('/', start);
    if (end == std::string_view::npos) end = rest.size();
    std::string_view part = rest.substr(start, end - start);
    if (part.empty() || part == "." || part == "..") return false;
    start = end + 1;
  }
  return true;
}

// `path` relative to `root`, as lexically_relative gives it. Nearly every path planned is
// `root` / a plain relative path, which is cut off by text: lexically_relative, which splits
// both into components, was a tenth of planning a lake of 1,300 files.
std::string Relative(const fs::path& path, const fs::path& root) {
  const std::string& p = path.native();
  const std::string& r = root.native();
  if (!r.empty() && r.back() != '/' && p.size() > r.size() + 1 && p[r.size()] == '/' &&
      p.compare(0, r.size(), r) == 0) {
    std::string_view rest(p.data() + r.size() + 1, p.size() - r.size() - 1);
    if (IsPlainRelative(rest)) return std::string(rest);
  }
  return path.lexically_relative(root).generic_string();
}

// `vanished` (optional) tells a path that does not exist from other failures.
Result<PlannedFile> StatFile(const fs::path& path, const fs::path& root, bool* vanished = nullptr) {
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0) {
    if (vanished) *vanished = errno == ENOENT;
    return ErrnoError("reading " + path.string(), errno);
  }
  PlannedFile file;
  file.relative_path = Relative(path, root);
  file.mtime = st.st_mtime;
  file.mode = st.st_mode & 07777;
  if (S_ISLNK(st.st_mode)) {
    std::error_code ec;
    file.link_target = fs::read_symlink(path, ec).string();
    if (ec) {
      if (vanished) *vanished = ec == std::errc::no_such_file_or_directory;
      return Error("reading symlink " + path.string() + ": " + ec.message());
    }
    return file;
  }
  if (!S_ISREG(st.st_mode))
    return Error(path.string() + " is not a regular file (device, socket or fifo); remove it " +
                 "from the lake or the config");
  // Checked now rather than halfway through writing the archive. The owner with the read bit
  // can read it (neither ACLs nor the group and other bits apply to the owner), which spares
  // most files a second walk of their path (a fifth of planning a lake of 1,300 files).
  static const uid_t uid = ::getuid() == ::geteuid() ? ::getuid() : static_cast<uid_t>(-1);
  const bool owner_reads = st.st_uid == uid && (st.st_mode & S_IRUSR);
  if (!owner_reads && ::access(path.c_str(), R_OK) != 0) {
    int err = errno;
    // A writer's temporary file renamed away between the lstat and this call is gone too.
    if (vanished) *vanished = err == ENOENT;
    return ErrnoError("cannot read " + path.string() + " (run as the lake's owner)", err);
  }
  file.size = st.st_size;
  return file;
}

// Every file below `dir`, sorted, symlinks kept as links (never followed out of the lake), handed
// to `add` one by one: a table's other files may be as many as its live ones, and are not
// gathered in a vector of their own. Files `skip` names are left out without a stat: a table's
// data files were stat'ed already when its snapshot named them, and a lake of small files is
// mostly such calls. Entry types come from the directory listing where the file system gives them.
Status WalkFiles(const fs::path& dir, const fs::path& root,
                 const std::function<void(PlannedFile&&)>& add, std::set<std::string>& directories,
                 bool tolerate_vanish = false,
                 const std::function<bool(const fs::path&)>& skip = nullptr) {
  std::vector<std::pair<fs::path, fs::file_type>> entries;
  const int err = ForEachFolderEntry(dir, [&](const char* name, unsigned char d_type, int dir_fd) {
    fs::file_type type = d_type == DT_LNK   ? fs::file_type::symlink
                         : d_type == DT_DIR ? fs::file_type::directory
                                            : fs::file_type::regular;
    if (d_type == DT_UNKNOWN) {  // a file system that does not give types in listings
      struct stat st;
      type = ::fstatat(dir_fd, name, &st, AT_SYMLINK_NOFOLLOW) != 0
                 ? fs::file_type::none  // vanished or unreadable: StatFile reports it
             : S_ISLNK(st.st_mode) ? fs::file_type::symlink
             : S_ISDIR(st.st_mode) ? fs::file_type::directory
                                   : fs::file_type::regular;
    }
    fs::path path = dir / name;
    // Left out while listing, not after: a folder may hold a million files, most of them skipped.
    if (type != fs::file_type::directory && skip && skip(path)) return;
    entries.emplace_back(std::move(path), type);
  });
  if (err != 0) {
    if (tolerate_vanish && err == ENOENT && entries.empty()) return Status::Ok();
    return Error("reading folder " + dir.string() + ": " + std::strerror(err));
  }
  std::sort(entries.begin(), entries.end());
  directories.insert(Relative(dir, root));
  for (const auto& [path, type] : entries) {
    if (type == fs::file_type::directory) {
      LV_RETURN_IF_ERROR(WalkFiles(path, root, add, directories, tolerate_vanish, skip));
      continue;
    }
    bool vanished = false;
    auto file = StatFile(path, root, &vanished);
    // A writer's staging file may be renamed away between listing and stat.
    if (!file.ok() && tolerate_vanish && vanished) continue;
    if (!file.ok()) return file.status();
    add(std::move(file).value());
  }
  return Status::Ok();
}

// Rows of the snapshot: from stats, else from the data files' Parquet footers.
std::optional<int64_t> CountRows(const delta::Snapshot& snap, const fs::path& dir) {
  if (auto rows = snap.RowsFromStats()) return rows;
  int64_t rows = 0;
  for (const delta::LiveFile f : snap.light_files) {
    if (f.num_records) {
      rows += *f.num_records;
    } else {
      if (f.absolute) return std::nullopt;
      auto md = parquet::ReadFileMetadata(Env::Default(), (dir / f.path).string());
      if (!md.ok()) return std::nullopt;
      rows += md->num_rows;
    }
    if (f.dv) rows -= f.dv->cardinality;
  }
  return rows;
}

// The files a snapshot (or share `part` of `parts` of it) needs besides its live data files:
// their deletion vector files, and the change data files of the commits replayed. Unsorted.
std::vector<std::string> OtherRequiredFiles(delta::Snapshot& snap) {
  std::vector<std::string> others = std::move(snap.cdc_files);
  for (const delta::LiveFile f : snap.light_files)
    if (f.dv && !f.dv->file.empty() && f.dv->storage_type == "u") others.push_back(f.dv->file);
  return others;
}

// Plans into `files` the live data files of `listed` (a light snapshot's, or one share's), the
// `others` it needs (OtherRequiredFiles), and (unless snapshot_only) whatever else the table
// folder holds in share `part` of `parts` by delta::ShareOf, leaving out `taken` (the log
// entries planned already, relative to the table). Files the log references but that are absent
// go to table.missing.
Status PlanSnapshotFiles(const fs::path& dir, const fs::path& root, const PlanOptions& options,
                         const std::set<std::string, std::less<>>& taken, delta::FileList list,
                         std::vector<std::string> others, uint32_t part, uint32_t parts,
                         PlannedTable& table, PlannedFiles& files,
                         std::set<std::string>& directories) {
  // The live data files, sorted by path in the snapshot's own list, which the plan keeps as the
  // store of their paths (a copy of 300,000 paths was as large as the list), and the few others,
  // sorted here.
  std::sort(others.begin(), others.end());
  others.erase(std::unique(others.begin(), others.end()), others.end());
  files.KeepListedPaths(std::move(list), table.relative_path);
  const delta::FileList& listed = files.listed();
  // Which needed files were planned, for the walk of the table folder below.
  std::vector<char> listed_taken(listed.size(), 0), others_taken(others.size(), 0);
  size_t li = 0, oi = 0;
  std::optional<std::string_view> previous;
  while (true) {
    while (li < listed.size() && listed[li].absolute) ++li;  // see AbsolutePaths
    const bool from_list =
        li < listed.size() && (oi == others.size() || listed[li].path <= others[oi]);
    if (!from_list && oi == others.size()) break;
    const size_t index = from_list ? li++ : oi++;
    const std::string_view rel = from_list ? listed[index].path : std::string_view(others[index]);
    // The two sequences merged are sorted, so a path met twice (live with two deletion vectors,
    // or both listed and another file's deletion vector) comes twice in a row: planned once.
    if (previous == rel) continue;
    previous = rel;
    if (taken.count(rel)) continue;
    fs::path p = dir / rel;
    bool vanished = false;
    auto file = StatFile(p, root, &vanished);
    if (!file.ok() && vanished) {
      table.missing.push_back(Relative(p, root));
      continue;
    }
    if (!file.ok()) return file.status();
    for (fs::path d = p.parent_path(); d != dir && d.has_parent_path(); d = d.parent_path())
      directories.insert(Relative(d, root));
    if (from_list) {
      listed_taken[index] = 1;
      files.AddListed(static_cast<uint32_t>(index), *file);
    } else {
      others_taken[index] = 1;
      files.Add(*file);
    }
  }
  if (!table.missing.empty() && !options.allow_missing) return Status::Ok();  // see PlanTable
  if (!options.snapshot_only) {
    auto is_taken = [&](const std::string& rel) {
      if (taken.count(rel)) return true;
      // The first listed file of that path is the one the loop above planned, if any.
      size_t lo = listed.LowerBound(rel);
      if (lo < listed.size() && listed[lo].path == rel && listed_taken[lo]) return true;
      auto it = std::lower_bound(others.begin(), others.end(), rel);
      return it != others.end() && *it == rel && others_taken[it - others.begin()];
    };
    std::set<std::string> rest_dirs;
    auto already_or_not_this_version = [&](const fs::path& path) {
      std::string rel = Relative(path, dir);
      // Another share's: its walk takes it.
      if (parts > 1 && delta::ShareOf(rel, parts) != part) return true;
      if (is_taken(rel)) return true;
      if (rel.rfind("_delta_log/", 0) != 0) return false;
      // Log entries past the pinned version are not this version; files the protocol does not
      // name (statistics folders, writers' leftovers) are kept, as everything else is.
      auto kind = delta::ClassifyLogName(rel.substr(11));
      return kind.version >= 0 || kind.kind != delta::LogFileKind::kOther;
    };
    auto add_rest = [&](PlannedFile&& f) {
      f.may_vanish = true;
      files.Add(f);
    };
    LV_RETURN_IF_ERROR(WalkFiles(dir, root, add_rest, rest_dirs, /*tolerate_vanish=*/true,
                                 already_or_not_this_version));
    for (const auto& d : rest_dirs) directories.insert(d);
  }
  files.Sort();
  return Status::Ok();
}

// Plans one table at its pinned version: the log up to it, every file it references, and
// (unless snapshot_only) whatever else the table folder holds. A table whose live files do not
// fit options.max_table_replay_bytes is planned in shares (PlannedTable::shares).
Status PlanTable(const fs::path& dir, const fs::path& root, const PlanOptions& options,
                 size_t index, PlannedTable& table, std::set<std::string>& directories,
                 std::vector<std::string>& warnings) {
  LV_ASSIGN_OR_RETURN(auto first, delta::ListLog(dir.string()));
  int64_t pinned = delta::LatestVersion(first);
  if (pinned < 0) return Error("table " + table.name + " has no commits in its Delta log");
  // A listing taken while a writer renames its commit into place may miss that one entry (POSIX
  // readdir makes no promise for entries renamed meanwhile). Every commit up to the pinned
  // version was in place before the first listing ended, so a second listing holds them all.
  LV_ASSIGN_OR_RETURN(auto log, delta::ListLog(dir.string()));
  table.version = pinned;
  spdlog::debug(
      "table {} pinned at version {}: a writer committing meanwhile is fine, its later "
      "commits and files are not part of this version and are left out",
      table.name, pinned);

  // Relative to the table folder: the log entries taken, which the snapshot's files skip below.
  std::set<std::string, std::less<>> taken;
  directories.insert(Relative(dir, root));
  directories.insert(Relative(dir / "_delta_log", root));
  for (const auto& lf : delta::LogFilesUpTo(log, pinned)) {
    fs::path p = dir / "_delta_log" / lf.name;
    auto file = StatFile(p, root);
    if (!file.ok())
      return Error("table " + table.name + ": log entry " + lf.name + ": " + file.message());
    if (lf.kind == delta::LogFileKind::kSidecar)
      directories.insert(Relative(p.parent_path(), root));
    taken.insert("_delta_log/" + lf.name);
    table.files.Add(*file);
  }
  // _last_checkpoint is rewritten in place by writers: read it once now, and keep it only if it
  // does not point past the pinned version (readers fall back to listing without it).
  fs::path hint_path = dir / "_delta_log" / "_last_checkpoint";
  if (fs::exists(hint_path)) {
    auto text = ReadWholeFile(Env::Default(), hint_path.string());
    if (text.ok()) {
      auto hint = nlohmann::json::parse(*text, nullptr, false);
      if (hint.is_object() && hint.contains("version") && hint["version"].is_number_integer() &&
          hint["version"].get<int64_t>() <= pinned) {
        auto file = StatFile(hint_path, root);
        if (file.ok()) {
          file->inline_content = *text;
          file->size = static_cast<int64_t>(text->size());
          table.files.Add(*file);
        }
      }
    }
    taken.insert("_delta_log/_last_checkpoint");
  }

  auto unreadable = [&](const Status& s) {
    return Error("table " + table.name + ": version " + std::to_string(pinned) +
                 " is unreadable: " + s.message());
  };
  // The snapshot, whole when it fits, else in shares. A share's files need the deletion vector
  // files of its share by path, which live files of any share may name: a first walk through
  // the shares gathers those (and the row count), a second plans each share.
  std::vector<std::pair<uint32_t, uint32_t>> shares;  // (part, parts) of the first walk
  std::vector<std::string> others;                    // every share's OtherRequiredFiles
  std::optional<int64_t> rows = 0;
  Status planned = Status::Ok();
  Status read = delta::ForEachSnapshotShare(
      Env::Default(), dir.string(), log, pinned, options.max_table_replay_bytes,
      [&](delta::Snapshot& snap, uint32_t part, uint32_t parts) -> Status {
        // The log's decoding freed as much as the snapshot holds, much of it in the decoding
        // thread's arena, where glibc keeps it: given back now, it is not added to what planning
        // takes next (about 100 bytes a live file).
        if (static_cast<int64_t>(snap.light_files.size()) * 100 >= kTrimFreedBytes) TrimMemory();
        if (shares.empty())
          for (const auto& w : snap.warnings) warnings.push_back("table " + table.name + ": " + w);
        auto share_rows = CountRows(snap, dir);
        rows = rows && share_rows ? std::optional<int64_t>(*rows + *share_rows) : std::nullopt;
        for (auto& a : snap.AbsolutePaths()) table.absolute_paths.push_back(std::move(a));
        std::vector<std::string> mine = OtherRequiredFiles(snap);
        shares.emplace_back(part, parts);
        if (parts == 1) {
          delta::FileList list = std::move(snap.light_files);
          // The rest of the snapshot is not needed: given back before the files are stat'ed.
          snap = delta::Snapshot();
          planned = PlanSnapshotFiles(dir, root, options, taken, std::move(list), std::move(mine),
                                      0, 1, table, table.files, directories);
          return planned;
        }
        others.insert(others.end(), std::make_move_iterator(mine.begin()),
                      std::make_move_iterator(mine.end()));
        return Status::Ok();
      });
  if (!planned.ok()) return planned;
  if (!read.ok()) return unreadable(read);
  table.rows = rows;
  std::sort(table.absolute_paths.begin(), table.absolute_paths.end());
  for (const auto& a : table.absolute_paths)
    warnings.push_back("table " + table.name + " references " + a +
                       " outside the table folder; it is not in the backup");
  // One replay held the whole table (planned into table.files as it was read), or it was split.
  const bool whole = shares.size() == 1 && shares[0].second == 1;
  if (!whole) {
    std::sort(others.begin(), others.end());
    others.erase(std::unique(others.begin(), others.end()), others.end());
    spdlog::debug("table {} is planned in {} shares of its files", table.name, shares.size());
    for (size_t s = 0; s < shares.size(); ++s) {
      const auto [part, parts] = shares[s];
      auto snap = delta::LoadSnapshot(Env::Default(), dir.string(), log, pinned,
                                      {.keep_actions = false, .part = part, .parts = parts});
      if (!snap.ok()) return unreadable(snap.status());
      delta::FileList list = std::move(snap->light_files);
      *snap = delta::Snapshot();
      TrimMemory();
      std::vector<std::string> mine;
      for (const auto& o : others)
        if (delta::ShareOf(o, parts) == part) mine.push_back(o);
      PlannedShare share{part, parts, {}};
      LV_RETURN_IF_ERROR(PlanSnapshotFiles(dir, root, options, taken, std::move(list),
                                           std::move(mine), part, parts, table, share.files,
                                           directories));
      // The backup fails: the other shares are read only for the count of missing files.
      if (!table.missing.empty() && !options.allow_missing) continue;
      if (options.on_share_planned)
        LV_RETURN_IF_ERROR(options.on_share_planned(index, table, s, share.files));
      table.shares.push_back(std::move(share));
    }
  }
  // Share by share they were found in share order.
  if (!whole) std::sort(table.missing.begin(), table.missing.end());
  if (!table.missing.empty() && !options.allow_missing) {
    std::string list;
    for (size_t i = 0; i < table.missing.size() && i < 5; ++i)
      list += (i ? ", " : "") + table.missing[i];
    if (table.missing.size() > 5)
      list += ", ... (" + std::to_string(table.missing.size()) + " in all)";
    return Error("table " + table.name + " version " + std::to_string(pinned) +
                 " references files that are missing: " + list +
                 " (--allow-missing takes what exists and marks the backup incomplete)");
  }
  table.files.Sort();
  return Status::Ok();
}

}  // namespace

Result<std::vector<std::string>> FindDeltaTables(const std::string& lake_dir) {
  std::vector<std::string> tables;
  std::error_code ec;
  std::function<Status(const fs::path&)> visit = [&](const fs::path& dir) -> Status {
    if (fs::is_directory(dir / "_delta_log", ec)) {
      tables.push_back(Relative(dir, lake_dir));
      return Status::Ok();
    }
    fs::directory_iterator it(dir, ec);
    if (ec) return Error("reading folder " + dir.string() + ": " + ec.message());
    std::vector<fs::path> children;
    for (const auto& entry : it)
      if (entry.is_directory(ec) && !entry.is_symlink(ec)) children.push_back(entry.path());
    std::sort(children.begin(), children.end());
    for (const auto& child : children) LV_RETURN_IF_ERROR(visit(child));
    return Status::Ok();
  };
  LV_RETURN_IF_ERROR(visit(fs::path(lake_dir)));
  for (auto& t : tables)
    if (t == ".") t = fs::path(lake_dir).filename().string();
  return tables;
}

Result<BackupPlan> PlanBackup(const Config& config, const PlanOptions& options) {
  BackupPlan plan;
  plan.root = config.root;
  fs::path root(config.root);
  fs::path lake(config.LakeDir());
  plan.lake_relative = Relative(lake, root);
  std::error_code ec;
  if (!fs::exists(lake, ec))
    return Error("lake folder " + lake.string() +
                 " does not exist (run in the project root, or set `lake:` in lakevault.yaml)");
  if (!fs::is_directory(lake, ec)) return Error("lake " + lake.string() + " is not a folder");
  LV_RETURN_IF_ERROR(CheckAccess(lake.string(), false, "lake"));
  if (plan.lake_relative.rfind("..", 0) == 0)
    return Error("lake folder " + lake.string() + " is outside the project root " + config.root);

  std::vector<std::string> names;
  if (config.tables.empty()) {
    LV_ASSIGN_OR_RETURN(names, FindDeltaTables(lake.string()));
    if (names.empty())
      return Error("no Delta table (a folder with _delta_log/) under " + lake.string());
  } else {
    names = config.tables;
  }
  for (const auto& name : names)
    if (fs::is_directory(lake / name / "_delta_log", ec))
      LV_RETURN_IF_ERROR(CheckAccess((lake / name / "_delta_log").string(), false, "table log"));
  std::set<std::string> directories;
  for (fs::path p = lake; p != root && p.has_parent_path() && p != p.parent_path();
       p = p.parent_path())
    directories.insert(Relative(p, root));
  for (const auto& name : names) {
    fs::path dir = lake / name;
    if (!fs::is_directory(dir / "_delta_log", ec))
      return Error("table " + name + " has no _delta_log/ folder in " + dir.string());
    PlannedTable table;
    table.name = name;
    table.relative_path = Relative(dir, root);
    LV_RETURN_IF_ERROR(
        PlanTable(dir, root, options, plan.tables.size(), table, directories, plan.warnings));
    if (options.on_table_planned)
      LV_RETURN_IF_ERROR(options.on_table_planned(plan.tables.size(), table));
    plan.tables.push_back(std::move(table));
  }

  // Extra files: the defaults are taken only when present; files named in the config must exist.
  for (const auto& f : config.files) {
    fs::path path(config.Resolve(f));
    if (!fs::exists(fs::symlink_status(path, ec))) {
      if (config.files_explicit)
        return Error("configured file " + f + " does not exist (fix `files:` in " +
                     (config.config_file.empty() ? "lakevault.yaml" : config.config_file) + ")");
      continue;
    }
    if (Relative(path, root).rfind("..", 0) == 0)
      return Error("file " + f + " is outside the project root " + config.root);
    if (fs::is_directory(path, ec)) {
      auto add = [&](PlannedFile&& file) { plan.extra_files.push_back(std::move(file)); };
      LV_RETURN_IF_ERROR(WalkFiles(path, root, add, directories));
      continue;
    }
    LV_ASSIGN_OR_RETURN(auto file, StatFile(path, root));
    file.mutable_content = true;
    for (fs::path p = path.parent_path(); p != root && p.has_parent_path() && p != p.parent_path();
         p = p.parent_path())
      directories.insert(Relative(p, root));
    plan.extra_files.push_back(std::move(file));
  }
  if (config.logs_include) {
    fs::path logs(config.Resolve(config.logs_path));
    if (fs::is_directory(logs, ec)) {
      std::vector<PlannedFile> log_files;
      auto add = [&](PlannedFile&& file) { log_files.push_back(std::move(file)); };
      LV_RETURN_IF_ERROR(WalkFiles(logs, root, add, directories));
      std::string own_log = config.log_file.empty() ? "" : config.Resolve(config.log_file);
      for (auto& f : log_files) {
        // Our own log is being written by this very run.
        if (!own_log.empty() &&
            fs::path(own_log).lexically_normal() == (root / f.relative_path).lexically_normal())
          continue;
        f.mutable_content = true;
        plan.extra_files.push_back(std::move(f));
      }
    } else {
      plan.warnings.push_back("logs folder " + logs.string() + " does not exist; no logs taken");
    }
  }
  directories.erase(".");
  directories.erase("");
  plan.directories.assign(directories.begin(), directories.end());  // sorted: parents first
  return plan;
}

}  // namespace lakevault
