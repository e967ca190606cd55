#include <fmt/format.h>

#include <iostream>
#include <nlohmann/json.hpp>

#include "cli/context.h"
#include "manifest/catalog.h"
#include "offsite/offsite.h"

namespace lakevault::cli {

namespace {
struct ListFlags {
  bool json = false;
  std::string path;
  std::string remote;
};

std::string VerifiedText(const CatalogEntry& e) {
  if (!e.last_verify) return "never";
  return e.last_verify->ok ? "ok " + e.last_verify->time : "FAILED " + e.last_verify->time;
}
}  // namespace

void AddListCommand(CLI::App& app, Context& ctx, CommandBody* body) {
  auto flags = std::make_shared<ListFlags>();
  auto* cmd =
      app.add_subcommand("list", "list backups with kind, time, size, tables, verification");
  cmd->add_flag("--json", flags->json, "print JSON on stdout");
  cmd->add_option("--path", flags->path, "backup folder (overrides backup_path)");
  cmd->add_option("--remote", flags->remote, "list a configured remote instead");
  cmd->callback([&ctx, flags, body]() {
    *body = [&ctx, flags]() -> Result<int> {
      LV_ASSIGN_OR_RETURN(Config config, ctx.LoadConfig());
      if (!flags->remote.empty()) {
        LV_ASSIGN_OR_RETURN(Config config, ctx.LoadConfig());
        LV_ASSIGN_OR_RETURN(auto remote, OpenRemote(config, flags->remote));
        LV_ASSIGN_OR_RETURN(auto backups, ListRemoteBackups(*remote));
        if (flags->json) {
          nlohmann::json arr = nlohmann::json::array();
          for (const auto& b : backups)
            arr.push_back({{"id", b.id},
                           {"file", b.archive},
                           {"bytes", b.bytes},
                           {"encrypted", b.encrypted}});
          std::cout << nlohmann::json{{"remote", remote->Describe()}, {"backups", arr}}.dump(2)
                    << "\n";
        } else {
          fmt::print("{}: {} backups\n", remote->Describe(), backups.size());
          for (const auto& b : backups)
            fmt::print("{:<28} {:>12}{}\n", b.id, HumanBytes(static_cast<int64_t>(b.bytes)),
                       b.encrypted ? "  encrypted" : "");
        }
        return kExitOk;
      }
      std::string dir = BackupDirOrPath(config, flags->path);
      LV_ASSIGN_OR_RETURN(Catalog catalog, Catalog::Load(dir));
      if (flags->json) {
        nlohmann::json backups = nlohmann::json::array();
        for (const auto& e : catalog.entries()) {
          nlohmann::json b;
          b["id"] = e.id;
          b["file"] = e.archive_name;
          b["bytes"] = e.archive_bytes;
          b["verified"] =
              e.last_verify ? nlohmann::json(e.last_verify->ok) : nlohmann::json(nullptr);
          b["verified_at"] =
              e.last_verify ? nlohmann::json(e.last_verify->time) : nlohmann::json(nullptr);
          if (e.manifest) {
            const Manifest& m = *e.manifest;
            b["kind"] = m.kind;
            b["parent"] = m.parent.empty() ? nlohmann::json(nullptr) : nlohmann::json(m.parent);
            b["created"] = m.created;
            b["complete"] = m.complete();
            b["missing"] = m.missing;
            nlohmann::json tables = nlohmann::json::object();
            for (const auto& t : m.tables)
              tables[t.name] = {
                  {"version", t.version},
                  {"rows", t.rows ? nlohmann::json(*t.rows) : nlohmann::json(nullptr)}};
            b["tables"] = tables;
          } else {
            b["kind"] = nullptr;
            b["parent"] = nullptr;
            b["created"] = nullptr;
            b["tables"] = nlohmann::json::object();
            b["error"] = e.manifest_error;
          }
          backups.push_back(std::move(b));
        }
        std::cout << nlohmann::json{{"backups", backups}}.dump(2) << "\n";
        return kExitOk;
      }
      if (catalog.entries().empty()) {
        fmt::print("no backups in {}\n", dir);
        return kExitOk;
      }
      fmt::print("{:<24} {:<11} {:<20} {:>10} {:>6}  {}\n", "ID", "KIND", "CREATED (UTC)", "SIZE",
                 "TABLES", "VERIFIED");
      for (const auto& e : catalog.entries()) {
        std::string kind = e.manifest ? e.manifest->kind : "?";
        if (e.manifest && !e.manifest->complete()) kind += "*";
        fmt::print("{:<24} {:<11} {:<20} {:>10} {:>6}  {}\n", e.id, kind,
                   e.manifest ? e.manifest->created : "?", HumanBytes(e.archive_bytes),
                   e.manifest ? std::to_string(e.manifest->tables.size()) : "?", VerifiedText(e));
        if (!e.manifest) fmt::print("  ! {}\n", e.manifest_error);
      }
      return kExitOk;
    };
  });
}

}  // namespace lakevault::cli
