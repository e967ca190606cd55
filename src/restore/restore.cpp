#include "restore/restore.h"

#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <set>

#include "check/check.h"
#include "core/buffer.h"
#include "delta/delta.h"
#include "hooks/hooks.h"
#include "manifest/chain.h"
#include "materialize/materialize.h"

namespace fs = std::filesystem;

namespace lakevault {

namespace {

constexpr const char* kJournal = "journal.json";

// Tests kill the process at named points (LAKEVAULT_TEST_KILL_AT=swap-1) to prove that an
// interrupted restore is always recovered. Never set in production.
void KillPoint(const std::string& name) {
  const char* at = std::getenv("LAKEVAULT_TEST_KILL_AT");
  if (at && name == at) ::raise(SIGKILL);
}

struct Item {
  std::string live;
  std::string staged;
  std::string aside;
  bool existed = false;
  uint64_t old_inode = 0;  // of `live` before the swap: tells old from new after a kill
};

uint64_t InodeOf(const std::string& path) {
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0) return 0;
  return static_cast<uint64_t>(st.st_ino);
}

struct Journal {
  std::string id;
  std::string phase;  // staging | swapping | done
  std::string created;
  std::vector<Item> items;
};

std::string JournalToJson(const Journal& j) {
  nlohmann::json doc;
  doc["id"] = j.id;
  doc["phase"] = j.phase;
  doc["created"] = j.created;
  doc["items"] = nlohmann::json::array();
  for (const auto& i : j.items)
    doc["items"].push_back({{"live", i.live},
                            {"staged", i.staged},
                            {"aside", i.aside},
                            {"existed", i.existed},
                            {"old_inode", i.old_inode}});
  return doc.dump(2) + "\n";
}

Result<Journal> ReadJournal(Env& env, const fs::path& run) {
  LV_ASSIGN_OR_RETURN(std::string text, ReadWholeFile(env, (run / kJournal).string()));
  auto doc = nlohmann::json::parse(text, nullptr, false);
  if (doc.is_discarded() || !doc.is_object())
    return Error("restore journal " + run.string() + " is corrupt");
  Journal j;
  j.id = doc.value("id", "");
  j.phase = doc.value("phase", "");
  j.created = doc.value("created", "");
  if (doc.contains("items") && doc["items"].is_array())
    for (const auto& i : doc["items"])
      j.items.push_back(Item{i.value("live", ""), i.value("staged", ""), i.value("aside", ""),
                             i.value("existed", false), i.value("old_inode", uint64_t{0})});
  return j;
}

Status WriteJournal(Env& env, const fs::path& run, const Journal& j) {
  return WriteFileAtomically(env, (run / kJournal).string(), JournalToJson(j), 0600);
}

Status Rename(Env& env, const std::string& from, const std::string& to) {
  std::error_code ec;
  fs::create_directories(fs::path(to).parent_path(), ec);
  LV_RETURN_IF_ERROR(env.Rename(from, to, /*no_replace=*/true));
  LV_RETURN_IF_ERROR(env.SyncDir(fs::path(to).parent_path().string()));
  return env.SyncDir(fs::path(from).parent_path().string());
}

// Puts one item back as it was before the swap. Safe to repeat: each state the swap passes
// through is recognised by where the old inode is.
Status UndoItem(Env& env, const Item& item, const fs::path& trash) {
  std::error_code ec;
  bool live = fs::exists(fs::symlink_status(item.live, ec));
  bool aside = fs::exists(fs::symlink_status(item.aside, ec));
  bool staged = fs::exists(fs::symlink_status(item.staged, ec));
  static int counter = 0;
  auto discard = [&]() {
    return Rename(
        env, item.live,
        (trash / (std::to_string(::getpid()) + "-" + std::to_string(counter++))).string());
  };
  if (aside) {
    if (live) LV_RETURN_IF_ERROR(discard());
    return Rename(env, item.aside, item.live);
  }
  if (item.existed && staged && live && item.old_inode != 0 &&
      InodeOf(item.staged) == item.old_inode) {
    // Exchanged, not yet moved aside: exchange back in one step.
    LV_RETURN_IF_ERROR(env.Exchange(item.staged, item.live));
    return env.SyncDir(fs::path(item.live).parent_path().string());
  }
  if (!item.existed && live && !staged) return discard();
  return Status::Ok();
}

// Swaps the staged copy in: one atomic exchange where the file system can, so readers of the
// lake see the old or the new state and never a gap; then the old copy is moved aside.
Status SwapItem(Env& env, const Item& item, int n) {
  if (!item.existed) {
    KillPoint("swap-" + std::to_string(n));
    return Rename(env, item.staged, item.live);
  }
  Status exchanged = env.Exchange(item.staged, item.live);
  if (exchanged.ok()) {
    LV_RETURN_IF_ERROR(env.SyncDir(fs::path(item.live).parent_path().string()));
    KillPoint("swap-" + std::to_string(n));
    return Rename(env, item.staged, item.aside);
  }
  LV_RETURN_IF_ERROR(Rename(env, item.live, item.aside));
  KillPoint("swap-" + std::to_string(n));
  return Rename(env, item.staged, item.live);
}

Status UndoAll(Env& env, const fs::path& run, const Journal& j) {
  fs::path trash = run / "discarded";
  for (auto it = j.items.rbegin(); it != j.items.rend(); ++it)
    LV_RETURN_IF_ERROR(UndoItem(env, *it, trash));
  return Status::Ok();
}

std::vector<fs::path> RunDirs(const std::string& work) {
  std::vector<fs::path> out;
  std::error_code ec;
  if (!fs::is_directory(work, ec)) return out;
  for (const auto& e : fs::directory_iterator(work, ec))
    if (e.is_directory(ec) && e.path().filename().string().rfind("run_", 0) == 0)
      out.push_back(e.path());
  std::sort(out.begin(), out.end());
  return out;
}

std::map<std::string, std::string> HookEnv(const std::string& id, const std::string& lake) {
  return {{"LAKEVAULT_BACKUP_ID", id}, {"LAKEVAULT_LAKE", lake}};
}

class Steps {
 public:
  explicit Steps(std::vector<TimedStep>* out) : out_(out) {}
  template <typename F>
  auto Run(const std::string& name, F&& f) {
    spdlog::info("restore: {}", name);
    auto start = std::chrono::steady_clock::now();
    auto result = f();
    out_->push_back(
        {name, std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count()});
    return result;
  }

