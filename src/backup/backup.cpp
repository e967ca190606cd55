#include "backup/backup.h"

#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <map>
#include <optional>
#include <thread>

#include "archive/archive.h"
#include "backup/publish.h"
#include "core/buffer.h"
#include "core/lock.h"
#include "core/progress.h"
#include "core/time.h"
#include "crypto/sha256.h"
#include "delta/delta.h"
#include "manifest/catalog.h"
#include "manifest/chain.h"
#include "manifest/list_index.h"
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

}  // namespace

Status EnsureBackupDir(const std::string& dir) {
  std::error_code ec;
  if (fs::is_directory(dir, ec)) return Status::Ok();
  fs::create_directories(dir, ec);
  if (ec) return Error("creating backup folder " + dir + ": " + ec.message());
  // Archives hold .env secrets: only the owner may list or read them.
  ::chmod(dir.c_str(), 0700);
  return Status::Ok();
}

std::string ChooseId(const std::string& dir, std::optional<TimePoint> fixed_now) {
  while (true) {
    auto now = fixed_now.value_or(Clock::now());
    std::string id = "backup_" + FormatCompactStamp(now);
    bool taken = false;
    for (const auto& name : BackupFileNames(dir, id))
      if (fs::exists(fs::symlink_status(name))) taken = true;
    if (!taken) return id;
    if (fixed_now) {
      *fixed_now += std::chrono::seconds(1);
      continue;
    }
    auto next = std::chrono::time_point_cast<std::chrono::seconds>(now) + std::chrono::seconds(1);
    std::this_thread::sleep_until(next + std::chrono::milliseconds(5));
  }
}

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

namespace {

// Pre-flight (the guide's "disk full"): fails, before anything is written, when `dir` has less
// than `needed` bytes free.
Status CheckFreeSpace(const std::string& dir, int64_t needed) {
  struct statvfs vfs;
  if (::statvfs(dir.c_str(), &vfs) != 0) return Status::Ok();
  int64_t free_bytes = static_cast<int64_t>(vfs.f_bavail) * static_cast<int64_t>(vfs.f_frsize);
  if (const char* fake = std::getenv("LAKEVAULT_TEST_FREE_BYTES")) free_bytes = std::atoll(fake);
  if (free_bytes >= needed) return Status::Ok();
  return Error("not enough free space in " + dir + " for the backup: it needs up to " +
               std::to_string((needed + (1 << 20) - 1) >> 20) + " MiB, " +
               std::to_string(free_bytes >> 20) +
               " MiB are free; free space or prune old backups (nothing was written)");
}

Status AddPlannedFile(Env& env, ArchiveWriter& writer, const BackupPlan& plan,
                      const PlannedFile& file, const std::string& backup_id,
                      ManifestWriter& manifest) {
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
    return manifest.Add(record);
  }
  if (file.inline_content) {
    entry.size = static_cast<int64_t>(file.inline_content->size());
    LV_RETURN_IF_ERROR(writer.AddBytes(entry, *file.inline_content));
    record.size = entry.size;
    record.sha256 = Sha256Hex(*file.inline_content);
    return manifest.Add(record);
  }
  const std::string path = AbsolutePath(plan, file);
  auto source = env.NewSequentialFile(path);
  if (!source.ok()) {
    std::error_code ec;
    if (file.may_vanish && !std::filesystem::exists(path, ec)) {
      spdlog::debug("{} was removed during the backup; the pinned version does not need it",
                    file.relative_path);
      return Status::Ok();
    }
    return source.status();
  }
  std::unique_ptr<SequentialFile> input = std::move(source).value();
  // Files the pinned version does not need may belong to a writer still writing them: the
  // bytes present when the backup was planned are taken, as for config files.
  if (file.mutable_content || file.may_vanish)
    input = std::make_unique<PrefixFile>(std::move(input), file.size);
  Sha256 hash;
  LV_RETURN_IF_ERROR(writer.AddFile(entry, *input, &hash));
  record.size = file.size;
  record.sha256 = hash.HexDigest();
  return manifest.Add(record);
}

