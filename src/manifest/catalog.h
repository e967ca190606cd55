// The backup folder as a catalogue: which backups exist, their sidecars, their last
// verification. A backup exists only when its archive has its final name; sidecars without an
// archive (left by an interrupted run) and temporary files are ignored here.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "core/env.h"
#include "core/result.h"
#include "manifest/manifest.h"

namespace lakevault {

struct VerifyRecord {
  std::string time;  // ISO 8601 UTC
  bool ok = false;
  std::string error;  // first problem when !ok
};

struct CatalogEntry {
  std::string id;
  std::string archive_path;
  std::string archive_name;
  int64_t archive_bytes = 0;
  // The sidecar's header, without its file list: listed_files and listed_bytes are the header's
  // "list" totals (ReadManifestHeader), the entries are not read. See LoadManifestFiles.
  std::optional<Manifest> manifest;
  std::string manifest_error;  // why the sidecar could not be read
  std::optional<VerifyRecord> last_verify;
};

// Sidecar names beside an archive named <id><ext>.
std::string Sha256SidecarPath(const std::string& archive_path);
std::string ManifestSidecarPath(const std::string& dir, const std::string& id);
std::string VerifySidecarPath(const std::string& dir, const std::string& id);
// Every file name that belongs to backup `id` (archive with any extension and all sidecars).
std::vector<std::string> BackupFileNames(const std::string& dir, const std::string& id);

// "<hex>  <name>\n", the format `sha256sum -c` accepts.
std::string Sha256SidecarContent(const std::string& hex, const std::string& archive_name);
// Returns the hex digest; fails if the file is not one line in that format naming the archive.
Result<std::string> ParseSha256Sidecar(const std::string& content, const std::string& archive_name);

Status WriteVerifyRecord(Env& env, const std::string& dir, const std::string& id,
                         const VerifyRecord& record);

class Catalog;
// The manifest of `entry` with its file list, read from its sidecar. Catalog::Load keeps only the
// headers: the list is most of a manifest (at 300,000 files 90 MB of text, more as records), and
// listing, pruning or choosing a parent needs none of it.
Result<Manifest> LoadManifestFiles(const Catalog& catalog, const CatalogEntry& entry);

class Catalog {
 public:
  // A missing folder is an empty catalogue.
  static Result<Catalog> Load(const std::string& dir);
  const std::string& dir() const { return dir_; }
  // Oldest first.
  const std::vector<CatalogEntry>& entries() const { return entries_; }
  // `selector` is an id, "latest", or an archive file name.
  Result<const CatalogEntry*> Find(const std::string& selector) const;

 private:
  std::string dir_;
  std::vector<CatalogEntry> entries_;
};

}  // namespace lakevault
