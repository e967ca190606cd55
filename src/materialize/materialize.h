// Materialising a backup: the files of backup X's manifest written into an empty folder, each
// taken from the archive of the chain that holds its bytes, each checked against its SHA-256 as
// it is written. Files deleted before X (absent from X's manifest) never come back.
#pragma once

#include <functional>
#include <string>

#include "archive/archive.h"
#include "core/env.h"
#include "core/result.h"
#include "manifest/catalog.h"

namespace lakevault {

struct MaterializeOptions {
  // Only paths for which this returns true are written (all when unset); e.g. one table.
  std::function<bool(const std::string& path)> include;
  // Read every archive of the chain to its end and compare its SHA-256 with the .sha256
  // sidecar: with the per-file checks this is a full verification in the same pass.
  bool verify_archives = false;
  // Called with the bytes written so far (for progress bars).
  std::function<void(int64_t)> on_progress;
  // An archive whose members are not in its list's order leaves entries that one merge of the
  // two does not meet: up to this many are looked up by path in one more read of the archive
  // (held in a map, about 250 bytes each); more are merged again, a read each time.
  size_t max_unordered_entries = size_t{1} << 14;
};

struct MaterializeOutcome {
  int64_t files = 0;
  int64_t bytes = 0;
  // Reads of an archive after its first, for members out of the list's order.
  int64_t archive_rereads = 0;
};

// What ReadBackupMembers hands each listed file to: the archive of the chain that holds it,
// positioned at its member (`entry`, whose path is the file's and whose kind, regular file or
// symlink to the same target, is checked against it), and the file's entry in the target's list.
// The sink reads the content from `reader` and checks it against `file`; an error stops the read
// and is returned.
using MemberSink = std::function<Status(const CatalogEntry& link, ArchiveReader& reader,
                                        const ArchiveEntry& entry, const ManifestFile& file)>;

// The members of backup `id` (those `options.include` accepts), each handed to `sink` once,
// archive by archive of its chain, in the order they are met: the list is read from the
// target's manifest sidecar as a stream and never held, so memory stays bounded whatever its
// length. Fails when a listed file is in no archive of its chain; `outcome.files` counts the
// sink's calls (`bytes` is left to the sink).
Result<MaterializeOutcome> ReadBackupMembers(Env& env, const Catalog& catalog,
                                             const std::string& id,
                                             const MaterializeOptions& options,
                                             const MemberSink& sink);

// `dest` must exist and be empty. On failure, what was written stays in `dest` for the caller
// to remove (it is a staging folder, never the live lake).
Result<MaterializeOutcome> MaterializeBackup(Env& env, const Catalog& catalog,
                                             const std::string& id, const std::string& dest,
                                             const MaterializeOptions& options = {});

}  // namespace lakevault
