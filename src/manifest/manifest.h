// The manifest (docs/format.md): what one backup holds, written as the archive's last member
// and as a sidecar beside the archive for fast listing.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/env.h"
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
  // The file list's length and the sum of its sizes, as read: set also when the entries were not
  // kept (ReadManifest), taken from the header's "list" when the list was not read at all
  // (ReadManifestHeader). Written as "list" by ManifestWriter, from the entries it was given.
  int64_t listed_files = 0;
  int64_t listed_bytes = 0;

  bool complete() const { return missing.empty(); }
  // The sum of the files' sizes: of `files`, or listed_bytes when the entries were not kept.
  int64_t TotalBytes() const;
  const ManifestFile* FindFile(const std::string& path) const;
};

std::string ManifestToJson(const Manifest& manifest);
Result<Manifest> ParseManifest(const std::string& json_text);

// Writes a manifest's text a file entry at a time: the bytes ManifestToJson gives for the whole
// manifest, without the list in memory (at 300,000 files its text is 90 MB, its records more).
class ManifestWriter {
 public:
  using Sink = std::function<Status(std::string_view)>;
  explicit ManifestWriter(Sink sink) : sink_(std::move(sink)) {}
  // `header`: every field but the file list. Its `missing` is final ("complete" precedes the
  // list); its stats may still change until End.
  Status Begin(const Manifest& header);
  Status Add(const ManifestFile& file);
  // `header` as given to Begin, stats filled in. Fails if anything before the list changed.
  Status End(const Manifest& header);
  int64_t files() const { return files_; }
  int64_t bytes_written() const { return bytes_written_; }

 private:
  Status Put(std::string_view text);
  Status Flush();
  Sink sink_;
  std::string head_;  // the text before the list, to check End's header against
  std::string buffer_;
  std::string entry_;  // Add's text, its capacity kept
  int64_t files_ = 0;
  int64_t list_bytes_ = 0;  // the sum of the entries' sizes, for the header's "list"
  int64_t bytes_written_ = 0;
};

// Called with each file entry in document order; an error stops the read and is returned.
using ManifestFileVisitor = std::function<Status(ManifestFile&&)>;
// Reads a manifest without keeping its file list: each entry is checked as ParseManifest checks
// it and handed to `visit` (null: dropped), so memory stays bounded whatever the list's length.
// Manifest::files stays empty; listed_files and listed_bytes count the entries, and must equal
// the header's "list" totals when it has them (otherwise the manifest is damaged: an error naming
// the file). When it fails, what `visit` was given must be discarded.
Result<Manifest> ReadManifest(SequentialFile& input, const ManifestFileVisitor& visit);
Result<Manifest> ReadManifestFile(Env& env, const std::string& path,
                                  const ManifestFileVisitor& visit);
// The entries of the manifest file at `path` that `keep` accepts, in document order, read on a
// thread of their own a few hundred ahead of the caller: an archive is checked or extracted
// against its list as both are read, whatever the list's length.
class ManifestStream {
 public:
  ManifestStream(Env& env, std::string path, std::function<bool(const ManifestFile&)> keep);
  ~ManifestStream();
  ManifestStream(const ManifestStream&) = delete;
  ManifestStream& operator=(const ManifestStream&) = delete;
  // The next entry, or nullptr at the end of the list (or where it could not be read further).
  const ManifestFile* Peek();
  ManifestFile Pop();
  // Once Peek gave nullptr: the header, or why the file could not be read.
  const Result<Manifest>& result();

 private:
  struct Shared;
  std::unique_ptr<Shared> shared_;
  std::vector<ManifestFile> current_;  // the caller's batch
  size_t at_ = 0;
};

// The header of the manifest file at `path`, for the catalogue: listed_files and listed_bytes
// are the header's "list" totals, and the file list's bytes are skipped, scanned only for where
// the list ends (ManifestHeaderScan), its entries neither parsed nor checked. Everything else is
// checked as ReadManifestFile checks it. A manifest without "list" (written before it was added)
// is read whole, as a stream. Errors name the file.
Result<Manifest> ReadManifestHeader(Env& env, const std::string& path);

// The whole manifest in the file at `path`, list included, without holding its text.
Result<Manifest> LoadManifest(Env& env, const std::string& path);

// backup_YYYYMMDD_HHMMSS or backup_YYYYMMDD_HHMMSS_N
bool IsBackupId(const std::string& id);

}  // namespace lakevault