 private:
  std::vector<TimedStep>* out_;
};

dev_t DeviceOf(const fs::path& p) {
  struct stat st;
  for (fs::path q = p; !q.empty(); q = q.parent_path()) {
    if (::stat(q.c_str(), &st) == 0) return st.st_dev;
    if (q == q.parent_path()) break;
  }
  return 0;
}

// Writes a commit that makes `version` the table's newest state again, as Delta's RESTORE does:
// history stays, the new commit removes what came later and re-adds what was removed.
Status WriteRestoreCommit(Env& env, const std::string& table_dir, int64_t version) {
  LV_ASSIGN_OR_RETURN(auto log, delta::ListLog(table_dir));
  int64_t latest = delta::LatestVersion(log);
  if (version > latest)
    return Error("version " + std::to_string(version) + " is newer than the backup's " +
                 std::to_string(latest));
  if (version == latest) return Status::Ok();
  auto then = delta::LoadSnapshot(env, table_dir, log, version);
  if (!then.ok())
    return Error("version " + std::to_string(version) + " is not in the backup: " + then.message());
  LV_ASSIGN_OR_RETURN(auto now, delta::LoadSnapshot(env, table_dir, log, latest));
  std::set<std::string> then_paths, now_paths;
  for (const auto& f : then->files) then_paths.insert(f.path);
  for (const auto& f : now.files) now_paths.insert(f.path);
  for (const auto& rel : then->RequiredFiles())
    if (!fs::exists(fs::path(table_dir) / rel))
      return Error("version " + std::to_string(version) + " needs " + rel +
                   ", which the backup does not hold (taken with --snapshot-only, or vacuumed)");
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                std::chrono::system_clock::now().time_since_epoch())
                .count();
  std::string text;
  text += nlohmann::json{{"commitInfo",
                          {{"timestamp", ms},
                           {"operation", "RESTORE"},
                           {"operationParameters", {{"version", version}}},
                           {"engineInfo", "lakevault"}}}}
              .dump() +
          "\n";
  for (const auto& f : now.files) {
    if (then_paths.count(f.path)) continue;
    nlohmann::json remove = {
        {"path", f.action.value("path", f.path)},
        {"deletionTimestamp", ms},
        {"dataChange", true},
        {"extendedFileMetadata", true},
        {"partitionValues", f.action.value("partitionValues", nlohmann::json::object())},
        {"size", f.size}};
    if (f.action.contains("deletionVector")) remove["deletionVector"] = f.action["deletionVector"];
    text += nlohmann::json{{"remove", remove}}.dump() + "\n";
  }
  for (const auto& f : then->files) {
    if (now_paths.count(f.path)) continue;
    nlohmann::json add = f.action;
    add["dataChange"] = true;
    text += nlohmann::json{{"add", add}}.dump() + "\n";
  }
  if (then->metadata != now.metadata)
    text += nlohmann::json{{"metaData", then->metadata}}.dump() + "\n";
  char name[32];
  std::snprintf(name, sizeof(name), "%020lld.json", static_cast<long long>(latest + 1));
  std::string path = table_dir + "/_delta_log/" + name;
  // Newer checkpoints would shadow the restore commit's predecessor state only if they were
  // newer than it; a _last_checkpoint pointing at one is harmless but stale, so it goes.
  LV_RETURN_IF_ERROR(WriteFileAtomically(env, path, text, 0644));
  return Status::Ok();
}

}  // namespace

