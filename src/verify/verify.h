// Verification of a backup: the sidecar checksum, the archive readable to its end, every
// member's SHA-256 against the manifest, nothing missing, nothing extra.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "core/env.h"
#include "manifest/catalog.h"
#include "manifest/manifest.h"

namespace lakevault {

struct VerifyReport {
  std::string id;
  bool ok = true;
  std::vector<std::string> problems;  // each names the backup and what it hit
  int64_t members = 0;
  int64_t bytes = 0;
  // The archive's own manifest, when the members were checked against it (no expected list, or
  // one that differs from it): it is then in memory anyway. Empty otherwise.
  std::optional<Manifest> manifest;
  // How many reads of the chain's lists checking an incremental's claims took (one a share of
  // the paths; see VerifyBackupWithChain); 0 for a full.
  int chain_passes = 0;
  // A scratch folder holding a copy of each Delta log member this archive holds, at its member
  // path, so the tables' versions and row counts can be checked against the manifest without a
  // second read (and without the log in memory: at 300,000 files it was 217 MB). Removed with the
  // last report that holds it; null when there were none.
  std::shared_ptr<const std::string> log_dir;
  void Fail(const std::string& problem) {
    ok = false;
    problems.push_back(problem);
  }
};

struct VerifyArchiveOptions {
  // Copy the Delta log members into VerifyReport::log_dir (VerifyBackupWithChain replays them).
  bool keep_log_members = true;
};

// Checks the archive at `archive_path`: every member decoded (each gzip member's CRC-32), every
// file's SHA-256 and size against the manifest, nothing missing, nothing extra. `expected_sha256`
// (the sidecar's) is compared when given; without it the whole file is not hashed.
// `expected_manifest_path` names a file that should hold the archive's manifest, byte for byte
// (the sidecar, or the text a backup just wrote): the members are checked against it as they are
// read, and it is compared with the member. When it differs, or is not given, the members are
// checked against the archive's own manifest, which is then held in memory.
VerifyReport VerifyArchive(Env& env, const std::string& id, const std::string& archive_path,
                           const std::optional<std::string>& expected_sha256,
                           const std::optional<std::string>& expected_manifest_path,
                           const VerifyArchiveOptions& options = {});

// VerifyArchive of an archive and its expected manifest while a backup still writes both, on a
// thread of its own: the check after the write then costs only its tail. The files are read
// back from the file system as they grow, never taken from the writer's buffers, so the check
// is as independent of the writing as one made afterwards.
class VerifyWhileWritten {
 public:
  // Both files must exist.
  VerifyWhileWritten(Env& env, std::string id, std::string archive_path, std::string manifest_path);
  // Unless Finish() was called, the writing failed: the reads are cut off and the thread joined.
  ~VerifyWhileWritten();
  VerifyWhileWritten(const VerifyWhileWritten&) = delete;
  VerifyWhileWritten& operator=(const VerifyWhileWritten&) = delete;
  // Both files have every byte (they need not be synced yet): the reads take what is there as
  // the end, so the check's tail overlaps the writer's fsync.
  void Written();
  // Both files are complete and closed: once they are read to their end, an error naming the
  // first problem, if any.
  Status Finish();

 private:
  GrowingFilesEnv env_;
  VerifyReport report_;
  std::thread thread_;
};

// Verifies a catalogued backup from its sidecars.
VerifyReport VerifyBackup(Env& env, const Catalog& catalog, const CatalogEntry& entry);

}  // namespace lakevault

namespace lakevault {

// What the replay of each table's log, as the backup holds it, may hold of its live files at
// once: less than check's (kCheckReplayBytes), as the archives' read leaves more of the heap in
// use. A bigger table is checked in shares (delta::ForEachSnapshotShare), a replay each.
inline constexpr size_t kVerifyReplayBytes = size_t{32} << 20;
// What the check of an incremental's chain may hold of the files its ancestors hold (56 bytes
// a file): a bigger chain is checked in shares of the paths, a read of the lists each.
inline constexpr size_t kVerifyChainIndexBytes = size_t{24} << 20;

// Verifies `entry` and, for an incremental, every backup of its chain, and that each file the
// manifest attributes to an ancestor is listed there with the same checksum. `cache` (by id)
// spares re-reading an ancestor shared by several backups verified in one run.
VerifyReport VerifyBackupWithChain(Env& env, const Catalog& catalog, const CatalogEntry& entry,
                                   std::map<std::string, VerifyReport>* cache,
                                   size_t max_replay_bytes = kVerifyReplayBytes,
                                   size_t max_chain_index_bytes = kVerifyChainIndexBytes);

}  // namespace lakevault
