#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <iostream>
#include <nlohmann/json.hpp>

#include "cli/context.h"
#include "core/time.h"
#include "manifest/catalog.h"
#include "verify/verify.h"

namespace lakevault::cli {

namespace {
struct VerifyFlags {
  std::string selector;
  bool all = false;
  bool json = false;
  bool read_data = false;
  std::string path;
};
}  // namespace

void AddVerifyCommand(CLI::App& app, Context& ctx, CommandBody* body) {
  auto flags = std::make_shared<VerifyFlags>();
  auto* cmd = app.add_subcommand("verify", "check a backup's checksums and every file's SHA-256");
  cmd->add_option("backup", flags->selector, "backup id, or latest (default)");
  cmd->add_flag("--all", flags->all, "verify every backup");
  cmd->add_flag("--json", flags->json, "print JSON on stdout");
  cmd->add_flag("--read-data", flags->read_data, "also read every member's data (always done)");
  cmd->add_option("--path", flags->path, "backup folder (overrides backup_path)");
  cmd->callback([&ctx, flags, body]() {
    *body = [&ctx, flags]() -> Result<int> {
      LV_ASSIGN_OR_RETURN(Config config, ctx.LoadConfig());
      std::string dir = BackupDirOrPath(config, flags->path);
      ctx.job_backup_dir = dir;
      LV_ASSIGN_OR_RETURN(Catalog catalog, Catalog::Load(dir));
      std::vector<const CatalogEntry*> targets;
      if (flags->all) {
        if (!flags->selector.empty()) return Error("give a backup id or --all, not both");
        for (const auto& e : catalog.entries()) targets.push_back(&e);
        if (targets.empty()) return Error("no backups in " + dir);
      } else {
        LV_ASSIGN_OR_RETURN(const CatalogEntry* entry, catalog.Find(flags->selector));
        targets.push_back(entry);
      }
      nlohmann::json results = nlohmann::json::array();
      std::string first_problem;
      int failed = 0;
      std::map<std::string, VerifyReport> cache;
      for (const CatalogEntry* entry : targets) {
        VerifyReport report = VerifyBackupWithChain(ctx.env(), catalog, *entry, &cache);
        VerifyRecord record{FormatIso8601(Clock::now()), report.ok,
                            report.ok ? "" : report.problems.front()};
        Status saved = WriteVerifyRecord(ctx.env(), dir, entry->id, record);
        if (!saved.ok()) spdlog::warn("could not record the result: {}", saved.message());
        if (!report.ok) {
          ++failed;
          if (first_problem.empty()) first_problem = report.problems.front();
          for (const auto& p : report.problems) spdlog::debug("{}", p);
        }
        results.push_back({{"id", entry->id},
                           {"ok", report.ok},
                           {"members", report.members},
                           {"bytes", report.bytes},
                           {"problems", report.problems}});
        if (!flags->json) {
          if (report.ok)
            fmt::print("{}: ok ({} members, {} verified)\n", entry->id, report.members,
                       HumanBytes(report.bytes));
          else
            for (const auto& p : report.problems) fmt::print("{}: FAILED: {}\n", entry->id, p);
        }
      }
      if (flags->json)
        std::cout << nlohmann::json{{"backups", results}, {"ok", failed == 0}}.dump(
                         2, ' ', false, nlohmann::json::error_handler_t::replace)
                  << "\n";
      if (failed > 0) {
        std::string more = failed > 1 ? fmt::format(" (and {} more failed)", failed - 1) : "";
        return Error("verification failed: " + first_problem + more +
                     "; use an earlier backup (`lakevault list`)");
      }
      return kExitOk;
    };
  });
}

}  // namespace lakevault::cli
