#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <iostream>
#include <nlohmann/json.hpp>

#include "backup/backup.h"
#include "cli/context.h"
#include "offsite/offsite.h"
#include "retention/retention.h"

namespace lakevault::cli {

namespace {
struct PruneFlags {
  bool dry_run = false;
  bool json = false;
  std::string path;
  std::string remote;
  bool local_only = false;
};

// Remotes `prune` applies the policy to: the one named, or every configured remote whose
// `prune` setting is not `lifecycle` (an S3 lifecycle rule expires objects there) or `off`.
std::vector<std::string> RemotesToPrune(const Config& config, const PruneFlags& flags,
                                        std::vector<std::string>* skipped) {
  if (!flags.remote.empty()) return {flags.remote};
  std::vector<std::string> names;
  if (flags.local_only || !flags.path.empty()) return names;
  for (const auto& [name, remote] : config.remotes) {
    auto it = remote.settings.find("prune");
    if (it != remote.settings.end() && (it->second == "lifecycle" || it->second == "off"))
      skipped->push_back(name + " (prune: " + it->second + ")");
    else
      names.push_back(name);
  }
  return names;
}
}  // namespace

void AddPruneCommand(CLI::App& app, Context& ctx, CommandBody* body) {
  auto flags = std::make_shared<PruneFlags>();
  auto* cmd =
      app.add_subcommand("prune", "apply the retention policy: delete backups no rule keeps");
  cmd->add_flag("-n,--dry-run", flags->dry_run, "print every backup with keep/delete and why");
  cmd->add_flag("--json", flags->json, "print JSON on stdout");
  cmd->add_option("--path", flags->path, "backup folder (overrides backup_path)");
  cmd->add_option("--remote", flags->remote,
                  "prune only this remote (config name, s3://..., user@host:/path)");
  cmd->add_flag("--local-only", flags->local_only, "leave the configured remotes alone");
  cmd->callback([&ctx, flags, body]() {
    *body = [&ctx, flags]() -> Result<int> {
      LV_ASSIGN_OR_RETURN(Config config, ctx.LoadConfig());
      BackupOptions where;
      if (!flags->path.empty()) where.backup_dir = flags->path;
      PruneOptions options;
      options.dry_run = flags->dry_run;
      ctx.record_job = !flags->dry_run;
      ctx.job_backup_dir = BackupDirFor(config, where);
      if (const char* k = std::getenv("LAKEVAULT_TEST_KILL_AFTER_DELETES"))
        options.kill_after_deletes = std::atoi(k);
      std::vector<std::string> skipped;
      const auto remotes = RemotesToPrune(config, *flags, &skipped);
      PruneOutcome outcome;
      if (flags->remote.empty()) {
        LV_ASSIGN_OR_RETURN(outcome, RunPrune(ctx.env(), BackupDirFor(config, where),
                                              config.retention, ctx.Now(), options));
      }
      nlohmann::json remote_docs = nlohmann::json::array();
      std::string remote_error;
      for (const auto& name : remotes) {
        auto pruned = [&]() -> Result<RemotePruneOutcome> {
          LV_ASSIGN_OR_RETURN(auto storage, OpenRemote(config, name));
          return PruneRemote(*storage, config.retention, ctx.Now(), flags->dry_run);
        }();
        if (!pruned.ok()) {
          if (remote_error.empty()) remote_error = "remote " + name + ": " + pruned.message();
          remote_docs.push_back({{"remote", name}, {"error", pruned.message()}});
          continue;
        }
        nlohmann::json backups = nlohmann::json::array();
        for (const auto& d : pruned->decisions)
          backups.push_back({{"id", d.id}, {"keep", d.keep}, {"reason", d.reason}});
        remote_docs.push_back(
            {{"remote", name}, {"backups", backups}, {"deleted", pruned->deleted}});
        if (!flags->json) {
          fmt::print("remote {}:\n", name);
          for (const auto& d : pruned->decisions)
            fmt::print("  {:<24} {:<6} {}\n", d.id, d.keep ? "keep" : "delete", d.reason);
          if (!flags->dry_run) fmt::print("  deleted {} backup(s)\n", pruned->deleted.size());
        }
      }
      for (const auto& s : skipped)
        spdlog::info("remote {} left to its own expiry; nothing deleted there", s);
      if (flags->remote.empty() && !flags->json) {
        if (flags->dry_run) fmt::print("dry run: nothing will be deleted\n");
        for (const auto& d : outcome.decisions)
          fmt::print("{:<24} {:<6} {}\n", d.id, d.keep ? "keep" : "delete", d.reason);
        if (!flags->dry_run)
          fmt::print("deleted {} backup(s){}\n", outcome.deleted.size(),
                     outcome.orphans_removed.empty() ? ""
                                                     : fmt::format(", removed {} leftover file(s)",
                                                                   outcome.orphans_removed.size()));
      }
      if (flags->json) {
        nlohmann::json backups = nlohmann::json::array();
        for (const auto& d : outcome.decisions)
          backups.push_back({{"id", d.id}, {"keep", d.keep}, {"reason", d.reason}});
        std::cout << nlohmann::json{{"dry_run", flags->dry_run},
                                    {"backups", backups},
                                    {"deleted", outcome.deleted},
                                    {"orphans_removed", outcome.orphans_removed},
                                    {"remotes", remote_docs}}
                         .dump(2)
                  << "\n";
      }
      if (!remote_error.empty()) return Error("prune: " + remote_error);
      return kExitOk;
    };
  });
}

}  // namespace lakevault::cli
