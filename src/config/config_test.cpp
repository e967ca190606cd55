#include "config/config.h"

#include <gtest/gtest.h>

namespace lakevault {
namespace {

std::optional<std::string> NoEnv(const char*) { return std::nullopt; }

TEST(ConfigTest, EmptyDocumentGivesTheGuidesLayout) {
  auto config = ParseConfig("", "/srv/v6", "lakevault.yaml");
  ASSERT_TRUE(config.ok()) << config.message();
  EXPECT_EQ(config->LakeDir(), "/srv/v6/data/lake");
  EXPECT_EQ(config->BackupDir(), "/srv/v6/backups");
  EXPECT_EQ(config->retention.days, 30);
  EXPECT_EQ(config->compression, Compression::kGzip);
  EXPECT_EQ(config->files, (std::vector<std::string>{"config/production.yaml", ".env"}));
  EXPECT_EQ(config->rto_seconds, 7200);
  EXPECT_EQ(config->rpo_seconds, 86400);
}

TEST(ConfigTest, ReadsEveryDocumentedKey) {
  const char* yaml = R"(
lake: lake
tables: [a, b]
files: [x.yaml]
logs: {include: true, path: logs/}
backup_path: /mnt/backups
compression: zstd
retention: {days: 10, keep_last: 3, keep_daily: 7, keep_weekly: 4, keep_monthly: 6}
full_every_days: 3
remotes:
  offsite: {type: s3, url: "s3://b/p", endpoint: "http://127.0.0.1:9000", region: us-east-1, path_style: true}
  dr: {type: rsync, dest: "u@h:/b"}
encryption: {key_file: key}
hooks: {stop: ["systemctl stop a"], start: [], reconcile: [], verify: ["true"], on_failure: []}
objectives: {rto: 30m, rpo: 2h}
log_file: l.log
metrics_file: m.prom
)";
  auto config = ParseConfig(yaml, "/p", "lakevault.yaml");
  ASSERT_TRUE(config.ok()) << config.message();
  EXPECT_EQ(config->tables.size(), 2u);
  EXPECT_TRUE(config->files_explicit);
  EXPECT_TRUE(config->logs_include);
  EXPECT_EQ(config->BackupDir(), "/mnt/backups");
  EXPECT_EQ(config->compression, Compression::kZstd);
  EXPECT_EQ(config->retention.keep_monthly, 6);
  EXPECT_EQ(config->full_every_days, 3);
  ASSERT_EQ(config->remotes.size(), 2u);
  EXPECT_EQ(config->remotes["offsite"].settings["endpoint"], "http://127.0.0.1:9000");
  EXPECT_EQ(config->remotes["dr"].type, "rsync");
  EXPECT_EQ(config->hooks.stop.front(), "systemctl stop a");
  EXPECT_EQ(config->rto_seconds, 1800);
  EXPECT_EQ(config->rpo_seconds, 7200);
}

TEST(ConfigTest, UnknownKeyIsNamed) {
  auto config = ParseConfig("lake: x\nretention: {dayz: 3}\n", "/p", "cfg.yaml");
  ASSERT_FALSE(config.ok());
  EXPECT_NE(config.message().find("unknown key 'retention.dayz'"), std::string::npos)
      << config.message();
}

TEST(ConfigTest, MalformedYamlNamesTheLine) {
  auto config = ParseConfig("lake: data/lake\ntables: [a, b\n", "/p", "cfg.yaml");
  ASSERT_FALSE(config.ok());
  EXPECT_NE(config.message().find("malformed YAML at line"), std::string::npos) << config.message();
}

TEST(ConfigTest, WrongTypesAndValuesAreRefused) {
  EXPECT_FALSE(ParseConfig("retention: {days: soon}\n", "/p", "c").ok());
  EXPECT_FALSE(ParseConfig("compression: lzma\n", "/p", "c").ok());
  EXPECT_FALSE(ParseConfig("objectives: {rto: fast}\n", "/p", "c").ok());
  EXPECT_FALSE(ParseConfig("remotes: {x: {type: ftp}}\n", "/p", "c").ok());
  EXPECT_FALSE(ParseConfig("- just\n- a list\n", "/p", "c").ok());
  EXPECT_FALSE(ParseConfig("compression_level: 42\n", "/p", "c").ok());
  EXPECT_FALSE(ParseConfig("compression_level: high\n", "/p", "c").ok());
}

TEST(ConfigTest, CompressionLevel) {
  EXPECT_EQ(ParseConfig("", "/p", "c")->compression_level, 0);
  EXPECT_EQ(ParseConfig("compression_level: 6\n", "/p", "c")->compression_level, 6);
}

TEST(ConfigTest, GuideVariablesOverrideTheFile) {
  auto config = ParseConfig("backup_path: b/\n", "/p", "c");
  ASSERT_TRUE(config.ok());
  auto env = [](const char* name) -> std::optional<std::string> {
    std::string n = name;
    if (n == "BACKUP_PATH") return "/mnt/x";
    if (n == "RETENTION_DAYS") return "5";
    if (n == "COMPRESS") return "false";
    if (n == "UPLOAD_S3") return "true";
    if (n == "S3_BUCKET") return "s3://bucket/v6";
    if (n == "RSYNC_DEST") return "u@h:/b";
    return std::nullopt;
  };
  ASSERT_TRUE(ApplyEnvironmentOverrides(*config, env).ok());
  EXPECT_EQ(config->BackupDir(), "/mnt/x");
  EXPECT_EQ(config->retention.days, 5);
  EXPECT_EQ(config->compression, Compression::kNone);
  EXPECT_TRUE(config->upload_s3);
  EXPECT_EQ(config->remotes["s3"].settings["url"], "s3://bucket/v6");
  EXPECT_EQ(config->remotes["rsync"].settings["dest"], "u@h:/b");
}

TEST(ConfigTest, BadRetentionDaysVariableIsAnError) {
  Config config;
  auto env = [](const char* name) -> std::optional<std::string> {
    if (std::string(name) == "RETENTION_DAYS") return "30d";
    return std::nullopt;
  };
  Status s = ApplyEnvironmentOverrides(config, env);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("RETENTION_DAYS"), std::string::npos);
  EXPECT_TRUE(ApplyEnvironmentOverrides(config, NoEnv).ok());
}

}  // namespace
}  // namespace lakevault