std::string RestoreWorkDir(const Config& config) {
  fs::path lake = fs::path(config.LakeDir()).lexically_normal();
  if (lake.filename().empty()) lake = lake.parent_path();
  return (lake.parent_path() / ".lakevault-restore").string();
}

Result<const CatalogEntry*> SelectBackup(const Catalog& catalog, const std::string& selector,
                                         std::optional<TimePoint> at) {
  if (at) {
    const CatalogEntry* best = nullptr;
    for (const auto& e : catalog.entries()) {
      if (!e.manifest) continue;
      auto created = ParseTime(e.manifest->created);
      if (created.ok() && *created <= *at) best = &e;
    }
    if (!best)
      return Error("no backup in " + catalog.dir() + " was taken at or before " +
                   FormatIso8601(*at));
    return best;
  }
  return catalog.Find(selector);
}

Result<std::string> RecoverInterruptedRestore(const Config& config, Env& env) {
  std::string work = RestoreWorkDir(config);
  std::string done;
  for (const auto& run : RunDirs(work)) {
    auto journal = ReadJournal(env, run);
    if (journal.ok() && journal->phase == "done") continue;  // a kept rollback copy
    if (journal.ok() && journal->phase == "swapping") {
      LV_RETURN_IF_ERROR(UndoAll(env, run, *journal));
      done += "an interrupted restore of " + journal->id + " was rolled back; ";
    } else {
      done += "an unfinished staging folder was removed; ";
    }
    std::error_code ec;
    fs::remove_all(run, ec);
    if (ec) return Error("removing " + run.string() + ": " + ec.message());
  }
  if (!done.empty()) {
    done.resize(done.size() - 2);
    spdlog::warn("{}", done);
  }
  return done;
}

