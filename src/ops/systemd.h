// systemd units that run lakevault unattended: a daily backup after the US market close and a
// monthly recovery drill, the guide's "Systemd Timer" section done right (the binary itself,
// not a shell script through the wrong interpreter; the market's time zone, not the server's).
#pragma once

#include <map>
#include <string>

#include "core/env.h"
#include "core/result.h"

namespace lakevault {

struct SystemdOptions {
  std::string binary;   // absolute path of lakevault
  std::string workdir;  // the project root
  std::string user;     // empty: no User= line (root)
  std::string config;   // --config passed to every command, when set
  std::string on_calendar = "Mon-Fri 17:00 America/New_York";
  std::string accuracy = "1h";  // the guide's AccuracySec
  std::string drill_calendar = "*-*-01 06:00 America/New_York";
  bool with_drill = true;
};

// File name -> content.
std::map<std::string, std::string> RenderSystemdUnits(const SystemdOptions& options);

// Writes the units into `dir` atomically (0644).
Status InstallSystemdUnits(Env& env, const std::string& dir,
                           const std::map<std::string, std::string>& units);

}  // namespace lakevault
