#include "retention/retention.h"

#include <signal.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <ctime>
#include <filesystem>
#include <map>
#include <set>

#include "core/lock.h"

namespace fs = std::filesystem;

namespace lakevault {

namespace {

std::string Bucket(TimePoint t, const char* format) {
  std::time_t tt = Clock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, format, &tm);
  return buf;
}

void AddReason(RetentionDecision& d, const std::string& reason) {
  d.keep = true;
  d.reason += (d.reason.empty() ? "" : "; ") + reason;
}

// Keeps the newest backup of each of the `count` most recent periods that have backups (the
// way restic and borg define keep-daily/weekly/monthly).
void KeepPerPeriod(const std::vector<RetentionInput>& backups,
                   std::vector<RetentionDecision>& decisions, int64_t count, const char* format,
                   const std::string& label) {
  if (count <= 0) return;
  std::set<std::string> seen;
  for (size_t i = backups.size(); i-- > 0;) {
    std::string bucket = Bucket(backups[i].created, format);
    if (seen.count(bucket)) continue;
    if (static_cast<int64_t>(seen.size()) >= count) break;
    seen.insert(bucket);
    AddReason(decisions[i], label + " " + bucket);
  }
}

}  // namespace

std::vector<RetentionDecision> PlanRetention(const std::vector<RetentionInput>& backups,
                                             const RetentionPolicy& policy, TimePoint now) {
  std::vector<RetentionDecision> decisions(backups.size());
  for (size_t i = 0; i < backups.size(); ++i) decisions[i].id = backups[i].id;
  if (backups.empty()) return decisions;
  const bool any_rule = policy.days > 0 || policy.keep_last > 0 || policy.keep_daily > 0 ||
                        policy.keep_weekly > 0 || policy.keep_monthly > 0;
  if (!any_rule) {
    for (auto& d : decisions) AddReason(d, "no retention rule set");
    return decisions;
  }
  if (policy.days > 0) {
    for (size_t i = 0; i < backups.size(); ++i)
      if (now - backups[i].created < std::chrono::hours(24 * policy.days))
        AddReason(decisions[i], "younger than " + std::to_string(policy.days) + " days");
  }
  for (int64_t k = 0; k < policy.keep_last && k < static_cast<int64_t>(backups.size()); ++k)
    AddReason(decisions[backups.size() - 1 - k], "keep_last " + std::to_string(policy.keep_last));
  KeepPerPeriod(backups, decisions, policy.keep_daily, "%Y-%m-%d", "daily");
  KeepPerPeriod(backups, decisions, policy.keep_weekly, "%G-W%V", "weekly");
  KeepPerPeriod(backups, decisions, policy.keep_monthly, "%Y-%m", "monthly");

  // Whatever the policy: the newest verified backup stays (the newest of all if none verified).
  size_t newest_good = backups.size() - 1;
  for (size_t i = backups.size(); i-- > 0;)
    if (backups[i].verified) {
      newest_good = i;
      break;
    }
  AddReason(decisions[newest_good],
            backups[newest_good].verified ? "newest verified backup" : "newest backup");

  // A kept incremental keeps its whole chain. Newest first, so a chain is walked once.
  std::map<std::string, size_t> index;
  for (size_t i = 0; i < backups.size(); ++i) index[backups[i].id] = i;
  for (size_t i = backups.size(); i-- > 0;) {
    if (!decisions[i].keep) continue;
    std::string child = backups[i].id;
    std::string parent = backups[i].parent;
    while (!parent.empty()) {
      auto it = index.find(parent);
      if (it == index.end()) break;
      RetentionDecision& d = decisions[it->second];
      // Already kept for a dependent: the rest of the chain was walked then.
      if (d.reason.find("needed by") != std::string::npos) break;
      AddReason(d, "needed by " + child);
      child = parent;
      parent = backups[it->second].parent;
    }
  }
  for (auto& d : decisions)
    if (!d.keep) d.reason = "outside every retention rule";
  return decisions;
}