Result<RestoreOutcome> RunRestore(const Config& config, const RestoreRequest& request, Env& env) {
  auto started = std::chrono::steady_clock::now();
  RestoreOutcome out;
  out.dry_run = request.dry_run;
  Steps steps(&out.steps);
  const std::string backup_dir =
      request.backup_dir.empty() ? config.BackupDir() : request.backup_dir;
  const bool into_lake = request.to_dir.empty();
  {
    std::error_code ec;
    if (fs::is_directory(backup_dir, ec))
      LV_RETURN_IF_ERROR(CheckAccess(backup_dir, false, "backup folder"));
    // Staging and the swap create folders beside the lake (or the --to folder).
    fs::path target = into_lake ? fs::path(config.LakeDir()) : fs::absolute(request.to_dir);
    if (!request.dry_run) {
      LV_RETURN_IF_ERROR(
          CheckAccess(target.parent_path().string(), true, "folder that holds the restore target"));
      if (into_lake && fs::is_directory(target, ec))
        LV_RETURN_IF_ERROR(CheckAccess(target.string(), true, "lake"));
    }
  }
  if (!request.dry_run && into_lake)
    LV_RETURN_IF_ERROR(RecoverInterruptedRestore(config, env).status());

  LV_ASSIGN_OR_RETURN(Catalog catalog, Catalog::Load(backup_dir));
  if (catalog.entries().empty()) return Error("no backups in " + backup_dir);
  LV_ASSIGN_OR_RETURN(const CatalogEntry* entry, SelectBackup(catalog, request.backup, request.at));
  if (!entry->manifest) return Error("backup " + entry->id + ": " + entry->manifest_error);
  // The header only: the list is read as a stream where it is needed (at 300,000 files it is
  // 100 MB as records).
  const Manifest& manifest = *entry->manifest;
  out.id = entry->id;
  out.created = manifest.created;
  if (request.version && request.tables.size() != 1)
    return Error("--version needs exactly one --table");

  // What to restore: tables (all, or the named ones) and, on request, the config files.
  std::vector<const ManifestTable*> tables;
  for (const auto& name : request.tables) {
    const ManifestTable* found = nullptr;
    for (const auto& t : manifest.tables)
      if (t.name == name) found = &t;
    if (!found) {
      std::string names;
      for (const auto& t : manifest.tables) names += (names.empty() ? "" : ", ") + t.name;
      return Error("backup " + entry->id + " has no table " + name + " (it has: " + names + ")");
    }
    tables.push_back(found);
  }
  if (request.tables.empty())
    for (const auto& t : manifest.tables) tables.push_back(&t);
  std::set<std::string> prefixes;
  for (const auto* t : tables) prefixes.insert(t->path + "/");
  // Config files are the listed files outside every table: restored on request, and always
  // into a new folder of the whole backup.
  const bool take_config =
      (request.with_config || !into_lake) && (request.with_config || request.tables.empty());
  std::vector<std::string> config_paths;
  auto under = [](const std::string& path, const std::string& prefix) {
    return path.compare(0, prefix.size(), prefix) == 0;
  };
  std::vector<std::string> every_table;
  for (const auto& t : manifest.tables) every_table.push_back(t.path + "/");
  auto counted = ReadManifestFile(env, ManifestSidecarPath(catalog.dir(), entry->id),
                                  [&](ManifestFile&& f) -> Status {
                                    bool in_table = false;
                                    for (const auto& p : every_table)
                                      in_table = in_table || under(f.path, p);
                                    bool included = false;
                                    for (const auto& p : prefixes)
                                      included = included || under(f.path, p);
                                    if (!in_table && take_config) {
                                      config_paths.push_back(f.path);
                                      included = true;
                                    }
                                    if (included) {
                                      out.files++;
                                      out.bytes += f.size;
                                    }
                                    return Status::Ok();
                                  });
  if (!counted.ok()) return Error("backup " + entry->id + ": " + counted.message());
  for (const auto* t : tables) out.tables.push_back(t->name);
  out.config_files = config_paths;
  std::set<std::string> singles(config_paths.begin(), config_paths.end());
  auto include = [&](const std::string& path) {
    if (singles.count(path)) return true;
    for (const auto& p : prefixes)
      if (path.rfind(p, 0) == 0) return true;
    return false;
  };
  if (!manifest.complete())
    spdlog::warn("backup {} is incomplete: {} referenced files were missing when it was taken",
                 entry->id, manifest.missing.size());

  // Preconditions that need nothing written: the chain resolves, sidecars are there.
  LV_RETURN_IF_ERROR(steps.Run("check the backup chain", [&]() -> Status {
    LV_ASSIGN_OR_RETURN(auto chain, ResolveChain(catalog, entry->id));
    for (const CatalogEntry* link : chain) {
      if (link->last_verify && !link->last_verify->ok)
        return Error("backup " + link->id + " failed its last verification (" +
                     link->last_verify->error + "); nothing was changed");
      if (!fs::exists(Sha256SidecarPath(link->archive_path)))
        return Error("backup " + link->id + " has no checksum sidecar; nothing was changed");
    }
    return Status::Ok();
  }));

  const fs::path root(config.root);
  fs::path target_root = into_lake ? root : fs::path(request.to_dir);
  out.target = into_lake ? config.LakeDir() : request.to_dir;
  fs::path work = into_lake
                      ? fs::path(RestoreWorkDir(config))
                      : fs::path(request.to_dir).parent_path() /
                            (".lakevault-restore-" + fs::path(request.to_dir).filename().string());
  if (!into_lake) {
    std::error_code ec;
    if (fs::exists(request.to_dir, ec) && !fs::is_empty(request.to_dir, ec))
      return Error("--to " + request.to_dir + " is not empty; choose a new folder");
  }

  // Free space for the staging copy.
  {
    fs::path probe = into_lake ? fs::path(config.LakeDir()).parent_path()
                               : fs::absolute(request.to_dir).parent_path();
    struct statvfs vfs;
    std::error_code ec;
    fs::create_directories(probe, ec);
    if (::statvfs(probe.c_str(), &vfs) == 0) {
      uint64_t free_bytes = static_cast<uint64_t>(vfs.f_bavail) * vfs.f_frsize;
      uint64_t need = static_cast<uint64_t>(out.bytes) + (64u << 20);
      if (free_bytes < need)
        return Error("not enough free space in " + probe.string() + " to stage the restore: need " +
                     std::to_string(need >> 20) + " MiB, " + std::to_string(free_bytes >> 20) +
                     " MiB free; nothing was changed");
    }
  }
  if (request.dry_run) {
    out.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    return out;
  }

  // Stage: materialise (and fully verify) the backup beside the target.
  std::error_code ec;
  fs::create_directories(work, ec);
  if (ec) return Error("creating " + work.string() + ": " + ec.message());
  ::chmod(work.c_str(), 0700);
  fs::path run =
      work / ("run_" + FormatCompactStamp(Clock::now()) + "_" + std::to_string(::getpid()));
  fs::create_directories(run / "staging", ec);
  if (ec) return Error("creating " + run.string() + ": " + ec.message());
  Journal journal;
  journal.id = entry->id;
  journal.phase = "staging";
  journal.created = FormatIso8601(Clock::now());
  auto discard_run = [&]() {
    std::error_code rec;
    fs::remove_all(run, rec);
    if (!into_lake) fs::remove_all(work, rec);
  };
  if (Status s = WriteJournal(env, run, journal); !s.ok()) {
    discard_run();
    return s.error();
  }
  KillPoint("before-staging");
  Status staged = steps.Run("verify and stage " + entry->id, [&]() -> Status {
    MaterializeOptions mo;
    mo.include = include;
    mo.verify_archives = true;
    auto m = MaterializeBackup(env, catalog, entry->id, (run / "staging").string(), mo);
    return m.status();
  });
  if (!staged.ok()) {
    discard_run();
    return Error("backup " + entry->id + " failed verification while staging: " + staged.message() +
                 "; nothing was changed");
  }
  KillPoint("after-staging");
  if (request.version) {
    Status pit = steps.Run("write the restore commit", [&]() {
      return WriteRestoreCommit(env, (run / "staging" / tables[0]->path).string(),
                                *request.version);
    });
    if (!pit.ok()) {
      discard_run();
      return Error("table " + tables[0]->name + ": " + pit.message() + "; nothing was changed");
    }
  }
  Status checked = steps.Run("check the staged tables", [&]() -> Status {
    // The extraction's buffers are freed by now; handing their pages back before the check's log
    // replay, the largest step at many files, keeps them out of the peak.
    TrimMemory();
    for (const auto* t : tables) {
      TableHealth h = CheckTable(env, (run / "staging" / t->path).string(), t->name);
      bool incomplete_ok = !manifest.complete() && h.unreadable.empty();
      if (!h.healthy && !incomplete_ok) {
        std::string why = !h.unreadable.empty()        ? h.unreadable.front()
                          : !h.missing_files.empty()   ? "missing " + h.missing_files.front()
                          : !h.size_mismatches.empty() ? h.size_mismatches.front()
                                                       : "unhealthy";
        return Error("staged table " + t->name + " is not healthy: " + why);
      }
      if (!request.version && h.version != t->version)
        return Error("staged table " + t->name + " is at version " + std::to_string(h.version) +
                     ", the manifest says " + std::to_string(t->version));
    }
    return Status::Ok();
  });
  if (!checked.ok()) {
    discard_run();
    return Error(checked.message() + "; nothing was changed");
  }

  if (!into_lake) {
    // Into another folder: one rename puts the whole staged tree in place; no hooks.
    Status moved = steps.Run("move into " + request.to_dir, [&]() -> Status {
      std::error_code rec;
      if (fs::exists(request.to_dir, rec)) fs::remove(request.to_dir, rec);  // empty, checked
      return Rename(env, (run / "staging").string(), request.to_dir);
    });
    discard_run();
    LV_RETURN_IF_ERROR(moved);
    out.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    return out;
  }

  // Swap in: every item is renamed aside, then the staged copy renamed in. Same file system
  // only, or renames would be copies.
  auto add_item = [&](const std::string& rel) {
    Item item{(root / rel).string(), (run / "staging" / rel).string(),
              (run / "previous" / rel).string(), fs::exists(fs::symlink_status(root / rel, ec)), 0};
    item.old_inode = item.existed ? InodeOf(item.live) : 0;
    journal.items.push_back(item);
  };
  if (request.tables.empty()) {
    // The whole lake is one item: the swap is a single exchange of two folders. As with the
    // guide's `rm -rf data/lake && tar -xzf`, the lake becomes the backup's; anything else in
    // it stays in the rollback copy.
    fs::create_directories(run / "staging" / manifest.lake, ec);
    std::set<std::string> in_backup;
    for (const auto* t : tables) in_backup.insert(fs::path(t->name).begin()->string());
    std::error_code lec;
    for (const auto& e : fs::directory_iterator(config.LakeDir(), lec))
      if (!in_backup.count(e.path().filename().string()))
        spdlog::warn("{} is not in backup {}; it moves to the rollback copy with the old lake",
                     e.path().string(), entry->id);
    add_item(manifest.lake);
  } else {
    for (const auto* t : tables) add_item(t->path);
  }
  for (const auto& p : config_paths) add_item(p);
  for (const auto& item : journal.items)
    if (DeviceOf(item.live) != DeviceOf(run)) {
      discard_run();
      return Error(item.live + " is on another file system than " + work.string() +
                   "; a restore swaps by rename and needs them on one; nothing was changed");
    }

  const auto hook_env = HookEnv(entry->id, config.LakeDir());
  const bool hooks = request.run_hooks;
  if (hooks) {
    Status stopped = steps.Run(
        "stop hooks", [&] { return RunHooks("stop", config.hooks.stop, config.root, hook_env); });
    if (!stopped.ok()) {
      discard_run();
      RunHooks("start", config.hooks.start, config.root, hook_env);
      return Error(stopped.message() + "; nothing was changed, start hooks ran");
    }
  }
  KillPoint("before-swap");
  journal.phase = "swapping";
  if (Status s = WriteJournal(env, run, journal); !s.ok()) {
    discard_run();
    if (hooks) RunHooks("start", config.hooks.start, config.root, hook_env);
    return s.error();
  }
  auto roll_back = [&](const std::string& what, bool services_started) -> Error {
    if (hooks && services_started) RunHooks("stop", config.hooks.stop, config.root, hook_env);
    Status undone = UndoAll(env, run, journal);
    if (!undone.ok())
      return Error(what + "; rolling back failed too (" + undone.message() +
                   "); run `lakevault rollback` to finish, the journal is in " + run.string());
    discard_run();
    if (hooks) RunHooks("start", config.hooks.start, config.root, hook_env);
    return Error(what + "; the previous lake" +
                 std::string(config_paths.empty() ? "" : " and config") + " are back" +
                 (hooks ? ", start hooks ran" : ""));
  };
  Status swapped = steps.Run("swap in", [&]() -> Status {
    int n = 0;
    for (const auto& item : journal.items) LV_RETURN_IF_ERROR(SwapItem(env, item, ++n));
    return Status::Ok();
  });
  if (!swapped.ok()) return roll_back("swapping failed: " + swapped.message(), false);
  KillPoint("after-swap");
  if (hooks) {
    const std::vector<std::pair<std::string, const std::vector<std::string>*>> stages = {
        {"reconcile", &config.hooks.reconcile},
        {"start", &config.hooks.start},
        {"verify", &config.hooks.verify}};
    for (const auto& named : stages) {
      const std::string& stage = named.first;
      const std::vector<std::string>* commands = named.second;
      Status s = steps.Run(stage + " hooks",
                           [&] { return RunHooks(stage, *commands, config.root, hook_env); });
      KillPoint("hook-" + stage);
      if (!s.ok())
        return roll_back("restore of " + entry->id + " failed: " + s.message(),
                         stage != "reconcile");
    }
  }
  journal.phase = "done";
  if (Status s = WriteJournal(env, run, journal); !s.ok())
    return roll_back("recording the restore failed: " + s.message(), true);
  // The new rollback copy replaces older ones.
  for (const auto& old : RunDirs(work.string()))
    if (old != run) fs::remove_all(old, ec);
  fs::remove_all(run / "staging", ec);
  out.rollback_dir = (run / "previous").string();
  out.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  return out;
}

