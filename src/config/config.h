// lakevault.yaml: keys, defaults (the guide's layout), and the guide's environment overrides.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/result.h"

namespace lakevault {

enum class Compression { kGzip, kZstd, kNone };
Result<Compression> ParseCompression(const std::string& text);
std::string CompressionName(Compression c);
// ".tar.gz", ".tar.zst", ".tar"
std::string ArchiveExtension(Compression c);

struct RetentionPolicy {
  int64_t days = 30;
  int64_t keep_last = 0;
  int64_t keep_daily = 0;
  int64_t keep_weekly = 0;
  int64_t keep_monthly = 0;
};

struct Remote {
  std::string name;
  std::string type;                             // "s3" | "rsync"
  std::map<std::string, std::string> settings;  // url, endpoint, region, path_style, dest, ...
};

struct Hooks {
  std::vector<std::string> stop, start, reconcile, verify, on_failure;
};

struct Config {
  // Folder every relative path below is resolved against: the config file's folder, or the
  // working directory when there is no config file.
  std::string root;
  std::string config_file;  // empty: defaults only
  std::string lake = "data/lake";
  std::vector<std::string> tables;  // empty: every Delta table under lake
  std::vector<std::string> files = {"config/production.yaml", ".env"};
  bool files_explicit = false;  // false: the defaults, each taken only if present
  bool logs_include = false;
  std::string logs_path = "logs/";
  std::string backup_path = "backups/";
  Compression compression = Compression::kGzip;
  int compression_level = 0;  // 0: the format's default (kDefaultGzipLevel, zstd's 3)
  RetentionPolicy retention;
  int64_t full_every_days = 7;
  std::map<std::string, Remote> remotes;
  std::string encryption_key_file;
  Hooks hooks;
  int64_t rto_seconds = 2 * 3600;
  int64_t rpo_seconds = 86400;
  std::string log_file = "logs/lakevault.log";
  std::string metrics_file;
  std::string webhook_url;
  // The guide's UPLOAD_S3 / UPLOAD_RSYNC switches.
  bool upload_s3 = false;
  bool upload_rsync = false;

  // Absolute forms of the paths above.
  std::string LakeDir() const;
  std::string BackupDir() const;
  std::string Resolve(const std::string& relative) const;
};

using EnvLookup = std::optional<std::string> (*)(const char* name);
std::optional<std::string> ProcessEnv(const char* name);

// Loads `explicit_path` if given (it must exist), else `lakevault.yaml` in `working_dir` if
// present, else the defaults rooted at `working_dir`; then applies environment overrides.
Result<Config> LoadConfig(const std::string& working_dir, const std::string& explicit_path,
                          EnvLookup env = ProcessEnv);
// Parses YAML text (for tests and fuzzing); `root` anchors relative paths.
Result<Config> ParseConfig(const std::string& yaml_text, const std::string& root,
                           const std::string& source_name);
Status ApplyEnvironmentOverrides(Config& config, EnvLookup env);

}  // namespace lakevault
