// Off-site copies: a backup (archive and sidecars) pushed to a remote, listed there, and fetched
// back into a local backup folder (with its chain) so restore and drill work on a new machine.
// Archives are encrypted before they leave the machine when a key is configured.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "config/config.h"
#include "core/env.h"
#include "core/result.h"
#include "crypto/encrypt.h"
#include "remote/storage.h"
#include "retention/retention.h"

namespace lakevault {

struct CatalogEntry;

// A remote from the config by name, or given directly as "s3://bucket/prefix" (endpoint and
// region from AWS_ENDPOINT_URL/AWS_REGION or the first s3 remote's settings), "user@host:/path"
// (rsync) or an absolute folder path (local).
Result<std::unique_ptr<Storage>> OpenRemote(const Config& config, const std::string& name_or_url);

// The key archives are encrypted with, when `encryption.key_file` is set.
Result<std::optional<Key>> ConfiguredKey(const Config& config);

struct UploadOutcome {
  std::vector<std::string> objects;
  bool encrypted = false;
  int64_t bytes = 0;
};

// Uploads backup `id` from `backup_dir`: the archive (encrypted as <archive>.enc when `key` is
// set; streamed through the encryption to S3, through a scratch file to other remotes) first, then
// its .sha256 and the manifest. A backup counts as present on the remote once its .sha256 is there,
// so an interrupted upload never looks complete.
Result<UploadOutcome> UploadBackup(Env& env, Storage& remote, const std::string& backup_dir,
                                   const std::string& id, const std::optional<Key>& key);

// An archive sent to a streaming remote (S3) while the backup is still writing it: a thread
// follows the growing file, encrypts it when a key is set and sends each part as it fills, so
// the off-site copy needs no second local file and ends soon after the local backup. Nothing is
// visible under the object's name before Complete.
class LiveUpload {
 public:
  // Starts following `path` (an archive being written, or a finished one) as `object`, plus
  // ".enc" with a key.
  static Result<std::unique_ptr<LiveUpload>> Start(Storage& remote, const std::string& path,
                                                   const std::string& object,
                                                   const std::optional<Key>& key);
  ~LiveUpload();
  LiveUpload(const LiveUpload&) = delete;
  LiveUpload& operator=(const LiveUpload&) = delete;

  // Call once backup `id` is published in `backup_dir`: sends the rest of the file, refuses the
  // copy unless the bytes read hash to the archive's SHA-256 from its sidecar, completes the
  // object, uploads any ancestor the remote lacks, then the manifest and last the .sha256.
  Result<UploadOutcome> Complete(Env& env, const std::string& backup_dir, const std::string& id);
  // The backup failed: stops and aborts the upload; nothing is left under the object's name.
  void Abort();

  // The same, for an entry of a catalog the caller has already loaded.
  Result<UploadOutcome> Complete(Env& env, const std::string& backup_dir,
                                 const CatalogEntry& entry);

  struct State;

 private:
  explicit LiveUpload(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
};

struct RemoteBackup {
  std::string id;
  std::string archive;  // object name
  bool encrypted = false;
  uint64_t bytes = 0;
};
// Backups whose archive and .sha256 are both on the remote, oldest first.
Result<std::vector<RemoteBackup>> ListRemoteBackups(Storage& remote);

// Fetches backup `id` ("latest" allowed) and the chain it needs into `backup_dir`, checking
// each object against its .sha256 and decrypting with `key`. Backups already present locally
// are not fetched again. Returns the id fetched.
Result<std::string> FetchBackup(Env& env, Storage& remote, const std::string& id,
                                const std::string& backup_dir, const std::optional<Key>& key);

struct RemotePruneOutcome {
  std::vector<RetentionDecision> decisions;  // oldest first
  std::vector<std::string> deleted;          // ids, newest first
};
// Applies the retention policy to the backups on `remote`, judged by their manifests there
// (a backup whose manifest cannot be read is kept), never deleting one a kept backup's chain
// needs. Deletes newest first, each backup's .sha256 before its archive and manifest.
Result<RemotePruneOutcome> PruneRemote(Storage& remote, const RetentionPolicy& policy,
                                       TimePoint now, bool dry_run);

}  // namespace lakevault