// A file whose bytes an earlier backup already holds is not stored again. Delta data files and
// commit files are immutable once written (the protocol's put-if-absent), so the same path, size
// and mtime is the same file; files that are rewritten in place (_last_checkpoint, config,
// .env, logs) are compared by content.
bool IsRewrittenInPlace(const PlannedFile& file) {
  if (file.inline_content || file.mutable_content) return true;
  const std::string& p = file.relative_path;
  return p.size() >= 16 && p.compare(p.size() - 16, 16, "/_last_checkpoint") == 0;
}

constexpr int64_t kContentCompareLimit = 64 << 20;

// The parent's entry `listed` for `file`, as this backup's, when the bytes are the same.
std::optional<ManifestFile> ReusableRecord(Env& env, const BackupPlan& plan,
                                           const PlannedFile& file,
                                           std::optional<ManifestFile> listed) {
  if (!listed) return std::nullopt;
  const ManifestFile& old = *listed;
  if (!file.link_target.empty() || !old.link.empty()) {
    if (file.link_target == old.link) return old;
    return std::nullopt;
  }
  if (!IsRewrittenInPlace(file)) {
    if (old.size == file.size && old.mtime == file.mtime) return old;
    return std::nullopt;
  }
  std::string hash;
  if (file.inline_content) {
    hash = Sha256Hex(*file.inline_content);
  } else {
    if (file.size != old.size || file.size > kContentCompareLimit) return std::nullopt;
    auto content = ReadWholeFile(env, AbsolutePath(plan, file));
    if (!content.ok()) return std::nullopt;  // the real read will report it
    hash = Sha256Hex(content->substr(0, static_cast<size_t>(file.size)));
  }
  if (hash != old.sha256) return std::nullopt;
  ManifestFile same = old;
  same.mtime = file.mtime;
  same.mode = file.mode;
  return same;
}

// The parent's list, looked up a group of files at a time, in plan order: a table's files (of a
// table planned in shares: its log entries, then each share), and last the extra files. Its
// entries are indexed for a batch of consecutive groups at once, as many as fit the bound
// (kParentIndexRecords) by the parent's own counts, so what is held is bounded by the biggest
// group, not the lake (two tables of 300,000 files held 43 MB of index at once). A lake that
// fits (any lake under about 350,000 files) is one batch, indexed by a single read of the list.
class ParentLookup {
 public:
  static constexpr size_t kParentIndexRecords = (size_t{24} << 20) / 72;
  static constexpr size_t kTableFiles = SIZE_MAX;  // Group: a table's `files`, not a share

  ParentLookup() = default;
  ParentLookup(Env& env, std::string list_path, const Manifest& parent, const BackupPlan& plan,
               size_t max_records)
      : env_(&env), list_path_(std::move(list_path)) {
    std::vector<size_t> counts;  // the parent's files in each table, then outside any
    int64_t in_tables = 0;
    for (const auto& t : plan.tables) {
      prefixes_.push_back(t.relative_path + "/");
      counts.push_back(0);
      for (const auto& pt : parent.tables)
        if (t.relative_path == pt.path) {
          counts.back() = static_cast<size_t>(std::max<int64_t>(0, pt.files));
          in_tables += pt.files;
        }
    }
    for (size_t i = 0; i < plan.tables.size(); ++i) {
      const PlannedTable& t = plan.tables[i];
      first_group_.push_back(groups_.size());
      if (t.shares.empty()) {
        groups_.push_back({i, Group::kWhole, 0, 1, counts[i]});
        continue;
      }
      // The log entries, then the shares, each counted as its part of the parent's table.
      groups_.push_back({i, Group::kLog, 0, 1, t.files.size()});
      for (const auto& share : t.shares)
        groups_.push_back({i, Group::kShare, share.part, share.parts, counts[i] / share.parts});
    }
    groups_.push_back({plan.tables.size(), Group::kWhole, 0, 1,
                       static_cast<size_t>(std::max<int64_t>(0, parent.listed_files - in_tables))});
    for (size_t g = 0; g < groups_.size(); ++g) {
      if (batch_records_.empty() || batch_records_.back() + groups_[g].records > max_records) {
        batch_records_.push_back(0);
        batch_first_.push_back(g);
      }
      batch_records_.back() += groups_[g].records;
      batch_of_.push_back(batch_records_.size() - 1);
    }
  }
  bool empty() const { return env_ == nullptr; }
  size_t batches() const { return batch_records_.size(); }
  // The group of table `table`'s files (kTableFiles) or of its share `share`; of the extra files
  // for the number of tables.
  size_t GroupOf(size_t table, size_t share = kTableFiles) const {
    if (empty()) return 0;
    if (table == first_group_.size()) return groups_.size() - 1;
    return first_group_[table] + (share == kTableFiles ? 0 : 1 + share);
  }
  // Makes the entries of group `group` (see GroupOf) the ones Find answers from.
  Status Select(size_t group) {
    if (empty() || batch_of_[group] == loaded_) return Status::Ok();
    const size_t batch = batch_of_[group];
    index_ = ManifestIndex();
    loaded_ = SIZE_MAX;
    auto index = ManifestIndex::Load(*env_, list_path_, batch_records_[batch],
                                     [&](std::string_view path) { return InBatch(batch, path); });
    if (!index.ok()) return index.error();
    index_ = std::move(index).value();
    loaded_ = batch;
    // The list's parse freed several times what the index keeps: given back before the
    // compressor's blocks are taken (300,000 files: 50 -> 38 MB resident).
    TrimMemory();
    return Status::Ok();
  }
  std::optional<ManifestFile> Find(const std::string& path) const {
    if (empty()) return std::nullopt;
    return index_.Find(path);
  }

