#include "backup/backup.h"

#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <thread>

#include "archive/archive.h"
#include "core/lock.h"
#include "core/time.h"
#include "crypto/sha256.h"
#include "manifest/catalog.h"
#include "verify/verify.h"

namespace fs = std::filesystem;

namespace lakevault {

const char* LakevaultVersion() { return "0.1.0"; }

std::string BackupDirFor(const Config& config, const BackupOptions& options) {
  if (options.backup_dir) return fs::absolute(*options.backup_dir).lexically_normal().string();
  return config.BackupDir();
}

namespace {

// Reads at most `limit` bytes: a log or config file that grows while we read it is taken as
// it was when planned.
class PrefixFile final : public SequentialFile {
 public:
  PrefixFile(std::unique_ptr<SequentialFile> base, int64_t limit)
      : base_(std::move(base)), remaining_(limit) {}
  Result<size_t> Read(void* buffer, size_t size) override {
    if (remaining_ <= 0) return size_t{0};
    size_t want = std::min<size_t>(size, static_cast<size_t>(remaining_));
    LV_ASSIGN_OR_RETURN(size_t n, base_->Read(buffer, want));
    remaining_ -= static_cast<int64_t>(n);
    return n;
  }
  const std::string& path() const override { return base_->path(); }

 private:
  std::unique_ptr<SequentialFile> base_;
  int64_t remaining_;
};

Status EnsureBackupDir(const std::string& dir) {
  std::error_code ec;
  if (fs::is_directory(dir, ec)) return Status::Ok();
  fs::create_directories(dir, ec);
  if (ec) return Error("creating backup folder " + dir + ": " + ec.message());
  // Archives hold .env secrets: only the owner may list or read them.
  ::chmod(dir.c_str(), 0700);
  return Status::Ok();
}

// Picks a backup id for `now` that no file in `dir` uses yet. Two backups in the same second
// never share a name: the second waits for the clock to move on.
std::string ChooseId(const std::string& dir) {
  while (true) {
    auto now = Clock::now();
    std::string id = "backup_" + FormatCompactStamp(now);
    bool taken = false;
    for (const auto& name : BackupFileNames(dir, id))
      if (fs::exists(fs::symlink_status(name))) taken = true;
    if (!taken) return id;
    auto next = std::chrono::time_point_cast<std::chrono::seconds>(now) + std::chrono::seconds(1);
    std::this_thread::sleep_until(next + std::chrono::milliseconds(5));
  }
}

// Temporary files of runs that died (we hold the lock, so none of them is still being written).
void RemoveStaleTemporaries(Env& env, const std::string& dir) {
  std::error_code ec;
  for (const auto& item : fs::directory_iterator(dir, ec)) {
    std::string name = item.path().filename().string();
    if (name.rfind(".backup_", 0) == 0 && name.size() > 4 &&
        name.compare(name.size() - 4, 4, ".tmp") == 0) {
      spdlog::info("removing {} left by an interrupted run", name);
      env.RemoveFile(item.path().string());
    }
  }
}

Status AddPlannedFile(Env& env, ArchiveWriter& writer, const PlannedFile& file,
                      const std::string& backup_id, Manifest& manifest) {
  ArchiveEntry entry;
  entry.path = file.relative_path;
  entry.size = file.size;
  entry.mode = file.mode;
  entry.mtime = file.mtime;
  ManifestFile record;
  record.path = file.relative_path;
  record.backup = backup_id;
  record.mtime = file.mtime;
  record.mode = file.mode;
  if (!file.link_target.empty()) {
    entry.link_target = file.link_target;
    record.link = file.link_target;
    LV_RETURN_IF_ERROR(writer.AddSymlink(entry));
    manifest.files.push_back(std::move(record));
    return Status::Ok();
  }
  if (file.inline_content) {
    entry.size = static_cast<int64_t>(file.inline_content->size());
    LV_RETURN_IF_ERROR(writer.AddBytes(entry, *file.inline_content));
    record.size = entry.size;
    record.sha256 = Sha256Hex(*file.inline_content);
    manifest.files.push_back(std::move(record));
    return Status::Ok();
  }
  auto source = env.NewSequentialFile(file.absolute_path);
  if (!source.ok()) return source.status();
  std::unique_ptr<SequentialFile> input = std::move(source).value();
  if (file.mutable_content) input = std::make_unique<PrefixFile>(std::move(input), file.size);
  Sha256 hash;
  LV_RETURN_IF_ERROR(writer.AddFile(entry, *input, &hash));
  record.size = file.size;
  record.sha256 = hash.HexDigest();
  manifest.files.push_back(std::move(record));
  return Status::Ok();
}

}  // namespace

Result<BackupOutcome> RunBackup(const Config& config, const BackupOptions& options, Env& env) {
  auto started = std::chrono::steady_clock::now();
  BackupOutcome outcome;
  LV_ASSIGN_OR_RETURN(outcome.plan, PlanBackup(config));
  const BackupPlan& plan = outcome.plan;
  for (const auto& w : plan.warnings) spdlog::warn("{}", w);
  if (options.dry_run) return outcome;

  const std::string dir = BackupDirFor(config, options);
  const Compression compression = options.compression.value_or(config.compression);
  LV_RETURN_IF_ERROR(EnsureBackupDir(dir));
  LV_ASSIGN_OR_RETURN(auto lock, FileLock::Acquire((fs::path(dir) / ".lakevault.lock").string(),
                                                   "backup or prune"));
  RemoveStaleTemporaries(env, dir);

  Manifest& manifest = outcome.manifest;
  manifest.id = ChooseId(dir);
  manifest.created = FormatIso8601(Clock::now());
  manifest.kind = "full";
  manifest.source_root = config.root;
  manifest.lake = plan.lake_relative;
  manifest.compression = CompressionName(compression);
  manifest.archive = manifest.id + ArchiveExtension(compression);
  manifest.tool_version = LakevaultVersion();
  spdlog::info("backup {}: {} tables, {} files, {} bytes -> {}", manifest.id, plan.tables.size(),
               plan.TotalFiles(), plan.TotalBytes(), (fs::path(dir) / manifest.archive).string());

  const std::string final_path = (fs::path(dir) / manifest.archive).string();
  const std::string tmp_path = (fs::path(dir) / ("." + manifest.archive + ".tmp")).string();
  const std::string manifest_sidecar = ManifestSidecarPath(dir, manifest.id);
  const std::string sha_sidecar = Sha256SidecarPath(final_path);
  auto cleanup = [&]() {
    env.RemoveFile(tmp_path);
    env.RemoveFile(manifest_sidecar);
    env.RemoveFile(sha_sidecar);
    env.RemoveFile(VerifySidecarPath(dir, manifest.id));
  };

  auto write = [&]() -> Status {
    LV_ASSIGN_OR_RETURN(auto writer, ArchiveWriter::Create(env, tmp_path, compression));
    for (const auto& d : plan.directories) {
      ArchiveEntry entry;
      entry.path = d + "/";
      entry.mode = 0755;
      struct stat st;
      if (::stat((fs::path(config.root) / d).c_str(), &st) == 0) {
        entry.mode = st.st_mode & 07777;
        entry.mtime = st.st_mtime;
      }
      LV_RETURN_IF_ERROR(writer->AddDirectory(entry));
    }
    for (const auto& table : plan.tables) {
      ManifestTable record;
      record.name = table.name;
      record.path = table.relative_path;
      record.version = table.version;
      record.rows = table.rows;
      record.files = static_cast<int64_t>(table.files.size());
      record.bytes = table.Bytes();
      manifest.tables.push_back(record);
      for (const auto& m : table.missing) manifest.missing.push_back(m);
      for (const auto& file : table.files)
        LV_RETURN_IF_ERROR(AddPlannedFile(env, *writer, file, manifest.id, manifest));
    }
    for (const auto& file : plan.extra_files)
      LV_RETURN_IF_ERROR(AddPlannedFile(env, *writer, file, manifest.id, manifest));
    const std::string manifest_json = ManifestToJson(manifest);
    ArchiveEntry entry;
    entry.path = kManifestMemberName;
    entry.mode = 0600;
    entry.mtime = std::chrono::system_clock::to_time_t(Clock::now());
    LV_RETURN_IF_ERROR(writer->AddBytes(entry, manifest_json));
    LV_RETURN_IF_ERROR(writer->Finish());
    outcome.archive_bytes = writer->bytes_written();

    if (options.verify_after) {
      VerifyReport report =
          VerifyArchive(env, manifest.id, tmp_path, writer->archive_sha256(), manifest_json);
      if (!report.ok) return Error("the new archive failed verification: " + report.problems[0]);
    }
    // Sidecars first, archive name last: a final archive name always has its sidecars.
    LV_RETURN_IF_ERROR(WriteFileAtomically(env, manifest_sidecar, manifest_json, 0600));
    LV_RETURN_IF_ERROR(WriteFileAtomically(
        env, sha_sidecar, Sha256SidecarContent(writer->archive_sha256(), manifest.archive), 0600));
    if (options.verify_after)
      LV_RETURN_IF_ERROR(WriteVerifyRecord(env, dir, manifest.id,
                                           VerifyRecord{FormatIso8601(Clock::now()), true, ""}));
    LV_RETURN_IF_ERROR(env.Rename(tmp_path, final_path, /*no_replace=*/true));
    return env.SyncDir(dir);
  };
  Status status = write();
  if (!status.ok()) {
    cleanup();
    return Error("backup " + manifest.id + " failed: " + status.message() +
                 "; no backup was written, earlier backups are untouched");
  }
  outcome.archive_path = final_path;
  outcome.seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  spdlog::info("backup {} written and verified: {} bytes in {:.2f}s", manifest.id,
               outcome.archive_bytes, outcome.seconds);
  return outcome;
}

}  // namespace lakevault
