#include <fmt/format.h>

#include <iostream>
#include <nlohmann/json.hpp>

#include "cli/context.h"
#include "manifest/catalog.h"
#include "offsite/offsite.h"

namespace lakevault::cli {

namespace {
struct UploadFlags {
  std::string selector = "latest";
  std::vector<std::string> remotes;
  std::string path;
  bool json = false;
  bool dry_run = false;
};
}  // namespace

// The off-site copy again, for a backup whose upload failed (the remote was down) or for a
// remote added later. Ancestors the remote lacks go up with it.
void AddUploadCommand(CLI::App& app, Context& ctx, CommandBody* body) {
  auto flags = std::make_shared<UploadFlags>();
  auto* cmd = app.add_subcommand(
      "upload", "copy a local backup (and the chain it needs) to a remote, encrypted with a key");
  cmd->add_option("backup", flags->selector, "backup id, or latest (default)");
  cmd->add_option("--remote", flags->remotes,
                  "a remote from `remotes:` (or s3/rsync for the first of that type); repeatable")
      ->required();
  cmd->add_option("--path", flags->path, "backup folder (overrides backup_path)");
  cmd->add_flag("--json", flags->json, "print the result as JSON on stdout");
  cmd->add_flag("-n,--dry-run", flags->dry_run, "say what would be uploaded; send nothing");
  cmd->callback([&ctx, flags, body]() {
    *body = [&ctx, flags]() -> Result<int> {
      LV_ASSIGN_OR_RETURN(Config config, ctx.LoadConfig());
      const std::string dir = BackupDirOrPath(config, flags->path);
      LV_ASSIGN_OR_RETURN(Catalog catalog, Catalog::Load(dir));
      LV_ASSIGN_OR_RETURN(const CatalogEntry* entry, catalog.Find(flags->selector));
      const std::string id = entry->id;
      LV_ASSIGN_OR_RETURN(auto key, ConfiguredKey(config));
      nlohmann::json uploads = nlohmann::json::array();
      for (const auto& name : flags->remotes) {
        LV_ASSIGN_OR_RETURN(auto remote, OpenRemote(config, name));
        if (flags->dry_run) {
          uploads.push_back({{"remote", name},
                             {"where", remote->Describe()},
                             {"encrypted", key.has_value()},
                             {"archive", entry->archive_name + (key ? ".enc" : "")},
                             {"bytes", entry->archive_bytes}});
          if (!flags->json)
            fmt::print("would upload {} ({}) to {}{}\n", id, HumanBytes(entry->archive_bytes),
                       remote->Describe(), key ? " encrypted" : "");
          continue;
        }
        LV_ASSIGN_OR_RETURN(UploadOutcome up, UploadBackup(ctx.env(), *remote, dir, id, key));
        uploads.push_back({{"remote", name},
                           {"where", remote->Describe()},
                           {"encrypted", up.encrypted},
                           {"bytes", up.bytes},
                           {"objects", up.objects}});
        if (!flags->json)
          fmt::print("uploaded {} to {}{} ({})\n", id, remote->Describe(),
                     up.encrypted ? " encrypted" : "", HumanBytes(up.bytes));
      }
      if (flags->json)
        std::cout
            << nlohmann::json{{"id", id}, {"dry_run", flags->dry_run}, {"uploads", uploads}}.dump(2)
            << "\n";
      return kExitOk;
    };
  });
}

}  // namespace lakevault::cli
