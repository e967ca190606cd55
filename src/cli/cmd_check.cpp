#include <fmt/format.h>

#include <iostream>

#include "check/check.h"
#include "cli/context.h"

namespace lakevault::cli {

namespace {
struct CheckFlags {
  std::string lake;
  std::vector<std::string> tables;
  bool json = false;
};
}  // namespace

void AddCheckCommand(CLI::App& app, Context& ctx, CommandBody* body) {
  auto flags = std::make_shared<CheckFlags>();
  auto* cmd = app.add_subcommand(
      "check", "open every Delta table and report its version, files, rows and problems");
  cmd->add_option("--lake", flags->lake, "lake folder (default: `lake:` from the config)");
  cmd->add_option("--table", flags->tables, "only this table (repeatable)");
  cmd->add_flag("--json", flags->json, "print the report as JSON on stdout");
  cmd->callback([&ctx, flags, body]() {
    *body = [&ctx, flags]() -> Result<int> {
      std::string lake = flags->lake;
      if (lake.empty()) {
        LV_ASSIGN_OR_RETURN(Config config, ctx.LoadConfig());
        lake = config.LakeDir();
      }
      LV_ASSIGN_OR_RETURN(CheckReport report, CheckLake(ctx.env(), lake, flags->tables));
      if (flags->json) {
        WriteCheckReportJson(report, std::cout);
        std::cout << "\n";
      } else {
        for (const auto& t : report.tables) {
          fmt::print("{:<6} {:<32} v{:<6} {:>7} files {:>12} {:>14} rows\n",
                     t.healthy ? "OK" : "FAIL", t.name, t.version, t.live_files,
                     HumanBytes(t.bytes), t.rows ? fmt::format("{}", *t.rows) : "unknown");
          for (const auto& m : t.missing_files) fmt::print("       missing: {}\n", m);
          for (const auto& m : t.size_mismatches) fmt::print("       size mismatch: {}\n", m);
          for (const auto& m : t.unreadable) fmt::print("       unreadable: {}\n", m);
          for (const auto& m : t.absolute_paths) fmt::print("       outside the table: {}\n", m);
          for (const auto& m : t.warnings) fmt::print("       warning: {}\n", m);
        }
      }
      if (!report.healthy()) {
        std::string bad;
        int n = 0;
        for (const auto& t : report.tables)
          if (!t.healthy) bad += (n++ ? ", " : "") + t.name;
        return Error(fmt::format("{} of {} tables unhealthy: {}", n, report.tables.size(), bad));
      }
      return kExitOk;
    };
  });
}

}  // namespace lakevault::cli
