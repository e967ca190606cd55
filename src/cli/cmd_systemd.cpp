#include <fmt/format.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <iostream>

#include "cli/context.h"
#include "ops/systemd.h"

namespace lakevault::cli {

namespace {
struct SystemdFlags {
  std::string action;
  std::string user;
  std::string workdir;
  std::string on_calendar = "Mon-Fri 17:00 America/New_York";
  std::string dir = "/etc/systemd/system";
  bool no_drill = false;
  bool no_verify = false;
  bool json = false;
};

std::string SelfPath() {
  std::error_code ec;
  auto p = std::filesystem::read_symlink("/proc/self/exe", ec);
  return ec ? "/usr/local/bin/lakevault" : p.string();
}
}  // namespace

void AddSystemdCommand(CLI::App& app, Context& ctx, CommandBody* body) {
  auto flags = std::make_shared<SystemdFlags>();
  auto* cmd = app.add_subcommand("systemd", "print or install the backup (and drill) timer units");
  cmd->add_option("action", flags->action, "print | install")
      ->required()
      ->check(CLI::IsMember({"print", "install"}));
  cmd->add_option("--user", flags->user, "run as this user (the guide's `trading`)");
  cmd->add_option("--workdir", flags->workdir, "project root (default: the working directory)");
  cmd->add_option("--on-calendar", flags->on_calendar,
                  "backup schedule (default: Mon-Fri 17:00 America/New_York)");
  cmd->add_option("--dir", flags->dir, "where install writes the units");
  cmd->add_flag("--no-drill", flags->no_drill, "leave out the monthly drill timer");
  cmd->add_flag("--no-verify", flags->no_verify, "skip systemd-analyze verify on install");
  cmd->add_flag("--json", flags->json, "units (print) or installed files (install) as JSON");
  cmd->callback([&ctx, flags, body]() {
    *body = [&ctx, flags]() -> Result<int> {
      SystemdOptions options;
      options.binary = SelfPath();
      options.workdir = flags->workdir.empty() ? ctx.working_dir
                                               : std::filesystem::absolute(flags->workdir).string();
      options.user = flags->user;
      if (!ctx.config_path.empty())
        options.config = std::filesystem::absolute(ctx.config_path).string();
      options.on_calendar = flags->on_calendar;
      options.with_drill = !flags->no_drill;
      auto units = RenderSystemdUnits(options);
      if (flags->action == "print") {
        if (flags->json) {
          nlohmann::json doc = nlohmann::json::object();
          for (const auto& [name, content] : units) doc["units"][name] = content;
          fmt::print("{}\n", doc.dump(2));
          return kExitOk;
        }
        for (const auto& [name, content] : units) fmt::print("# {}\n{}\n", name, content);
        return kExitOk;
      }
      // Checked in a scratch folder first, so a rejected unit never reaches the target.
      if (!flags->no_verify && std::system("command -v systemd-analyze >/dev/null 2>&1") == 0) {
        char scratch[] = "/tmp/lakevault-units-XXXXXX";
        if (::mkdtemp(scratch) == nullptr) return Error("cannot create a scratch folder in /tmp");
        Status written = InstallSystemdUnits(ctx.env(), scratch, units);
        std::string problem = written.ok() ? "" : written.message();
        if (problem.empty()) {
          std::string command = "systemd-analyze verify";
          for (const auto& [name, content] : units)
            command += std::string(" ") + scratch + "/" + name;
          FILE* pipe = ::popen((command + " 2>&1").c_str(), "r");
          std::string output;
          char buf[512];
          while (pipe && fgets(buf, sizeof buf, pipe)) output += buf;
          int rc = pipe ? ::pclose(pipe) : -1;
          if (rc != 0) {
            problem = output.substr(0, output.find('\n'));
            auto at = problem.find(scratch);
            if (at != std::string::npos) problem.erase(at, std::strlen(scratch) + 1);
            if (problem.empty()) problem = "systemd-analyze verify failed";
          }
        }
        std::error_code ec;
        std::filesystem::remove_all(scratch, ec);
        if (!problem.empty())
          return Error("the units were not installed: systemd-analyze verify: " + problem);
      }
      LV_RETURN_IF_ERROR(InstallSystemdUnits(ctx.env(), flags->dir, units));
      std::string files;
      nlohmann::json installed = nlohmann::json::array();
      for (const auto& [name, content] : units) {
        files += " " + (std::filesystem::path(flags->dir) / name).string();
        installed.push_back((std::filesystem::path(flags->dir) / name).string());
      }
      const std::string next = std::string("systemctl daemon-reload && systemctl enable --now ") +
                               "lakevault-backup.timer" +
                               (options.with_drill ? " lakevault-drill.timer" : "");
      if (flags->json) {
        nlohmann::json doc = {{"installed", installed}, {"next", next}};
        fmt::print("{}\n", doc.dump(2));
        return kExitOk;
      }
      fmt::print(
          "installed{}\nnext: systemctl daemon-reload && systemctl enable --now "
          "lakevault-backup.timer{}\n",
          files, options.with_drill ? " lakevault-drill.timer" : "");
      return kExitOk;
    };
  });
}

}  // namespace lakevault::cli