 private:
  struct Group {
    enum Kind { kWhole, kLog, kShare };
    size_t table;  // the number of tables for the extra files
    Kind kind;
    uint32_t part, parts;
    size_t records;  // the parent's files in it, as far as its counts tell
  };

  // The table holding `path` (the longest table path it is under), or the number of tables.
  size_t TableOf(std::string_view path) const {
    size_t table = prefixes_.size(), longest = 0;
    for (size_t i = 0; i < prefixes_.size(); ++i)
      if (prefixes_[i].size() > longest && path.substr(0, prefixes_[i].size()) == prefixes_[i]) {
        table = i;
        longest = prefixes_[i].size();
      }
    return table;
  }
  // Whether a group of `batch` may look `path` up. A log group takes whatever is below
  // _delta_log/, a share the paths of its share: a few paths may be in both, which costs a
  // record each, never a lookup that fails.
  bool InBatch(size_t batch, std::string_view path) const {
    const size_t table = TableOf(path);
    const std::string_view rel =
        table < prefixes_.size() ? path.substr(prefixes_[table].size()) : path;
    for (size_t g = batch_first_[batch]; g < groups_.size() && batch_of_[g] == batch; ++g) {
      const Group& group = groups_[g];
      if (group.table != table) continue;
      if (group.kind == Group::kWhole) return true;
      if (group.kind == Group::kLog && rel.substr(0, 11) == "_delta_log/") return true;
      if (group.kind == Group::kShare && delta::ShareOf(rel, group.parts) == group.part)
        return true;
    }
    return false;
  }

  Env* env_ = nullptr;
  std::string list_path_;
  std::vector<std::string> prefixes_;  // each table's relative path and '/'
  std::vector<Group> groups_;
  std::vector<size_t> first_group_;    // table -> its first group
  std::vector<size_t> batch_of_;       // group -> batch
  std::vector<size_t> batch_first_;    // batch -> its first group
  std::vector<size_t> batch_records_;  // batch -> the parent's count of its entries
  size_t loaded_ = SIZE_MAX;
  ManifestIndex index_;
};

// Why the newest backup cannot be a parent, or empty when it can.
std::string ParentProblem(const Catalog& catalog, const CatalogEntry& parent) {
  auto chain = ResolveChain(catalog, parent.id);
  if (!chain.ok()) return chain.message();
  for (const CatalogEntry* link : *chain) {
    if (!std::filesystem::exists(Sha256SidecarPath(link->archive_path)))
      return "backup " + link->id + " has no checksum sidecar";
    if (link->last_verify && !link->last_verify->ok)
      return "backup " + link->id + " failed its last verification (" + link->last_verify->error +
             ")";
  }
  return "";
}

struct KindDecision {
  std::string kind;  // "full" | "incremental"
  const CatalogEntry* parent = nullptr;
  std::string reason;
};

