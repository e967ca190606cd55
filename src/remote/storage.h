// Remote storage for finished archives: one small interface over a local folder, an S3 bucket
// (or any S3-compatible server) and an rsync destination, so backup and restore code moves
// files without knowing where they go.
//
// Every implementation keeps one promise: an object appears under its final name only once it
// is complete. A crash, a dropped connection or a failed upload leaves nothing there (at most a
// temporary or an aborted multipart upload), so a listing never shows a half-written archive.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/result.h"

namespace lakevault {

struct ObjectInfo {
  std::string name;  // relative to the storage's root or prefix
  uint64_t size = 0;
  bool operator==(const ObjectInfo&) const = default;
};

// Bytes pushed as they are produced (an archive while it is written). Nothing is visible under
// the name until Finish() succeeds; Abort() (or destroying an unfinished stream) discards it.
class UploadStream {
 public:
  virtual ~UploadStream() = default;
  virtual Status Append(const void* data, size_t size) = 0;
  virtual Status Finish() = 0;
  virtual void Abort() = 0;
};

class Storage {
 public:
  virtual ~Storage() = default;
  // Uploads the file at `local_path` as `name`, replacing an object of that name.
  virtual Status Put(const std::string& name, const std::string& local_path) = 0;
  // Downloads `name` to `local_path` (temporary name, fsync, rename).
  virtual Status Get(const std::string& name, const std::string& local_path) = 0;
  // `length` bytes from `offset` (fewer at the end of the object).
  virtual Result<std::string> GetRange(const std::string& name, uint64_t offset,
                                       uint64_t length) = 0;
  // Objects whose name starts with `prefix`, sorted by name.
  virtual Result<std::vector<ObjectInfo>> List(const std::string& prefix) = 0;
  // Deleting a missing object succeeds: the goal, its absence, is reached.
  virtual Status Delete(const std::string& name) = 0;
  // nullopt when there is no such object.
  virtual Result<std::optional<ObjectInfo>> Stat(const std::string& name) = 0;
  // Streaming upload; the stream must not outlive this storage. S3 sends parts as bytes
  // arrive; the default (local, rsync) spools to a file in $TMPDIR and calls Put at Finish.
  virtual Result<std::unique_ptr<UploadStream>> OpenUpload(const std::string& name);
  // True when OpenUpload sends bytes as they come (S3) rather than spooling them to a file.
  virtual bool StreamsUploads() const { return false; }
  // For messages: "s3://bucket/prefix (endpoint http://...)", "/srv/backups", "host:/path".
  virtual std::string Describe() const = 0;
};

// type: "local" (settings: path), "s3" or "rsync".
// s3: url "s3://bucket/prefix" (required), endpoint (default https://s3.REGION.amazonaws.com),
//   region (default AWS_REGION, else us-east-1), path_style ("true"/"false"; default true with a
//   custom endpoint, false on AWS), storage_class, part_size (bytes, default 8 MiB, at least
//   5 MiB: objects up to one part go in a single PUT, larger ones as a multipart upload),
//   max_keys (listing page size), retries (default 3), retry_backoff_ms (default 500).
// rsync: dest ("user@host:/path" or a local path), ssh_port, ssh_key, ssh_options (extra ssh
//   arguments separated by spaces).
// Unknown settings are refused, so a misspelt one is not silently ignored.
// S3 credentials come only from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN
// or ~/.aws/credentials (profile AWS_PROFILE, else "default").
struct RemoteSpec {
  std::string type;
  std::map<std::string, std::string> settings;
};

Result<std::unique_ptr<Storage>> OpenStorage(const RemoteSpec& spec);

// Object names are relative paths of plain segments; "..", empty segments, a leading '/' and
// control characters are refused so a name can never escape the storage root.
Status ValidateObjectName(const std::string& name);

}  // namespace lakevault
