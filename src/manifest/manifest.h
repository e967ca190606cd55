// The manifest (docs/format.md): what one backup holds, written as the archive's last member
// and as a sidecar beside the archive for fast listing.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/result.h"

namespace lakevault {

inline constexpr int kManifestFormatVersion = 1;
// The manifest's member name inside the archive. Hidden, so a plain `tar -xzf` into a project
// root adds nothing an operator would trip over.
inline constexpr const char* kManifestMemberName = ".lakevault/manifest.json";

struct ManifestFile {
  std::string path;  // relative to the source root, '/'-separated
  int64_t size = 0;
  std::string sha256;  // of the content; empty for symlinks
  std::string backup;  // id of the backup whose archive holds the bytes
  int64_t mtime = 0;
  uint32_t mode = 0644;
  std::string link;  // symlink target, empty for regular files
};

struct ManifestTable {
  std::string name;             // path below the lake root, e.g. "position_updates"
  std::string path;             // relative to the source root, e.g. "data/lake/position_updates"
  int64_t version = -1;         // Delta version captured; -1 when not resolved
  std::optional<int64_t> rows;  // nullopt when neither stats nor footers could tell
  int64_t files = 0;
  int64_t bytes = 0;
};

struct Manifest {
  int format_version = kManifestFormatVersion;
  std::string id;             // backup_YYYYMMDD_HHMMSS
  std::string kind = "full";  // full | incremental
  std::string parent;         // empty for a full backup
  std::string created;        // ISO 8601 UTC
  std::string source_root;    // absolute folder the paths are relative to
  std::string lake;           // lake folder relative to source_root
  std::string compression;    // gzip | zstd | none
  std::string archive;        // archive file name
  std::string tool_version;
  // Set on a synthetic full made by `consolidate`: the backup whose state it holds. Its
  // "created" is that backup's, the time the lake looked like this.
  std::string consolidated_from;
  // What writing this backup cost, up to the manifest (verification not included): for the
  // history in `report` and the metrics.
  double duration_seconds = 0;
  int64_t files_stored = 0;
  int64_t bytes_stored = 0;
  std::vector<ManifestTable> tables;
  std::vector<ManifestFile> files;
  std::vector<std::string> missing;  // referenced files absent at backup time (--allow-missing)

  bool complete() const { return missing.empty(); }
  int64_t TotalBytes() const;
  const ManifestFile* FindFile(const std::string& path) const;
};

std::string ManifestToJson(const Manifest& manifest);
Result<Manifest> ParseManifest(const std::string& json_text);

// backup_YYYYMMDD_HHMMSS or backup_YYYYMMDD_HHMMSS_N
bool IsBackupId(const std::string& id);

}  // namespace lakevault
