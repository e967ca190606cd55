#include "ops/systemd.h"

#include <fmt/format.h>

#include <filesystem>

namespace lakevault {

namespace {

// systemd splits ExecStart= on whitespace and honours double quotes.
std::string Quote(const std::string& arg) {
  if (arg.find_first_of(" \t\"\\'") == std::string::npos) return arg;
  std::string out = "\"";
  for (char c : arg) {
    if (c == '"' || c == '\\') out.push_back('\\');
    out.push_back(c);
  }
  return out + "\"";
}

std::string Service(const SystemdOptions& o, const std::string& description,
                    const std::string& command, const std::string& identifier) {
  std::string config = o.config.empty() ? "" : " --config " + Quote(o.config);
  std::string out = fmt::format(
      "[Unit]\n"
      "Description={}\n"
      "Wants=network-online.target\n"
      "After=network-online.target\n"
      "\n"
      "[Service]\n"
      "Type=oneshot\n",
      description);
  if (!o.user.empty()) out += "User=" + o.user + "\n";
  out += fmt::format(
      "WorkingDirectory={}\n"
      "ExecStart={}{} {}\n"
      // A backup must not slow the trading services down: lowest CPU and I/O priority.
      "Nice=10\n"
      "IOSchedulingClass=idle\n"
      "UMask=0077\n"
      "StandardOutput=journal\n"
      "StandardError=journal\n"
      "SyslogIdentifier={}\n",
      Quote(o.workdir), Quote(o.binary), config, command, identifier);
  return out;
}

std::string Timer(const std::string& description, const std::string& calendar,
                  const std::string& accuracy, const std::string& unit) {
  return fmt::format(
      "[Unit]\n"
      "Description={}\n"
      "\n"
      "[Timer]\n"
      "OnCalendar={}\n"
      "AccuracySec={}\n"
      // A run missed while the machine was off happens at the next boot.
      "Persistent=true\n"
      "Unit={}\n"
      "\n"
      "[Install]\n"
      "WantedBy=timers.target\n",
      description, calendar, accuracy, unit);
}

}  // namespace

std::map<std::string, std::string> RenderSystemdUnits(const SystemdOptions& o) {
  std::map<std::string, std::string> units;
  units["lakevault-backup.service"] =
      Service(o, "lakevault backup of the Delta lake in " + o.workdir, "backup --full-if-needed",
              "lakevault-backup");
  units["lakevault-backup.timer"] = Timer("Daily lakevault backup after the US market close",
                                          o.on_calendar, o.accuracy, "lakevault-backup.service");
  if (o.with_drill) {
    units["lakevault-drill.service"] =
        Service(o, "lakevault recovery drill (restore test and RTO) for " + o.workdir,
                "drill latest", "lakevault-drill");
    units["lakevault-drill.timer"] = Timer("Monthly lakevault recovery drill", o.drill_calendar,
                                           o.accuracy, "lakevault-drill.service");
  }
  return units;
}

Status InstallSystemdUnits(Env& env, const std::string& dir,
                           const std::map<std::string, std::string>& units) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return Error("creating " + dir + ": " + ec.message());
  for (const auto& [name, content] : units)
    LV_RETURN_IF_ERROR(
        WriteFileAtomically(env, (std::filesystem::path(dir) / name).string(), content, 0644));
  return Status::Ok();
}

}  // namespace lakevault
