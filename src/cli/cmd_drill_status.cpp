#include <fmt/format.h>
#include <fmt/ranges.h>
#include <sys/statvfs.h>

#include <chrono>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli/context.h"
#include "drill/drill.h"
#include "manifest/catalog.h"
#include "offsite/offsite.h"
#include "state/state.h"

namespace lakevault::cli {

namespace {
struct DrillFlags {
  std::string backup = "latest";
  std::string path;
  bool json = false;
  std::string remote;
};
struct StatusFlags {
  std::string path;
  bool json = false;
};

// Nagios plugin exit codes.
constexpr int kOk = 0, kWarn = 1, kCrit = 2;
}  // namespace

void AddDrillStatusCommands(CLI::App& app, Context& ctx, CommandBody* body) {
  auto df = std::make_shared<DrillFlags>();
  auto* drill = app.add_subcommand(
      "drill",
      "restore a backup into a scratch folder, check every table, time it against the RTO");
  drill->add_option("backup", df->backup, "backup id or `latest` (default)");
  drill->add_option("--path", df->path, "backup folder (overrides backup_path)");
  drill->add_flag("--json", df->json, "print the report as JSON on stdout");
  drill->add_option("--remote,--from", df->remote,
                    "drill the copy on this remote: fetched (with its chain, decrypted) into the "
                    "backup folder first; the download counts toward the measured RTO");
  drill->callback([&ctx, df, body]() {
    *body = [&ctx, df]() -> Result<int> {
      LV_ASSIGN_OR_RETURN(Config config, ctx.LoadConfig());
      std::string dir = BackupDirOrPath(config, df->path);
      ctx.job_backup_dir = dir;
      std::vector<TimedStep> prior;
      std::string selector = df->backup;
      if (!df->remote.empty()) {
        // The guide's server-failure scenario starts with the download: it is timed with the rest.
        auto t0 = std::chrono::steady_clock::now();
        LV_ASSIGN_OR_RETURN(auto remote, OpenRemote(config, df->remote));
        LV_ASSIGN_OR_RETURN(auto key, ConfiguredKey(config));
        LV_ASSIGN_OR_RETURN(
            selector,
            FetchBackup(ctx.env(), *remote, selector.empty() ? "latest" : selector, dir, key));
        prior.push_back(
            {"download from " + df->remote,
             std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count()});
      }
      LV_ASSIGN_OR_RETURN(DrillReport r, RunDrill(config, dir, selector, ctx.env(), prior));
      ctx.job_details = DrillReportToJson(r);
      if (df->json) {
        std::cout << DrillReportToJson(r).dump(2) << "\n";
      } else {
        fmt::print("drill of {}: {}\n", r.id, r.ok ? "PASSED" : "FAILED");
        for (const auto& s : r.steps) fmt::print("  {:<40} {:>8.2f}s\n", s.name, s.seconds);
        for (const auto& t : r.tables)
          fmt::print("  table {:<28} v{:<6} {:>12} rows  {}\n", t.name, t.version,
                     t.rows ? fmt::format("{}", *t.rows) : "unknown", t.ok ? "ok" : t.problem);
        fmt::print("recovery time {:.2f}s against an RTO of {}s: {}\n", r.rto_seconds,
                   r.rto_objective_seconds, r.rto_ok ? "met" : "MISSED");
        fmt::print("report: {}\n", r.report_path);
      }
      if (!r.ok) return Error("drill of " + r.id + " failed: " + r.failure);
      return kExitOk;
    };
  });

  auto sf = std::make_shared<StatusFlags>();
  auto* status = app.add_subcommand(
      "status",
      "newest backup against the RPO, last verification and drill; exit 0/1/2 = OK/WARN/CRIT");
  status->add_option("--path", sf->path, "backup folder (overrides backup_path)");
  status->add_flag("--json", sf->json, "print JSON on stdout");
  status->callback([&ctx, sf, body]() {
    *body = [&ctx, sf]() -> Result<int> {
      LV_ASSIGN_OR_RETURN(Config config, ctx.LoadConfig());
      std::string dir = BackupDirOrPath(config, sf->path);
      LV_ASSIGN_OR_RETURN(Catalog catalog, Catalog::Load(dir));
      auto state = LoadState(ctx.env(), dir);
      const TimePoint now = ctx.Now();
      int code = kOk;
      std::vector<std::string> problems;
      auto raise = [&](int level, const std::string& why) {
        code = std::max(code, level);
        problems.push_back(why);
      };
      nlohmann::json doc;
      const CatalogEntry* newest = nullptr;
      for (const auto& e : catalog.entries())
        if (e.manifest) newest = &e;
      double age = -1;
      if (!newest) {
        raise(kCrit, "no backup in " + dir);
        doc["last_backup"] = nullptr;
      } else {
        auto created = ParseTime(newest->manifest->created);
        age = created.ok() ? std::chrono::duration<double>(now - *created).count() : -1;
        doc["last_backup"] = {
            {"id", newest->id},
            {"kind", newest->manifest->kind},
            {"created", newest->manifest->created},
            {"bytes", newest->archive_bytes},
            {"complete", newest->manifest->complete()},
            {"verified",
             newest->last_verify ? nlohmann::json(newest->last_verify->ok) : nlohmann::json()},
            {"verified_at",
             newest->last_verify ? nlohmann::json(newest->last_verify->time) : nlohmann::json()}};
        if (age > 2.0 * static_cast<double>(config.rpo_seconds))
          raise(kCrit, fmt::format("newest backup is {} old, RPO is {}", FormatDuration(age),
                                   FormatDuration(static_cast<double>(config.rpo_seconds))));
        else if (age > static_cast<double>(config.rpo_seconds))
          raise(kWarn, fmt::format("newest backup is {} old, RPO is {}", FormatDuration(age),
                                   FormatDuration(static_cast<double>(config.rpo_seconds))));
        if (newest->last_verify && !newest->last_verify->ok)
          raise(kCrit, "newest backup " + newest->id +
                           " failed verification: " + newest->last_verify->error);
        if (!newest->manifest->complete())
          raise(kWarn, "newest backup " + newest->id + " is incomplete");
      }
      doc["rpo_seconds"] = age >= 0 ? nlohmann::json(age) : nlohmann::json();
      doc["rpo_objective_seconds"] = config.rpo_seconds;
      doc["rpo_ok"] = age >= 0 && age <= static_cast<double>(config.rpo_seconds);
      auto drill = LastDrill(dir);
      if (drill) {
        doc["last_drill"] = {{"id", drill->id},
                             {"time", drill->time},
                             {"ok", drill->ok},
                             {"rto_seconds", drill->rto_seconds},
                             {"rto_objective_seconds", drill->rto_objective_seconds},
                             {"rto_ok", drill->rto_ok},
                             {"failure", drill->failure}};
        if (!drill->ok) raise(kWarn, "last drill failed: " + drill->failure);
        auto when = ParseTime(drill->time);
        if (when.ok() && now - *when > std::chrono::hours(24 * 35))
          raise(kWarn, "no drill in the last 35 days (the guide asks for a monthly restore test)");
      } else {
        doc["last_drill"] = nullptr;
        raise(kWarn, "no recovery drill on record (run `lakevault drill`)");
      }
      int64_t failures = 0;
      if (state.ok()) {
        auto it = state->jobs.find("backup");
        if (it != state->jobs.end()) {
          failures = it->second.failures_since_success;
          if (it->second.last_failure)
            doc["last_failure"] = {{"time", it->second.last_failure->time},
                                   {"error", it->second.last_failure->error}};
        }
      } else {
        raise(kWarn, state.message());
      }
      doc["failures_since_success"] = failures;
      if (failures > 0)
        raise(failures >= 2 ? kCrit : kWarn,
              fmt::format("{} backup failure(s) since the last success", failures));
      struct statvfs vfs;
      if (::statvfs(dir.c_str(), &vfs) == 0) {
        double free_bytes = static_cast<double>(vfs.f_bavail) * static_cast<double>(vfs.f_frsize);
        double total = static_cast<double>(vfs.f_blocks) * static_cast<double>(vfs.f_frsize);
        doc["backup_free_bytes"] = free_bytes;
        if (total > 0 && free_bytes / total < 0.05)
          raise(kCrit, "backup folder has less than 5% free space");
        else if (total > 0 && free_bytes / total < 0.10)
          raise(kWarn, "backup folder has less than 10% free space");
      }
      static const char* names[] = {"OK", "WARNING", "CRITICAL"};
      doc["status"] = names[code];
      doc["problems"] = problems;
      if (sf->json) {
        std::cout << doc.dump(2) << "\n";
      } else {
        fmt::print("LAKEVAULT {}: {}\n", names[code],
                   problems.empty() ? "backups within RPO, last drill passed"
                                    : fmt::format("{}", fmt::join(problems, "; ")));
        if (newest)
          fmt::print("  newest backup  {} ({}, {} old)\n", newest->id, newest->manifest->kind,
                     FormatDuration(age));
        if (drill)
          fmt::print("  last drill     {} {} (RTO {:.1f}s of {}s)\n", drill->time,
                     drill->ok ? "passed" : "FAILED", drill->rto_seconds,
                     drill->rto_objective_seconds);
      }
      return code;
    };
  });
}

}  // namespace lakevault::cli
