// What every command shares: global options, the loaded config, the Env, output helpers.
#pragma once

#include <CLI/CLI.hpp>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "config/config.h"
#include "core/env.h"
#include "core/log.h"
#include "core/result.h"
#include "core/time.h"

namespace lakevault::cli {

// Exit codes: 0 done and verified, 1 failed, 2 bad usage or configuration.
inline constexpr int kExitOk = 0;
inline constexpr int kExitFailed = 1;
inline constexpr int kExitUsage = 2;

struct Context {
  std::string config_path;
  bool quiet = false;
  bool verbose = false;
  bool progress = false;  // --progress: draw bars even when stderr is not a terminal
  // Progress bars: on a terminal unless --quiet, or when forced.
  bool ShowProgress() const;
  std::string working_dir;
  std::unique_ptr<Env> fault_env;  // set when LAKEVAULT_FAULT asks for injected failures
  // LAKEVAULT_NOW: the time jobs take as "now" (simulations and tests of retention); unset in
  // production.
  std::optional<TimePoint> fixed_now;
  TimePoint Now() const { return fixed_now.value_or(Clock::now()); }

  Env& env() { return fault_env ? *fault_env : Env::Default(); }
  // Set by state-changing commands for the record kept after the job (state, metrics, alerts).
  nlohmann::json job_details = nlohmann::json::object();
  std::string job_backup_dir;  // when the command used another folder than backup_path
  bool record_job = true;      // false for dry runs and read-only modes
  // Loads the config and opens its log file. Errors are configuration errors (exit 2).
  Result<Config> LoadConfig();
};

// A command's body: returns its exit code, or an Error that main prints as one line.
using CommandBody = std::function<Result<int>()>;

// Each command file registers its subcommand and sets `*body` for main to run.
void AddBackupCommand(CLI::App& app, Context& ctx, CommandBody* body);
void AddListCommand(CLI::App& app, Context& ctx, CommandBody* body);
void AddUploadCommand(CLI::App& app, Context& ctx, CommandBody* body);
void AddVerifyCommand(CLI::App& app, Context& ctx, CommandBody* body);
void AddPruneCommand(CLI::App& app, Context& ctx, CommandBody* body);
void AddConsolidateCommand(CLI::App& app, Context& ctx, CommandBody* body);
void AddSystemdCommand(CLI::App& app, Context& ctx, CommandBody* body);
void AddReportCommand(CLI::App& app, Context& ctx, CommandBody* body);
void AddCheckCommand(CLI::App& app, Context& ctx, CommandBody* body);
void AddRestoreCommands(CLI::App& app, Context& ctx, CommandBody* body);
void AddDrillStatusCommands(CLI::App& app, Context& ctx, CommandBody* body);

std::string HumanBytes(int64_t bytes);
// The backup folder a command works on: --path when given, else the config's backup_path.
std::string BackupDirOrPath(const Config& config, const std::string& path_flag);

}  // namespace lakevault::cli
