#include "backup/plan.h"

#include <sys/stat.h>

#include <algorithm>
#include <filesystem>
#include <functional>
#include <set>

#include "core/env.h"

namespace fs = std::filesystem;

namespace lakevault {

int64_t PlannedTable::Bytes() const {
  int64_t total = 0;
  for (const auto& f : files) total += f.size;
  return total;
}

int64_t BackupPlan::TotalBytes() const {
  int64_t total = 0;
  for (const auto& t : tables) total += t.Bytes();
  for (const auto& f : extra_files) total += f.size;
  return total;
}

size_t BackupPlan::TotalFiles() const {
  size_t total = extra_files.size();
  for (const auto& t : tables) total += t.files.size();
  return total;
}

namespace {

std::string Relative(const fs::path& path, const fs::path& root) {
  return path.lexically_relative(root).generic_string();
}

Result<PlannedFile> StatFile(const fs::path& path, const fs::path& root) {
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0) return ErrnoError("reading " + path.string(), errno);
  PlannedFile file;
  file.absolute_path = path.string();
  file.relative_path = Relative(path, root);
  file.mtime = st.st_mtime;
  file.mode = st.st_mode & 07777;
  if (S_ISLNK(st.st_mode)) {
    std::error_code ec;
    file.link_target = fs::read_symlink(path, ec).string();
    if (ec) return Error("reading symlink " + path.string() + ": " + ec.message());
    return file;
  }
  if (!S_ISREG(st.st_mode))
    return Error(path.string() + " is not a regular file (device, socket or fifo); remove it " +
                 "from the lake or the config");
  // Checked now rather than halfway through writing the archive.
  if (::access(path.c_str(), R_OK) != 0)
    return ErrnoError("cannot read " + path.string() + " (run as the lake's owner)", errno);
  file.size = st.st_size;
  return file;
}

// Every file below `dir`, sorted, symlinks kept as links (never followed out of the lake).
Status WalkFiles(const fs::path& dir, const fs::path& root, std::vector<PlannedFile>& files,
                 std::set<std::string>& directories) {
  std::vector<fs::path> entries;
  std::error_code ec;
  fs::directory_iterator it(dir, ec);
  if (ec) return Error("reading folder " + dir.string() + ": " + ec.message());
  for (const auto& entry : it) entries.push_back(entry.path());
  std::sort(entries.begin(), entries.end());
  directories.insert(Relative(dir, root));
  for (const auto& path : entries) {
    auto status = fs::symlink_status(path, ec);
    if (ec) return Error("reading " + path.string() + ": " + ec.message());
    if (fs::is_directory(status)) {
      LV_RETURN_IF_ERROR(WalkFiles(path, root, files, directories));
    } else {
      LV_ASSIGN_OR_RETURN(auto file, StatFile(path, root));
      files.push_back(std::move(file));
    }
  }
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

Result<BackupPlan> PlanBackup(const Config& config) {
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
    LV_RETURN_IF_ERROR(WalkFiles(dir, root, table.files, directories));
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
      LV_RETURN_IF_ERROR(WalkFiles(path, root, plan.extra_files, directories));
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
      LV_RETURN_IF_ERROR(WalkFiles(logs, root, log_files, directories));
      std::string own_log = config.log_file.empty() ? "" : config.Resolve(config.log_file);
      for (auto& f : log_files) {
        // Our own log is being written by this very run.
        if (f.absolute_path == own_log) continue;
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
