// The steps every job that writes a new backup shares (backup, consolidate): the folder, the
// id, and publishing a finished temporary archive under its final name.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "core/env.h"
#include "core/result.h"
#include "core/time.h"
#include "manifest/manifest.h"

namespace lakevault {

// Creates the backup folder owner-only (archives hold .env secrets).
Status EnsureBackupDir(const std::string& dir);

// A backup id for `fixed_now` (or the clock) that no file in `dir` uses yet. Two backups in
// the same second never share a name: the second waits for the clock to move on (or, with a
// fixed time, takes the next second).
std::string ChooseId(const std::string& dir, std::optional<TimePoint> fixed_now);

// Temporary files of runs that died; call with the folder's lock held, so none of them is
// still being written.
void RemoveStaleTemporaries(Env& env, const std::string& dir);

// Where a backup's manifest is written before it becomes the sidecar: a temporary name that
// RemoveStaleTemporaries knows.
std::string ManifestTempPath(const std::string& dir, const std::string& id);

// Writes `text` to `path` (created exclusively, owner-only) and fsyncs it.
Status WriteSyncedFile(Env& env, const std::string& path, std::string_view text);

// Makes the manifest at `manifest_tmp` (written and fsynced, the archive's last member byte for
// byte) the manifest sidecar and writes the others (with a verification record when `verified`:
// the caller checked the archive, see VerifyWhileWritten), then renames the temporary archive to
// `final_path` without ever replacing a file, and fsyncs the folder.
Status PublishArchive(Env& env, const std::string& dir, const std::string& id,
                      const std::string& tmp_path, const std::string& final_path,
                      const std::string& archive_sha256, const std::string& manifest_tmp,
                      bool verified);

// After a failure: removes the temporary archive and any sidecars written for it, unless the
// archive did reach its final name.
void RemoveUnpublished(Env& env, const std::string& dir, const std::string& id,
                       const std::string& tmp_path, const std::string& final_path);

}  // namespace lakevault
