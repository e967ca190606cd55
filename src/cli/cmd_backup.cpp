#include <fmt/format.h>
#include <fmt/ranges.h>

#include <iostream>
#include <nlohmann/json.hpp>

#include "backup/backup.h"
#include "cli/context.h"
#include "offsite/offsite.h"
#include "retention/retention.h"

namespace lakevault::cli {

namespace {
struct BackupFlags {
  bool full = false;
  bool incremental = false;
  bool dry_run = false;
  bool json = false;
  bool no_verify = false;
  bool full_if_needed = false;
  bool no_prune = false;
  bool allow_missing = false;
  bool snapshot_only = false;
  std::vector<std::string> upload;
  std::string path;
  std::string compress;
};

void PrintPlan(const BackupPlan& plan, const std::string& dir, Compression c) {
  fmt::print("dry run: nothing will be written\n");
  fmt::print("would back up {} tables, {} files, {} into {}/ ({})\n", plan.tables.size(),
             plan.TotalFiles(), HumanBytes(plan.TotalBytes()), dir, CompressionName(c));
  for (const auto& t : plan.tables)
    fmt::print(
        "  table {:<28} v{:<6} {:>6} files {:>12}{}\n", t.name, t.version, t.FileCount(),
        HumanBytes(t.Bytes()),
        t.missing.empty() ? "" : fmt::format("  ({} referenced files missing)", t.missing.size()));
  for (const auto& f : plan.extra_files)
    fmt::print("  file  {:<28} {:>19}\n", f.relative_path, HumanBytes(f.size));
}
}  // namespace

void AddBackupCommand(CLI::App& app, Context& ctx, CommandBody* body) {
  auto flags = std::make_shared<BackupFlags>();
  auto* cmd =
      app.add_subcommand("backup", "back up the lake and config files into a verified archive");
  cmd->add_flag("--full", flags->full, "a full backup (the default)");
  cmd->add_flag("--incremental", flags->incremental, "only files new since the parent backup");
  cmd->add_flag("-n,--dry-run", flags->dry_run, "print what would be backed up; write nothing");
  cmd->add_option("--path", flags->path, "backup folder (overrides backup_path)");
  cmd->add_option("--compress", flags->compress, "gzip | zstd | none (overrides compression)");
  cmd->add_flag("--json", flags->json, "print the result as JSON on stdout");
  cmd->add_flag("--no-verify", flags->no_verify, "skip re-reading the new archive");
  cmd->add_flag("--full-if-needed", flags->full_if_needed,
                "take a full backup when an incremental has no sound parent");
  cmd->add_flag("--no-prune", flags->no_prune, "do not apply retention after the backup");
  cmd->add_flag("--allow-missing", flags->allow_missing,
                "take what exists when a table references missing files (backup is incomplete)");
  cmd->add_option("--upload", flags->upload,
                  "copy the new backup to this remote (a name from `remotes:`, or s3/rsync for "
                  "the first of that type); repeatable");
  cmd->add_flag("--snapshot-only", flags->snapshot_only,
                "only the files the pinned Delta version needs (no time travel after restore)");
  cmd->callback([&ctx, flags, body]() {
    *body = [&ctx, flags]() -> Result<int> {
      if (flags->full && flags->incremental)
        return Error("--full and --incremental exclude each other");
      LV_ASSIGN_OR_RETURN(Config config, ctx.LoadConfig());
      BackupOptions options;
      options.dry_run = flags->dry_run;
      options.kind = flags->full          ? BackupKind::kFull
                     : flags->incremental ? BackupKind::kIncremental
                                          : BackupKind::kAuto;
      options.full_if_needed = flags->full_if_needed;
      options.now = ctx.fixed_now;
      options.progress = ctx.ShowProgress();
      options.verify_after = !flags->no_verify;
      options.allow_missing = flags->allow_missing;
      options.snapshot_only = flags->snapshot_only;
      if (!flags->path.empty()) options.backup_dir = flags->path;
      if (!flags->compress.empty()) {
        LV_ASSIGN_OR_RETURN(options.compression, ParseCompression(flags->compress));
      }
      ctx.record_job = !flags->dry_run;
      ctx.job_backup_dir = BackupDirFor(config, options);
      // Off-site copies: --upload, and the guide's UPLOAD_S3 / UPLOAD_RSYNC. Remotes that take a
      // stream (S3) receive the archive while it is written; the others after the backup.
      std::vector<std::string> targets = flags->upload;
      if (config.upload_s3) targets.push_back("s3");
      if (config.upload_rsync) targets.push_back("rsync");
      std::optional<Key> key;
      std::vector<Result<std::unique_ptr<Storage>>> remotes;
      std::vector<std::unique_ptr<LiveUpload>> live(targets.size());
      std::vector<Status> live_failed(targets.size(), Status::Ok());
      if (!flags->dry_run && !targets.empty()) {
        // A key that cannot be read stops the backup before anything is written.
        LV_ASSIGN_OR_RETURN(key, ConfiguredKey(config));
        for (const auto& target : targets) remotes.push_back(OpenRemote(config, target));
        options.on_archive_created = [&](const std::string& path, const std::string& name) {
          for (size_t i = 0; i < remotes.size(); ++i) {
            if (!remotes[i].ok() || !(*remotes[i])->StreamsUploads()) continue;
            auto started = LiveUpload::Start(**remotes[i], path, name, key);
            if (started.ok())
              live[i] = std::move(started).value();
            else
              live_failed[i] = started.status();
          }
        };
      }
      LV_ASSIGN_OR_RETURN(BackupOutcome outcome, RunBackup(config, options, ctx.env()));
      ctx.job_details = {{"id", outcome.manifest.id},
                         {"kind", outcome.manifest.kind},
                         {"bytes_read", outcome.plan.TotalBytes()},
                         {"bytes_written", outcome.bytes_stored},
                         {"archive_bytes", outcome.archive_bytes},
                         {"files", outcome.plan.TotalFiles()},
                         {"tables", outcome.plan.tables.size()}};
      // Retention after every backup; a failure here keeps the new backup and says so.
      std::optional<PruneOutcome> pruned;
      if (!flags->dry_run && !flags->no_prune) {
        auto prune = RunPrune(ctx.env(), BackupDirFor(config, options), config.retention, ctx.Now(),
                              PruneOptions{});
        if (!prune.ok())
          return Error("backup " + outcome.manifest.id +
                       " is written and verified, but retention failed: " + prune.message());
        pruned = std::move(prune).value();
      }
      const std::string dir = BackupDirFor(config, options);
      nlohmann::json uploads = nlohmann::json::array();
      if (!flags->dry_run && !targets.empty()) {
        for (size_t i = 0; i < targets.size(); ++i) {
          const std::string& target = targets[i];
          auto& remote = remotes[i];
          auto up = !remote.ok()           ? Result<UploadOutcome>(remote.error())
                    : !live_failed[i].ok() ? Result<UploadOutcome>(live_failed[i].error())
                    : live[i]              ? live[i]->Complete(ctx.env(), dir, outcome.manifest.id)
                              : UploadBackup(ctx.env(), **remote, dir, outcome.manifest.id, key);
          if (!up.ok())
            return Error(
                "backup " + outcome.manifest.id +
                " is written and verified locally, but the off-site copy failed: " + up.message());
          uploads.push_back({{"remote", target},
                             {"where", (*remote)->Describe()},
                             {"encrypted", up->encrypted},
                             {"bytes", up->bytes},
                             {"objects", up->objects}});
          if (!flags->json)
            fmt::print("uploaded {} to {}{}\n", outcome.manifest.id, (*remote)->Describe(),
                       up->encrypted ? " (encrypted)" : "");
        }
      }
      ctx.job_details["uploads"] = uploads;
      const Compression c = options.compression.value_or(config.compression);
      if (flags->json) {
        nlohmann::json doc;
        doc["dry_run"] = flags->dry_run;
        doc["tables"] = nlohmann::json::array();
        for (const auto& t : outcome.plan.tables)
          doc["tables"].push_back({{"name", t.name},
                                   {"files", t.FileCount()},
                                   {"bytes", t.Bytes()},
                                   {"version", t.version},
                                   {"rows", t.rows ? nlohmann::json(*t.rows) : nlohmann::json()},
                                   {"missing", t.missing}});
        doc["files"] = outcome.plan.TotalFiles();
        doc["bytes"] = outcome.plan.TotalBytes();
        if (!flags->dry_run) {
          doc["id"] = outcome.manifest.id;
          doc["kind"] = outcome.manifest.kind;
          doc["archive"] = outcome.archive_path;
          doc["archive_bytes"] = outcome.archive_bytes;
          doc["seconds"] = outcome.seconds;
          doc["verified"] = options.verify_after;
          doc["parent"] = outcome.manifest.parent.empty() ? nlohmann::json(nullptr)
                                                          : nlohmann::json(outcome.manifest.parent);
          doc["kind_reason"] = outcome.kind_reason;
          doc["files_stored"] = outcome.files_stored;
          doc["bytes_stored"] = outcome.bytes_stored;
          doc["pruned"] = pruned ? nlohmann::json(pruned->deleted) : nlohmann::json::array();
          doc["uploads"] = uploads;
        }
        std::cout << doc.dump(2) << "\n";
      } else if (flags->dry_run) {
        PrintPlan(outcome.plan, dir, c);
      } else {
        fmt::print("{} {}{}: {} tables, {} files, {} ({} files, {} new) -> {} ({}){}\n",
                   outcome.manifest.id, outcome.manifest.kind,
                   outcome.manifest.parent.empty() ? "" : " on " + outcome.manifest.parent,
                   outcome.plan.tables.size(), outcome.plan.TotalFiles(),
                   HumanBytes(outcome.plan.TotalBytes()), outcome.files_stored,
                   HumanBytes(outcome.bytes_stored), HumanBytes(outcome.archive_bytes),
                   outcome.archive_path, options.verify_after ? ", verified" : "");
        if (pruned && !pruned->deleted.empty())
          fmt::print("retention deleted {} backup(s): {}\n", pruned->deleted.size(),
                     fmt::join(pruned->deleted, ", "));
      }
      return kExitOk;
    };
  });
}

}  // namespace lakevault::cli
