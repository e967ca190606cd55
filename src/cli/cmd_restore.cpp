#include <fmt/format.h>

#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli/context.h"
#include "core/lock.h"
#include "crypto/encrypt.h"
#include "offsite/offsite.h"
#include "restore/restore.h"

namespace lakevault::cli {

namespace {
struct RestoreFlags {
  std::string backup = "latest";
  std::string at;
  std::vector<std::string> tables;
  int64_t version = -1;
  std::string to;
  std::string path;
  std::string from;
  bool with_config = false;
  bool dry_run = false;
  bool yes = false;
  bool json = false;
  bool cleanup = false;
};

nlohmann::json OutcomeJson(const RestoreOutcome& o) {
  nlohmann::json steps = nlohmann::json::array();
  for (const auto& s : o.steps) steps.push_back({{"name", s.name}, {"seconds", s.seconds}});
  return {{"id", o.id},           {"created", o.created},
          {"tables", o.tables},   {"config_files", o.config_files},
          {"files", o.files},     {"bytes", o.bytes},
          {"target", o.target},   {"rollback_dir", o.rollback_dir},
          {"dry_run", o.dry_run}, {"steps", steps},
          {"seconds", o.seconds}};
}
}  // namespace

void AddRestoreCommands(CLI::App& app, Context& ctx, CommandBody* body) {
  auto flags = std::make_shared<RestoreFlags>();
  auto* cmd = app.add_subcommand(
      "restore", "restore a backup into the lake (transactional: all or nothing, with rollback)");
  cmd->add_option("backup", flags->backup, "backup id or `latest` (default)");
  cmd->add_option("--at", flags->at, "the newest backup taken at or before this time");
  cmd->add_option("--table", flags->tables, "only this table (repeatable); others stay untouched");
  cmd->add_option("--version", flags->version, "with one --table: restore that Delta version");
  cmd->add_option("--to", flags->to, "restore into this new folder instead (no hooks, no swap)");
  cmd->add_option("--path", flags->path, "backup folder (overrides backup_path)");
  cmd->add_flag("--with-config", flags->with_config, "also restore config files and .env");
  cmd->add_option("--from", flags->from,
                  "fetch the backup (and its chain) from this remote first: a name from "
                  "`remotes:`, s3://bucket/prefix, user@host:/path or a folder");
  cmd->add_flag("-n,--dry-run", flags->dry_run, "say what would be restored; change nothing");
  cmd->add_flag("-y,--yes", flags->yes, "do not ask for confirmation on a terminal");
  cmd->add_flag("--json", flags->json, "print the result as JSON on stdout");
  cmd->add_flag("--cleanup", flags->cleanup, "only remove the kept rollback copy");
  cmd->callback([&ctx, flags, body]() {
    *body = [&ctx, flags]() -> Result<int> {
      LV_ASSIGN_OR_RETURN(Config config, ctx.LoadConfig());
      if (flags->cleanup) {
        LV_ASSIGN_OR_RETURN(std::string what, CleanupRollback(config));
        fmt::print("{}\n", what);
        return kExitOk;
      }
      RestoreRequest req;
      req.backup = flags->backup;
      if (!flags->at.empty()) {
        LV_ASSIGN_OR_RETURN(req.at, ParseTime(flags->at));
      }
      req.tables = flags->tables;
      if (flags->version >= 0) req.version = flags->version;
      if (!flags->to.empty())
        req.to_dir = std::filesystem::absolute(flags->to).lexically_normal().string();
      req.with_config = flags->with_config;
      req.dry_run = flags->dry_run;
      if (!flags->path.empty()) req.backup_dir = config.Resolve(flags->path);
      if (!flags->from.empty()) {
        // The server-failure scenario: only the config on a new machine, backups off-site.
        LV_ASSIGN_OR_RETURN(auto remote, OpenRemote(config, flags->from));
        LV_ASSIGN_OR_RETURN(auto key, ConfiguredKey(config));
        std::string local = req.backup_dir.empty() ? config.BackupDir() : req.backup_dir;
        LV_ASSIGN_OR_RETURN(req.backup, FetchBackup(ctx.env(), *remote, req.backup, local, key));
        req.backup_dir = local;
      }
      if (!req.dry_run && req.to_dir.empty() && !flags->yes && ::isatty(0) && ::isatty(2)) {
        std::cerr << "restore " << req.backup << " into " << config.LakeDir()
                  << " (the current lake is kept for rollback)? [y/N] ";
        std::string answer;
        std::getline(std::cin, answer);
        if (answer != "y" && answer != "Y" && answer != "yes") return Error("restore cancelled");
      }
      std::optional<FileLock> lock;
      if (!req.dry_run) {
        std::error_code ec;
        std::filesystem::create_directories(RestoreWorkDir(config), ec);
        LV_ASSIGN_OR_RETURN(lock, FileLock::Acquire(RestoreWorkDir(config) + "/.lock", "restore"));
      }
      ctx.record_job = !req.dry_run;
      if (!req.backup_dir.empty()) ctx.job_backup_dir = req.backup_dir;
      LV_ASSIGN_OR_RETURN(RestoreOutcome o, RunRestore(config, req, ctx.env()));
      ctx.job_details = OutcomeJson(o);
      if (flags->json) {
        std::cout << OutcomeJson(o).dump(2) << "\n";
      } else if (o.dry_run) {
        fmt::print("dry run: nothing will be changed\n");
        fmt::print("would restore {} (taken {}) into {}: {} tables, {} files, {}\n", o.id,
                   o.created, o.target, o.tables.size(), o.files, HumanBytes(o.bytes));
        for (const auto& t : o.tables) fmt::print("  table {}\n", t);
        for (const auto& f : o.config_files) fmt::print("  file  {}\n", f);
      } else {
        fmt::print("restored {} (taken {}) into {}: {} tables, {} files, {} in {:.2f}s\n", o.id,
                   o.created, o.target, o.tables.size(), o.files, HumanBytes(o.bytes), o.seconds);
        for (const auto& s : o.steps) fmt::print("  {:<40} {:>8.2f}s\n", s.name, s.seconds);
        if (!o.rollback_dir.empty())
          fmt::print("previous state kept in {} (`lakevault rollback` undoes this restore)\n",
                     o.rollback_dir);
      }
      return kExitOk;
    };
  });

  auto key_file = std::make_shared<std::string>();
  auto* key = app.add_subcommand("key", "manage the encryption key for off-site copies");
  key->require_subcommand(1);
  auto* gen = key->add_subcommand("generate", "write a new random key file (mode 0600)");
  gen->add_option("file", *key_file, "where to write the key")->required();
  gen->callback([&ctx, key_file, body]() {
    *body = [&ctx, key_file]() -> Result<int> {
      LV_RETURN_IF_ERROR(GenerateKeyFile(*key_file, ctx.env()));
      fmt::print(
          "key written to {} (mode 0600); set `encryption: {{key_file: {}}}` and keep a "
          "copy off this machine: without it encrypted backups cannot be restored\n",
          *key_file, *key_file);
      return kExitOk;
    };
  });

  auto* rb = app.add_subcommand("rollback", "undo the last restore from its kept copy");
  auto rb_json = std::make_shared<bool>(false);
  rb->add_flag("--json", *rb_json, "the outcome as JSON");
  rb->callback([&ctx, body, rb_json]() {
    *body = [&ctx, rb_json]() -> Result<int> {
      LV_ASSIGN_OR_RETURN(Config config, ctx.LoadConfig());
      std::error_code ec;
      std::filesystem::create_directories(RestoreWorkDir(config), ec);
      LV_ASSIGN_OR_RETURN(auto lock,
                          FileLock::Acquire(RestoreWorkDir(config) + "/.lock", "restore"));
      LV_ASSIGN_OR_RETURN(std::string what, RunRollback(config, ctx.env()));
      if (*rb_json) {
        fmt::print("{}\n", nlohmann::json{{"ok", true}, {"rolled_back", what}}.dump(2));
        return kExitOk;
      }
      fmt::print("{}\n", what);
      return kExitOk;
    };
  });
}

}  // namespace lakevault::cli