Result<std::string> RunRollback(const Config& config, Env& env) {
  LV_ASSIGN_OR_RETURN(std::string recovered, RecoverInterruptedRestore(config, env));
  if (!recovered.empty()) return recovered;
  auto runs = RunDirs(RestoreWorkDir(config));
  for (auto it = runs.rbegin(); it != runs.rend(); ++it) {
    auto journal = ReadJournal(env, *it);
    if (!journal.ok() || journal->phase != "done") continue;
    auto hook_env = HookEnv(journal->id, config.LakeDir());
    LV_RETURN_IF_ERROR(RunHooks("stop", config.hooks.stop, config.root, hook_env));
    // Mark it first so a kill halfway is finished by the next run, like an interrupted restore.
    journal->phase = "swapping";
    LV_RETURN_IF_ERROR(WriteJournal(env, *it, *journal));
    LV_RETURN_IF_ERROR(UndoAll(env, *it, *journal));
    std::error_code ec;
    fs::remove_all(*it, ec);
    LV_RETURN_IF_ERROR(RunHooks("start", config.hooks.start, config.root, hook_env));
    return "the restore of " + journal->id + " was undone; the lake is as it was before it";
  }
  return Error("there is no restore to roll back (no kept copy in " + RestoreWorkDir(config) + ")");
}

Result<std::string> CleanupRollback(const Config& config) {
  auto runs = RunDirs(RestoreWorkDir(config));
  if (runs.empty()) return std::string("no rollback copy to remove");
  std::error_code ec;
  for (const auto& r : runs) fs::remove_all(r, ec);
  if (ec) return Error("removing the rollback copy: " + ec.message());
  return std::string("rollback copy removed");
}

}  // namespace lakevault
