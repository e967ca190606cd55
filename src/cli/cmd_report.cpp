#include <fmt/format.h>

#include <filesystem>

#include "backup/backup.h"
#include "check/check.h"
#include "cli/context.h"
#include "core/time.h"
#include "drill/drill.h"
#include "manifest/catalog.h"
#include "report/report.h"

namespace lakevault::cli {

namespace {
struct ReportFlags {
  std::string html;
  std::string path;
};
}  // namespace

// Gathers what the report shows from the catalogue (and, where available, drills and checks).
Result<ReportData> GatherReportData(Context& ctx, const Config& config, const std::string& dir) {
  ReportData data;
  data.generated = FormatIso8601(Clock::now());
  data.now = FormatIso8601(ctx.Now());
  data.lake = config.LakeDir();
  data.rpo_seconds = config.rpo_seconds;
  data.rto_seconds = config.rto_seconds;
  LV_ASSIGN_OR_RETURN(Catalog catalog, Catalog::Load(dir));
  for (const auto& e : catalog.entries()) {
    if (!e.manifest) continue;
    ReportBackup b;
    b.id = e.id;
    b.kind = e.manifest->kind;
    b.created = e.manifest->created;
    b.archive_bytes = e.archive_bytes;
    b.lake_bytes = e.manifest->TotalBytes();
    b.duration_seconds = e.manifest->duration_seconds;
    if (e.last_verify) b.verified = e.last_verify->ok;
    data.backups.push_back(b);
  }
  for (const auto& d : AllDrills(dir))
    data.drills.push_back(ReportDrill{d.time, d.id, d.rto_seconds, d.ok});
  if (std::filesystem::is_directory(config.LakeDir())) {
    auto checked = CheckLake(ctx.env(), config.LakeDir());
    if (checked.ok()) {
      data.tables_checked = true;
      for (const auto& t : checked->tables) {
        std::string problem = !t.unreadable.empty()        ? t.unreadable.front()
                              : !t.missing_files.empty()   ? "missing " + t.missing_files.front()
                              : !t.size_mismatches.empty() ? t.size_mismatches.front()
                                                           : "";
        data.tables.push_back(
            ReportTable{t.name, t.version, t.rows, t.live_files, t.bytes, t.healthy, problem});
      }
    }
  }
  return data;
}

void AddReportCommand(CLI::App& app, Context& ctx, CommandBody* body) {
  auto flags = std::make_shared<ReportFlags>();
  auto* cmd =
      app.add_subcommand("report", "write an HTML report: history, RPO, drills, table health");
  cmd->add_option("--html", flags->html, "output file")->required();
  cmd->add_option("--path", flags->path, "backup folder (overrides backup_path)");
  cmd->callback([&ctx, flags, body]() {
    *body = [&ctx, flags]() -> Result<int> {
      LV_ASSIGN_OR_RETURN(Config config, ctx.LoadConfig());
      BackupOptions where;
      if (!flags->path.empty()) where.backup_dir = flags->path;
      LV_ASSIGN_OR_RETURN(ReportData data,
                          GatherReportData(ctx, config, BackupDirFor(config, where)));
      std::string target = std::filesystem::absolute(flags->html).string();
      LV_RETURN_IF_ERROR(WriteFileAtomically(ctx.env(), target, RenderHtmlReport(data), 0644));
      fmt::print("report written to {} ({} backups, {} drills)\n", target, data.backups.size(),
                 data.drills.size());
      return kExitOk;
    };
  });
}

}  // namespace lakevault::cli
