#include <fmt/format.h>

#include <iostream>
#include <nlohmann/json.hpp>

#include "backup/backup.h"
#include "backup/consolidate.h"
#include "cli/context.h"

namespace lakevault::cli {

namespace {
struct ConsolidateFlags {
  std::string selector;
  std::string path;
  std::string compress;
  bool json = false;
};
}  // namespace

void AddConsolidateCommand(CLI::App& app, Context& ctx, CommandBody* body) {
  auto flags = std::make_shared<ConsolidateFlags>();
  auto* cmd = app.add_subcommand(
      "consolidate", "write a full backup equal to an incremental's chain (no lake read)");
  cmd->add_option("backup", flags->selector, "backup id, or latest (default)");
  cmd->add_option("--path", flags->path, "backup folder (overrides backup_path)");
  cmd->add_option("--compress", flags->compress, "gzip | zstd | none (overrides compression)");
  cmd->add_flag("--json", flags->json, "print JSON on stdout");
  cmd->callback([&ctx, flags, body]() {
    *body = [&ctx, flags]() -> Result<int> {
      LV_ASSIGN_OR_RETURN(Config config, ctx.LoadConfig());
      BackupOptions where;
      if (!flags->path.empty()) where.backup_dir = flags->path;
      Compression c = config.compression;
      if (!flags->compress.empty()) {
        LV_ASSIGN_OR_RETURN(c, ParseCompression(flags->compress));
      }
      LV_ASSIGN_OR_RETURN(auto outcome, RunConsolidate(ctx.env(), BackupDirFor(config, where),
                                                       flags->selector, c, ctx.fixed_now));
      if (flags->json) {
        std::cout << nlohmann::json{{"id", outcome.manifest.id},
                                    {"consolidated_from", outcome.manifest.consolidated_from},
                                    {"files", outcome.manifest.listed_files},
                                    {"archive", outcome.archive_path},
                                    {"archive_bytes", outcome.archive_bytes}}
                         .dump(2)
                  << "\n";
      } else {
        fmt::print("{} full (consolidated from {}): {} files -> {} ({}), verified\n",
                   outcome.manifest.id, outcome.manifest.consolidated_from,
                   outcome.manifest.listed_files, HumanBytes(outcome.archive_bytes),
                   outcome.archive_path);
      }
      return kExitOk;
    };
  });
}

}  // namespace lakevault::cli