Result<KindDecision> DecideKind(const Config& config, const BackupOptions& options,
                                const Catalog& catalog, TimePoint now) {
  KindDecision d;
  if (options.kind == BackupKind::kFull) {
    d.kind = "full";
    d.reason = "--full";
    return d;
  }
  const bool incremental_asked = options.kind == BackupKind::kIncremental;
  const bool fallback = options.full_if_needed || !incremental_asked;
  const CatalogEntry* newest = catalog.entries().empty() ? nullptr : &catalog.entries().back();
  std::string problem;
  if (newest == nullptr) {
    problem = "there is no earlier backup in " + catalog.dir() + " to build on";
  } else {
    problem = ParentProblem(catalog, *newest);
  }
  if (!problem.empty()) {
    if (!fallback)
      return Error("cannot take an incremental backup: " + problem +
                   " (run `lakevault backup --full`, or add --full-if-needed)");
    d.kind = "full";
    d.reason = problem;
    return d;
  }
  if (!incremental_asked) {
    // The cadence: a full every full_every_days.
    auto chain = ResolveChain(catalog, newest->id);
    auto full_time = ParseTime(chain->front()->manifest->created);
    int64_t age = full_time.ok()
                      ? std::chrono::duration_cast<std::chrono::seconds>(now - *full_time).count()
                      : INT64_MAX;
    if (config.full_every_days <= 0 || age >= config.full_every_days * 86400) {
      d.kind = "full";
      d.reason = "the last full backup is " + FormatDuration(static_cast<double>(age)) +
                 " old (full_every_days: " + std::to_string(config.full_every_days) + ")";
      return d;
    }
  }
  d.kind = "incremental";
  d.parent = newest;
  d.reason = "on top of " + newest->id;
  return d;
}

}  // namespace

std::string ManifestTempPath(const std::string& dir, const std::string& id) {
  return (fs::path(dir) / ("." + id + ".manifest.json.tmp")).string();
}

Status WriteSyncedFile(Env& env, const std::string& path, std::string_view text) {
  LV_ASSIGN_OR_RETURN(auto file, env.NewWritableFile(path, 0600));
  LV_RETURN_IF_ERROR(file->Append(text.data(), text.size()));
  LV_RETURN_IF_ERROR(file->Sync());
  return file->Close();
}

Status PublishArchive(Env& env, const std::string& dir, const std::string& id,
                      const std::string& tmp_path, const std::string& final_path,
                      const std::string& archive_sha256, const std::string& manifest_tmp,
                      bool verified) {
  // Sidecars first, archive name last: a final archive name always has its sidecars.
  const std::string archive_name = std::filesystem::path(final_path).filename().string();
  LV_RETURN_IF_ERROR(env.Rename(manifest_tmp, ManifestSidecarPath(dir, id), /*no_replace=*/false));
  LV_RETURN_IF_ERROR(env.SyncDir(dir));
  LV_RETURN_IF_ERROR(WriteFileAtomically(env, Sha256SidecarPath(final_path),
                                         Sha256SidecarContent(archive_sha256, archive_name), 0600));
  if (verified)
    LV_RETURN_IF_ERROR(
        WriteVerifyRecord(env, dir, id, VerifyRecord{FormatIso8601(Clock::now()), true, ""}));
  LV_RETURN_IF_ERROR(env.Rename(tmp_path, final_path, /*no_replace=*/true));
  return env.SyncDir(dir);
}

void RemoveUnpublished(Env& env, const std::string& dir, const std::string& id,
                       const std::string& tmp_path, const std::string& final_path) {
  env.RemoveFile(tmp_path);
  env.RemoveFile(ManifestTempPath(dir, id));
  if (std::filesystem::exists(final_path)) return;  // published after all: keep its sidecars
  env.RemoveFile(ManifestSidecarPath(dir, id));
  env.RemoveFile(Sha256SidecarPath(final_path));
  env.RemoveFile(VerifySidecarPath(dir, id));
}

