#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <cerrno>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>
#include <optional>

#include "cli/context.h"
#include "core/time.h"
#include "manifest/catalog.h"
#include "offsite/offsite.h"
#include "verify/verify.h"

namespace lakevault::cli {

namespace {
struct VerifyFlags {
  std::string selector;
  bool all = false;
  bool json = false;
  bool read_data = false;
  std::string path;
  std::string remote;
};

// A scratch folder inside the backup folder (same file system as the backups, not /tmp, which
// may be too small for an archive); removed with everything in it when this goes.
class ScratchDir {
 public:
  static Result<ScratchDir> Create(const std::string& parent) {
    std::error_code ec;
    std::filesystem::create_directories(parent, ec);
    ::chmod(parent.c_str(), 0700);
    std::string templ = parent + "/.lakevault-remote-XXXXXX";
    if (::mkdtemp(templ.data()) == nullptr)
      return ErrnoError("creating a scratch folder in " + parent, errno);
    return ScratchDir(templ);
  }
  ScratchDir(ScratchDir&& other) noexcept : path_(std::move(other.path_)) { other.path_.clear(); }
  ~ScratchDir() {
    std::error_code ec;
    if (!path_.empty()) std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }

 private:
  explicit ScratchDir(std::string path) : path_(std::move(path)) {}
  std::string path_;
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
  cmd->add_option("--remote", flags->remote,
                  "verify the copy on this remote (a name from the config, s3://..., "
                  "user@host:/path): downloaded into a scratch folder, decrypted, verified");
  cmd->callback([&ctx, flags, body]() {
    *body = [&ctx, flags]() -> Result<int> {
      LV_ASSIGN_OR_RETURN(Config config, ctx.LoadConfig());
      std::string dir = BackupDirOrPath(config, flags->path);
      ctx.job_backup_dir = dir;
      std::optional<ScratchDir> scratch;
      std::vector<std::string> fetch_problems;
      if (!flags->remote.empty()) {
        LV_ASSIGN_OR_RETURN(auto remote, OpenRemote(config, flags->remote));
        LV_ASSIGN_OR_RETURN(auto key, ConfiguredKey(config));
        LV_ASSIGN_OR_RETURN(auto listed, ListRemoteBackups(*remote));
        if (listed.empty()) return Error("no backups on " + remote->Describe());
        std::vector<std::string> ids;
        if (flags->all) {
          for (const auto& b : listed) ids.push_back(b.id);
        } else {
          ids.push_back(flags->selector.empty() ? "latest" : flags->selector);
        }
        LV_ASSIGN_OR_RETURN(ScratchDir made, ScratchDir::Create(dir));
        scratch.emplace(std::move(made));
        for (const auto& id : ids) {
          auto fetched = FetchBackup(ctx.env(), *remote, id, scratch->path(), key);
          if (!fetched.ok()) fetch_problems.push_back(id + ": " + fetched.message());
        }
        dir = scratch->path();
        if (flags->selector == "latest" || flags->selector.empty()) flags->selector = "";
      }
      LV_ASSIGN_OR_RETURN(Catalog catalog, Catalog::Load(dir));
      std::vector<const CatalogEntry*> targets;
      if (flags->all) {
        if (!flags->selector.empty()) return Error("give a backup id or --all, not both");
        for (const auto& e : catalog.entries()) targets.push_back(&e);
        if (targets.empty() && fetch_problems.empty()) return Error("no backups in " + dir);
      } else if (!fetch_problems.empty()) {
        // The one backup asked for could not even be fetched intact.
      } else {
        LV_ASSIGN_OR_RETURN(const CatalogEntry* entry, catalog.Find(flags->selector));
        targets.push_back(entry);
      }
      nlohmann::json results = nlohmann::json::array();
      std::string first_problem;
      int failed = 0;
      for (const auto& p : fetch_problems) {
        ++failed;
        if (first_problem.empty()) first_problem = p;
        results.push_back({{"id", p.substr(0, p.find(':'))}, {"ok", false}, {"problems", {p}}});
        if (!flags->json) fmt::print("{}: FAILED: {}\n", p.substr(0, p.find(':')), p);
      }
      std::map<std::string, VerifyReport> cache;
      for (const CatalogEntry* entry : targets) {
        VerifyReport report = VerifyBackupWithChain(ctx.env(), catalog, *entry, &cache);
        VerifyRecord record{FormatIso8601(Clock::now()), report.ok,
                            report.ok ? "" : report.problems.front()};
        if (!scratch) {
          Status saved = WriteVerifyRecord(ctx.env(), dir, entry->id, record);
          if (!saved.ok()) spdlog::warn("could not record the result: {}", saved.message());
        }
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
