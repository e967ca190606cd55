#include <fmt/format.h>

#include <iostream>
#include <nlohmann/json.hpp>

#include "backup/backup.h"
#include "cli/context.h"
#include "retention/retention.h"

namespace lakevault::cli {

namespace {
struct PruneFlags {
  bool dry_run = false;
  bool json = false;
  std::string path;
};
}  // namespace

void AddPruneCommand(CLI::App& app, Context& ctx, CommandBody* body) {
  auto flags = std::make_shared<PruneFlags>();
  auto* cmd =
      app.add_subcommand("prune", "apply the retention policy: delete backups no rule keeps");
  cmd->add_flag("-n,--dry-run", flags->dry_run, "print every backup with keep/delete and why");
  cmd->add_flag("--json", flags->json, "print JSON on stdout");
  cmd->add_option("--path", flags->path, "backup folder (overrides backup_path)");
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
      LV_ASSIGN_OR_RETURN(PruneOutcome outcome, RunPrune(ctx.env(), BackupDirFor(config, where),
                                                         config.retention, ctx.Now(), options));
      if (flags->json) {
        nlohmann::json backups = nlohmann::json::array();
        for (const auto& d : outcome.decisions)
          backups.push_back({{"id", d.id}, {"keep", d.keep}, {"reason", d.reason}});
        std::cout << nlohmann::json{{"dry_run", flags->dry_run},
                                    {"backups", backups},
                                    {"deleted", outcome.deleted},
                                    {"orphans_removed", outcome.orphans_removed}}
                         .dump(2)
                  << "\n";
        return kExitOk;
      }
      if (flags->dry_run) fmt::print("dry run: nothing will be deleted\n");
      for (const auto& d : outcome.decisions)
        fmt::print("{:<24} {:<6} {}\n", d.id, d.keep ? "keep" : "delete", d.reason);
      if (!flags->dry_run)
        fmt::print("deleted {} backup(s){}\n", outcome.deleted.size(),
                   outcome.orphans_removed.empty() ? ""
                                                   : fmt::format(", removed {} leftover file(s)",
                                                                 outcome.orphans_removed.size()));
      return kExitOk;
    };
  });
}

}  // namespace lakevault::cli