Result<BackupOutcome> RunBackup(const Config& config, const BackupOptions& options, Env& env) {
  auto started = std::chrono::steady_clock::now();
  // Where the time went, for `-v`: each step's seconds since the previous one.
  auto lap_start = started;
  auto lap = [&lap_start](const char* step) {
    auto now = std::chrono::steady_clock::now();
    spdlog::debug("backup step {}: {:.3f} s", step,
                  std::chrono::duration<double>(now - lap_start).count());
    lap_start = now;
  };
  BackupOutcome outcome;
  PlanOptions plan_options;
  plan_options.allow_missing = options.allow_missing;
  plan_options.snapshot_only = options.snapshot_only;
  if (options.max_table_replay_bytes)
    plan_options.max_table_replay_bytes = options.max_table_replay_bytes;
  const std::string dir = BackupDirFor(config, options);
  const Compression compression = options.compression.value_or(config.compression);
  std::optional<FileLock> lock;
  std::vector<std::string> spill_paths;
  struct SpillGuard {
    Env& env;
    std::vector<std::string>& paths;
    ~SpillGuard() {
      for (const auto& p : paths) env.RemoveFile(p);
    }
  } spill_guard{env, spill_paths};
  // The backup folder is made ready once the first table is planned: a lake that cannot be
  // planned at all (no lake, no table) is said before anything is written.
  auto prepare = [&]() -> Status {
    // The guide's "permission denied".
    LV_RETURN_IF_ERROR(CheckAccess(dir, true, "backup folder"));
    LV_RETURN_IF_ERROR(EnsureBackupDir(dir));
    LV_ASSIGN_OR_RETURN(
        lock, FileLock::Acquire((fs::path(dir) / ".lakevault.lock").string(), "backup or prune"));
    RemoveStaleTemporaries(env, dir);
    return Status::Ok();
  };
  if (options.dry_run) {
    // Only the counts are printed: each table's list is given back once it is counted.
    plan_options.on_table_planned = [](size_t, PlannedTable& table) {
      table.files.KeepTotalsOnly();
      TrimMemory();
      return Status::Ok();
    };
    plan_options.on_share_planned = [](size_t, const PlannedTable&, size_t, PlannedFiles& files) {
      files.KeepTotalsOnly();
      TrimMemory();
      return Status::Ok();
    };
  } else {
    // Each table's file list goes to a scratch file beside the archive as soon as it is planned
    // (removed by the guard, or by the next run's RemoveStaleTemporaries if this one is killed)
    // and is read back in order: the plan holds one table's list at a time (four tables of
    // 300,000 files held all four before the first was written out), and the archive's write
    // holds none (PlannedFiles::Spill).
    auto spill = [&](const std::string& table, const std::string& name,
                     PlannedFiles& files) -> Status {
      if (!lock) LV_RETURN_IF_ERROR(prepare());
      // Room for the scratch file, and for at least the archive's headers.
      const int64_t list_bytes = files.SpillBytes();
      LV_RETURN_IF_ERROR(CheckFreeSpace(dir, list_bytes + (1 << 20)));
      spill_paths.push_back((fs::path(dir) / (".backup_plan_" + name + ".tmp")).string());
      Status spilled = files.Spill(env, spill_paths.back());
      if (!spilled.ok())
        return Error("writing the plan of table " + table + " to " + dir + ": " +
                     spilled.message() + "; no backup was written");
      // What the list held is given back before the next table's replay, the parent's index
      // and the compressor's blocks take its place (much of it was in 1 MiB blocks that glibc
      // would otherwise keep).
      if (list_bytes >= kTrimFreedBytes) TrimMemory();
      return Status::Ok();
    };
    // `spill` is taken by value: it goes out of scope here, before the plan calls the hooks.
    plan_options.on_table_planned = [spill](size_t index, PlannedTable& table) {
      return spill(table.name, std::to_string(index), table.files);
    };
    plan_options.on_share_planned = [spill](size_t index, const PlannedTable& table, size_t share,
                                            PlannedFiles& files) {
      return spill(table.name, std::to_string(index) + "_" + std::to_string(share), files);
    };
  }
  LV_ASSIGN_OR_RETURN(outcome.plan, PlanBackup(config, plan_options));
  lap("plan (table snapshots, files)");
  const BackupPlan& plan = outcome.plan;
  for (const auto& w : plan.warnings) spdlog::warn("{}", w);
  if (options.dry_run) return outcome;
  if (!lock) LV_RETURN_IF_ERROR(prepare());  // no table was planned

  LV_ASSIGN_OR_RETURN(Catalog catalog, Catalog::Load(dir));
  const TimePoint now = options.now.value_or(Clock::now());
  LV_ASSIGN_OR_RETURN(KindDecision decision, DecideKind(config, options, catalog, now));
  // The parent's list as a compact index (72 bytes a file; at 300,000 files the list itself
  // and a map over it were 130 MB), a batch of tables at a time.
  ParentLookup parent;
  if (decision.parent) {
    parent = ParentLookup(env, ManifestSidecarPath(dir, decision.parent->id),
                          *decision.parent->manifest, plan,
                          options.max_parent_index_records ? options.max_parent_index_records
                                                           : ParentLookup::kParentIndexRecords);
    outcome.parent_index_batches = parent.batches();
    if (parent.batches() > 1)
      spdlog::debug("the parent's list is indexed in {} batches (tables, or shares of a big table)",
                    parent.batches());
  }
  auto select = [&](size_t group) -> Status {
    Status selected = parent.Select(group);
    if (!selected.ok()) return Error("backup " + decision.parent->id + ": " + selected.message());
    return Status::Ok();
  };
  outcome.kind_reason = decision.reason;

  // Pre-flight (the guide's "disk full"): the archive can be no larger than the bytes it takes
  // in, so that much free space means the write cannot run out of it.
  {
    int64_t estimate = 0;
    auto count = [&](const PlannedFile& f) {
      auto listed = parent.Find(f.relative_path);
      if (!listed || listed->size != f.size || listed->mtime != f.mtime)
        estimate += f.inline_content ? static_cast<int64_t>(f.inline_content->size()) : f.size;
      return Status::Ok();
    };
    if (parent.empty()) {
      // Without a parent every byte counts, and the sum is known without reading the list.
      for (const auto& t : plan.tables) estimate += t.Bytes();
      for (const auto& f : plan.extra_files) count(f);
    } else {
      // Last group first: the batch left indexed is then the first one the write needs.
      LV_RETURN_IF_ERROR(select(parent.GroupOf(plan.tables.size())));
      for (const auto& f : plan.extra_files) count(f);
      for (size_t i = plan.tables.size(); i-- > 0;) {
        const PlannedTable& table = plan.tables[i];
        for (size_t k = table.shares.size(); k-- > 0;) {
          LV_RETURN_IF_ERROR(select(parent.GroupOf(i, k)));
          LV_RETURN_IF_ERROR(table.shares[k].files.ForEach(env, count));
        }
        LV_RETURN_IF_ERROR(select(parent.GroupOf(i)));
        LV_RETURN_IF_ERROR(table.files.ForEach(env, count));
      }
    }
    estimate += 1 << 20;  // headers, manifest, sidecars
    LV_RETURN_IF_ERROR(CheckFreeSpace(dir, estimate));
  }

  Manifest& manifest = outcome.manifest;
  manifest.id = ChooseId(dir, options.now);
  manifest.created = options.now ? FormatIso8601(*options.now) : FormatIso8601(Clock::now());
  manifest.kind = decision.kind;
  if (decision.parent) manifest.parent = decision.parent->id;
  manifest.source_root = config.root;
  manifest.lake = plan.lake_relative;
  manifest.compression = CompressionName(compression);
  manifest.archive = manifest.id + ArchiveExtension(compression);
  manifest.tool_version = LakevaultVersion();
  spdlog::info("backup {} ({}, {}): {} tables, {} files, {} bytes -> {}", manifest.id,
               manifest.kind, decision.reason, plan.tables.size(), plan.TotalFiles(),
               plan.TotalBytes(), (fs::path(dir) / manifest.archive).string());

  const std::string final_path = (fs::path(dir) / manifest.archive).string();
  const std::string tmp_path = (fs::path(dir) / ("." + manifest.archive + ".tmp")).string();

  for (const auto& table : plan.tables) {
    ManifestTable record;
    record.name = table.name;
    record.path = table.relative_path;
    record.version = table.version;
    record.rows = table.rows;
    record.files = static_cast<int64_t>(table.FileCount());
    record.bytes = table.Bytes();
    manifest.tables.push_back(record);
    for (const auto& m : table.missing) manifest.missing.push_back(m);
  }
  // The list is written to the manifest file as the files are taken, never held: at 300,000
  // files its records were 100 MB and its text 90 MB.
  const std::string manifest_tmp = ManifestTempPath(dir, manifest.id);
  std::unique_ptr<WritableFile> manifest_file;
  ManifestWriter list(
      [&](std::string_view piece) { return manifest_file->Append(piece.data(), piece.size()); });
  ProgressBar progress("backup " + manifest.id, plan.TotalBytes(), options.progress);
  auto take = [&](ArchiveWriter& writer, const PlannedFile& file) -> Status {
    progress.Advance(file.size);
    if (!parent.empty()) {
      if (auto reused = ReusableRecord(env, plan, file, parent.Find(file.relative_path)))
        return list.Add(*reused);
    }
    outcome.files_stored++;
    outcome.bytes_stored +=
        file.inline_content ? static_cast<int64_t>(file.inline_content->size()) : file.size;
    return AddPlannedFile(env, writer, plan, file, manifest.id, list);
  };
  auto write = [&]() -> Status {
    lap("catalog and parent manifest");
    LV_ASSIGN_OR_RETURN(
        auto writer, ArchiveWriter::Create(env, tmp_path, compression, config.compression_level));
    if (options.on_archive_created) options.on_archive_created(tmp_path, manifest.archive);
    LV_ASSIGN_OR_RETURN(manifest_file, env.NewWritableFile(manifest_tmp, 0600));
    // The archive's SHA-256 is taken from the very bytes handed to write(); what the check adds
    // is an independent decode: every member inflated (CRC-32 checked), every file's SHA-256
    // and the list compared with the manifest file. It reads both files back as they grow
    // instead of after the write (0.7 s after the last byte on a 1 GiB lake, with a core idle
    // meanwhile). Declared after the writer: a failed write cuts it off first.
    std::optional<VerifyWhileWritten> check;
    if (options.verify_after) check.emplace(env, manifest.id, tmp_path, manifest_tmp);
    LV_RETURN_IF_ERROR(list.Begin(manifest));
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
    auto take_each = [&](const PlannedFile& file) { return take(*writer, file); };
    for (size_t i = 0; i < plan.tables.size(); ++i) {
      const PlannedTable& table = plan.tables[i];
      LV_RETURN_IF_ERROR(select(parent.GroupOf(i)));
      LV_RETURN_IF_ERROR(table.files.ForEach(env, take_each));
      for (size_t k = 0; k < table.shares.size(); ++k) {
        LV_RETURN_IF_ERROR(select(parent.GroupOf(i, k)));
        LV_RETURN_IF_ERROR(table.shares[k].files.ForEach(env, take_each));
      }
    }
    LV_RETURN_IF_ERROR(select(parent.GroupOf(plan.tables.size())));
    for (const auto& file : plan.extra_files) LV_RETURN_IF_ERROR(take(*writer, file));
    lap("files read and archived");
    manifest.files_stored = outcome.files_stored;
    manifest.bytes_stored = outcome.bytes_stored;
    manifest.duration_seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    LV_RETURN_IF_ERROR(list.End(manifest));
    ArchiveEntry entry;
    entry.path = kManifestMemberName;
    entry.mode = 0600;
    entry.mtime = std::chrono::system_clock::to_time_t(Clock::now());
    entry.size = list.bytes_written();
    LV_ASSIGN_OR_RETURN(auto manifest_source, env.NewSequentialFile(manifest_tmp));
    LV_RETURN_IF_ERROR(writer->AddFile(entry, *manifest_source, nullptr));
    // The check reads both files to their end while the archive is synced, and the manifest is
    // synced after the archive, whose journal commit then mostly covers it too (an incremental:
    // 0.016 s from the list's end to both synced, 0.013 s more for the check's tail, before).
    LV_RETURN_IF_ERROR(writer->Finish([&] {
      if (check) check->Written();
    }));
    LV_RETURN_IF_ERROR(manifest_file->Sync());
    LV_RETURN_IF_ERROR(manifest_file->Close());
    outcome.archive_bytes = writer->bytes_written();
    lap("manifest written, archive synced");

    if (check) {
      LV_RETURN_IF_ERROR(check->Finish());
      lap("verified");
    }
    Status published =
        PublishArchive(env, dir, manifest.id, tmp_path, final_path, writer->archive_sha256(),
                       manifest_tmp, /*verified=*/check.has_value());
    lap("published");
    return published;
  };
  Status status = write();
  progress.Done();
  if (!status.ok()) {
    RemoveUnpublished(env, dir, manifest.id, tmp_path, final_path);
    if (std::filesystem::exists(final_path))
      return Error("backup " + manifest.id + " is written and verified, but " + status.message() +
                   "; it may not survive a power loss until the folder is synced");
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
