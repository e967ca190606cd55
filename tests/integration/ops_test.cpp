// systemd units and the guide's script entry points.
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "support/test_util.h"

namespace fs = std::filesystem;

namespace lakevault::testing {
namespace {

bool HaveSystemdAnalyze() { return RunShell("command -v systemd-analyze").exit_code == 0; }

TEST(SystemdTest, GeneratedUnitsPassSystemdAnalyzeVerify) {
  TempDir dir;
  auto r =
      RunLakevault({"systemd", "install", "--dir", dir.str(), "--workdir", dir.str()}, dir.str());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  for (const char* unit : {"lakevault-backup.service", "lakevault-backup.timer",
                           "lakevault-drill.service", "lakevault-drill.timer"})
    EXPECT_TRUE(fs::exists(dir.path() / unit)) << unit;
  std::string timer = ReadFile(dir.path() / "lakevault-backup.timer");
  EXPECT_NE(timer.find("OnCalendar=Mon-Fri 17:00 America/New_York"), std::string::npos);
  EXPECT_NE(timer.find("Persistent=true"), std::string::npos);
  EXPECT_NE(timer.find("AccuracySec=1h"), std::string::npos);
  std::string service = ReadFile(dir.path() / "lakevault-backup.service");
  EXPECT_NE(service.find("Type=oneshot"), std::string::npos);
  EXPECT_NE(service.find("ExecStart=" + fs::canonical(BinaryPath()).string() + " backup"),
            std::string::npos)
      << service;
  EXPECT_NE(r.out.find("systemctl enable --now lakevault-backup.timer"), std::string::npos);
  if (!HaveSystemdAnalyze()) GTEST_SKIP() << "systemd-analyze is not installed";
  auto verify = RunShell("systemd-analyze verify " + dir.str() + "/lakevault-*");
  EXPECT_EQ(verify.exit_code, 0) << verify.out << verify.err;
}

TEST(SystemdTest, BadCalendarIsRefusedBeforeAnythingIsInstalled) {
  if (!HaveSystemdAnalyze()) GTEST_SKIP() << "systemd-analyze is not installed";
  TempDir dir;
  fs::path target = dir.path() / "units";
  auto r = RunLakevault(
      {"systemd", "install", "--dir", target.string(), "--on-calendar", "Mon-Fri 25:00"},
      dir.str());
  EXPECT_NE(r.exit_code, 0);
  EXPECT_EQ(Lines(r.err).size(), 1u) << r.err;
  EXPECT_NE(r.err.find("calendar"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(target));
}

TEST(SystemdTest, JsonGivesTheSameUnitsAsTheFilesInstalled) {
  TempDir dir;
  auto printed = RunLakevault({"systemd", "print", "--json", "--workdir", dir.str()}, dir.str());
  ASSERT_EQ(printed.exit_code, 0) << printed.err;
  auto units = nlohmann::json::parse(printed.out)["units"];
  ASSERT_EQ(units.size(), 4u) << printed.out;
  auto installed = RunLakevault(
      {"systemd", "install", "--json", "--no-verify", "--dir", dir.str(), "--workdir", dir.str()},
      dir.str());
  ASSERT_EQ(installed.exit_code, 0) << installed.err;
  auto doc = nlohmann::json::parse(installed.out);
  EXPECT_EQ(doc["installed"].size(), 4u);
  EXPECT_NE(doc["next"].get<std::string>().find("systemctl enable --now lakevault-backup.timer"),
            std::string::npos);
  for (const auto& [name, content] : units.items())
    EXPECT_EQ(ReadFile(dir.path() / name), content.get<std::string>()) << name;
}

TEST(SystemdTest, PrintShowsUserWorkdirAndCustomSchedule) {
  TempDir dir;
  auto r = RunLakevault({"systemd", "print", "--user", "trading", "--workdir", "/opt/v6-trading",
                         "--on-calendar", "Mon-Fri 16:30 America/New_York", "--no-drill"},
                        dir.str());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("User=trading"), std::string::npos);
  EXPECT_NE(r.out.find("WorkingDirectory=/opt/v6-trading"), std::string::npos);
  EXPECT_NE(r.out.find("OnCalendar=Mon-Fri 16:30 America/New_York"), std::string::npos);
  EXPECT_EQ(r.out.find("lakevault-drill"), std::string::npos);
}

TEST(GuideScriptsTest, BackupShDryRunBehavesAsLakevaultBackupDryRun) {
  TempDir dir;
  CopyTree(fs::path(CorpusDir()) / "simple_table", dir.path() / "data/lake/position_updates");
  std::string script = SourceDir() + "/scripts/backup.sh";
  auto via_script =
      RunShell("LAKEVAULT_BIN=" + BinaryPath() + " " + script + " --dry-run", dir.str());
  auto direct = RunLakevault({"backup", "--dry-run"}, dir.str());
  ASSERT_EQ(via_script.exit_code, 0) << via_script.err;
  EXPECT_EQ(via_script.out, direct.out);
  EXPECT_FALSE(fs::exists(dir.path() / "backups"));

  auto custom = RunShell(
      "LAKEVAULT_BIN=" + BinaryPath() + " " + script + " --path " + (dir.path() / "mnt").string(),
      dir.str());
  ASSERT_EQ(custom.exit_code, 0) << custom.err;
  EXPECT_FALSE(fs::is_empty(dir.path() / "mnt"));
  // The guide's variables, set in the script's environment, reach lakevault.
  auto env = RunShell("BACKUP_PATH=" + (dir.path() / "viaenv").string() +
                          " LAKEVAULT_BIN=" + BinaryPath() + " " + script,
                      dir.str());
  ASSERT_EQ(env.exit_code, 0) << env.err;
  EXPECT_FALSE(fs::is_empty(dir.path() / "viaenv"));
}

}  // namespace
}  // namespace lakevault::testing