std::vector<RetentionInput> RetentionInputs(const Catalog& catalog) {
  std::vector<RetentionInput> inputs;
  for (const auto& e : catalog.entries()) {
    RetentionInput in;
    in.id = e.id;
    auto created = e.manifest ? ParseTime(e.manifest->created) : ParseTime(e.id.substr(7, 15));
    in.created = created.ok() ? *created : Clock::now();
    if (e.manifest) in.parent = e.manifest->parent;
    in.verified = e.last_verify && e.last_verify->ok;
    inputs.push_back(std::move(in));
  }
  // By the time of the lake state they hold (a consolidated full carries its source's time).
  std::stable_sort(
      inputs.begin(), inputs.end(),
      [](const RetentionInput& a, const RetentionInput& b) { return a.created < b.created; });
  return inputs;
}

Result<PruneOutcome> RunPrune(Env& env, const std::string& backup_dir,
                              const RetentionPolicy& policy, TimePoint now,
                              const PruneOptions& options) {
  PruneOutcome outcome;
  if (!fs::is_directory(backup_dir)) return outcome;
  std::optional<FileLock> lock;
  if (!options.dry_run) {
    LV_ASSIGN_OR_RETURN(
        FileLock held,
        FileLock::Acquire((fs::path(backup_dir) / ".lakevault.lock").string(), "backup or prune"));
    lock.emplace(std::move(held));
  }
  LV_ASSIGN_OR_RETURN(Catalog catalog, Catalog::Load(backup_dir));
  for (const auto& e : catalog.entries())
    if (!e.manifest)
      return Error("cannot plan retention: " + e.id + ": " + e.manifest_error +
                   " (its chain is unknown; fix or move it away first)");
  outcome.decisions = PlanRetention(RetentionInputs(catalog), policy, now);
  if (options.dry_run) return outcome;

  int deletes = 0;
  auto remove = [&](const std::string& path) -> Status {
    if (!fs::exists(fs::symlink_status(path))) return Status::Ok();
    LV_RETURN_IF_ERROR(env.RemoveFile(path));
    if (options.kill_after_deletes > 0 && ++deletes >= options.kill_after_deletes)
      ::kill(::getpid(), SIGKILL);
    return Status::Ok();
  };
  for (size_t i = outcome.decisions.size(); i-- > 0;) {
    const auto& d = outcome.decisions[i];
    if (d.keep) continue;
    const CatalogEntry* found = nullptr;
    for (const auto& e : catalog.entries())
      if (e.id == d.id) found = &e;
    if (found == nullptr) continue;
    const CatalogEntry& entry = *found;
    spdlog::info("prune: deleting {} ({})", d.id, d.reason);
    // The archive goes first: without it the backup no longer exists, and what is left is an
    // orphan sidecar that the catalogue ignores and the next prune removes.
    LV_RETURN_IF_ERROR(remove(entry.archive_path));
    for (const auto& name : BackupFileNames(backup_dir, d.id)) LV_RETURN_IF_ERROR(remove(name));
    outcome.deleted.push_back(d.id);
  }
  LV_RETURN_IF_ERROR(env.SyncDir(backup_dir));

  // Sidecars whose archive is gone (an interrupted prune or backup).
  std::set<std::string> live;
  for (const auto& e : catalog.entries()) live.insert(e.id);
  for (const auto& item : fs::directory_iterator(backup_dir)) {
    std::string name = item.path().filename().string();
    if (name.rfind("backup_", 0) != 0) continue;
    std::string id = name.substr(0, name.find('.'));
    if (!IsBackupId(id) || live.count(id)) continue;
    bool deleted_now = false;
    for (const auto& d : outcome.deleted) deleted_now |= d == id;
    if (deleted_now) continue;
    bool is_archive = false;
    for (const char* ext :
         {".tar.gz", ".tar.zst", ".tar", ".tar.gz.enc", ".tar.zst.enc", ".tar.enc"})
      is_archive |= name == id + ext;
    if (is_archive) continue;
    LV_RETURN_IF_ERROR(remove(item.path().string()));
    outcome.orphans_removed.push_back(name);
  }
  return outcome;
}

}  // namespace lakevault
