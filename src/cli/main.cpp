// lakevault: backup, restore and recovery for a Delta Lake data lake.
#include <fmt/format.h>
#include <malloc.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <set>

#include "backup/backup.h"
#include "cli/context.h"
#include "ops/notify.h"
#include "state/state.h"

namespace lakevault::cli {

Result<Config> Context::LoadConfig() {
  auto config = lakevault::LoadConfig(working_dir, config_path);
  if (config.ok() && !config->log_file.empty()) AddLogFile(config->Resolve(config->log_file));
  return config;
}

bool Context::ShowProgress() const { return progress || (!quiet && ::isatty(2)); }

std::string BackupDirOrPath(const Config& config, const std::string& path_flag) {
  return path_flag.empty() ? config.BackupDir() : std::filesystem::absolute(path_flag).string();
}

std::string HumanBytes(int64_t bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double value = static_cast<double>(bytes);
  int unit = 0;
  while (value >= 1024 && unit < 4) {
    value /= 1024;
    ++unit;
  }
  return unit == 0 ? fmt::format("{} B", bytes) : fmt::format("{:.1f} {}", value, units[unit]);
}

}  // namespace lakevault::cli

int main(int argc, char** argv) {
  using namespace lakevault;
  using namespace lakevault::cli;
  // Archive blocks of about 1 MiB are allocated and freed by the thousand on several threads.
  // glibc would map and unmap each one (a page fault per 4 KiB, zeroed by the kernel); kept in
  // the heap they are reused, which saves about a tenth of the CPU time of a backup or verify.
  mallopt(M_MMAP_THRESHOLD, 64 << 20);
  mallopt(M_TRIM_THRESHOLD, 32 << 20);
  // One arena for every thread: the worker threads' blocks are reused across threads rather than
  // each arena keeping its own freed blocks, and malloc_trim can hand back what a threaded step
  // left (it cannot shrink the top of a second arena). With two, verify of 300,000 files kept
  // 8 MB of the archive step's blocks through its log replay: 71 MiB at the peak, 62 with one.
  // Backup, verify and restore times of a 512 MiB lake were the same with one and two.
  mallopt(M_ARENA_MAX, 1);
  Context ctx;
  ctx.working_dir = std::filesystem::current_path().string();

  CLI::App app{"lakevault: backup, restore and recovery for a Delta Lake data lake"};
  app.set_version_flag("--version", LakevaultVersion());
  app.require_subcommand(1);
  app.add_option("--config", ctx.config_path, "config file (default: ./lakevault.yaml if present)");
  app.add_flag("-q,--quiet", ctx.quiet, "only errors on stderr");
  app.add_flag("-v,--verbose", ctx.verbose, "debug detail on stderr");
  app.add_flag("--progress", ctx.progress, "progress bars even when stderr is not a terminal");

  CommandBody body;
  AddBackupCommand(app, ctx, &body);
  AddListCommand(app, ctx, &body);
  AddUploadCommand(app, ctx, &body);
  AddVerifyCommand(app, ctx, &body);
  AddPruneCommand(app, ctx, &body);
  AddConsolidateCommand(app, ctx, &body);
  AddSystemdCommand(app, ctx, &body);
  AddReportCommand(app, ctx, &body);
  AddCheckCommand(app, ctx, &body);
  AddRestoreCommands(app, ctx, &body);
  AddDrillStatusCommands(app, ctx, &body);

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::cerr << "lakevault: error: " << e.what() << " (see lakevault --help)\n";
    return kExitUsage;
  }

  InitLogging(ctx.quiet     ? Verbosity::kQuiet
              : ctx.verbose ? Verbosity::kVerbose
                            : Verbosity::kNormal);
  if (const char* fault = std::getenv("LAKEVAULT_FAULT"); fault && *fault) {
    auto spec = FaultSpec::Parse(fault);
    if (!spec.ok()) {
      std::cerr << "lakevault: error: LAKEVAULT_FAULT: " << spec.message() << "\n";
      return kExitUsage;
    }
    ctx.fault_env = NewFaultInjectingEnv(Env::Default(), *spec);
  }
  if (const char* now = std::getenv("LAKEVAULT_NOW"); now && *now) {
    auto parsed = ParseTime(now);
    if (!parsed.ok()) {
      std::cerr << "lakevault: error: LAKEVAULT_NOW: " << parsed.message() << "\n";
      return kExitUsage;
    }
    ctx.fixed_now = *parsed;
  }
  if (!body) return kExitUsage;
  const std::string command =
      app.get_subcommands().empty() ? "" : app.get_subcommands()[0]->get_name();
  static const std::set<std::string> kJobs = {"backup",   "verify", "prune",      "restore",
                                              "rollback", "drill",  "consolidate"};
  auto job_started = std::chrono::steady_clock::now();
  const TimePoint job_time = ctx.Now();
  Result<int> code = body();
  if (kJobs.count(command) && ctx.record_job) {
    auto config = lakevault::LoadConfig(ctx.working_dir, ctx.config_path);
    if (config.ok()) {
      JobRecord record;
      record.job = command;
      record.ok = code.ok() && *code == kExitOk;
      record.time = FormatIso8601(job_time);
      record.seconds =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - job_started).count();
      if (!code.ok())
        record.error = code.message();
      else if (*code != kExitOk)
        record.error = ctx.job_details.value("error", "exit " + std::to_string(*code));
      record.details = ctx.job_details;
      std::string dir = ctx.job_backup_dir.empty() ? config->BackupDir() : ctx.job_backup_dir;
      AfterJob(*config, dir, record, ctx.env(), ctx.Now());
    }
  }
  if (!code.ok()) {
    std::fflush(stdout);  // the report a command printed comes before its one-line verdict
    spdlog::error("{}", code.message());
    return kExitFailed;
  }
  return *code;
}