namespace lakevault::testing {
namespace {

TEST(ReportTest, HtmlReportRendersInChromiumWithTheExpectedNumbers) {
  TempDir dir;
  CopyTree(fs::path(CorpusDir()) / "simple_table", dir.path() / "data/lake/position_updates");
  // Three daily backups, then a gap of three days: one interval breaks a 1-day RPO.
  for (const char* now : {"2026-03-02T17:00:00Z", "2026-03-03T17:00:00Z", "2026-03-04T17:00:00Z"})
    ASSERT_EQ(RunLakevault({"backup", "--no-prune"}, dir.str(), {{"LAKEVAULT_NOW", now}}).exit_code,
              0);
  ASSERT_EQ(RunLakevault({"drill"}, dir.str()).exit_code, 0);
  fs::path html = dir.path() / "report.html";
  auto r = RunLakevault({"report", "--html", html.string()}, dir.str(),
                        {{"LAKEVAULT_NOW", "2026-03-07T17:00:00Z"}});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto dom = RunShell(
      "timeout 120 chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run "
      "--disable-background-networking --disable-component-update --disable-sync "
      "--user-data-dir=" +
      dir.str() + "/profile --dump-dom file://" + html.string() + " 2>/dev/null");
  ASSERT_EQ(dom.exit_code, 0) << "chromium failed (is Debian's chromium installed?)";
  EXPECT_NE(dom.out.find("id=\"backup-count\">3<"), std::string::npos) << dom.out.substr(0, 2000);
  EXPECT_NE(dom.out.find("id=\"newest\">backup_20260304_170000<"), std::string::npos);
  EXPECT_NE(dom.out.find("2 of 3 intervals within the objective; worst gap 3d 0h"),
            std::string::npos);
  EXPECT_NE(dom.out.find("class=\"bad\">3d 0h (objective 1d 0h)"), std::string::npos);
  // Three bars in each history chart and one in the drill chart, drawn by the browser from
  // inline SVG.
  size_t bars = 0;
  for (size_t at = dom.out.find("class=\"bar\""); at != std::string::npos;
       at = dom.out.find("class=\"bar\"", at + 1))
    ++bars;
  EXPECT_EQ(bars, 7u);
  // The drill and the table's health, from `drill` and `check`.
  EXPECT_NE(dom.out.find("id=\"drills\""), std::string::npos);
  EXPECT_EQ(dom.out.find("no drill yet"), std::string::npos);
  EXPECT_NE(dom.out.find("<td>position_updates</td><td>4</td>"), std::string::npos)
      << dom.out.substr(dom.out.find("id=\"tables\""), 600);
}

}  // namespace
}  // namespace lakevault::testing
