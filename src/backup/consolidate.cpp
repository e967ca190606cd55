#include "backup/consolidate.h"

#include <spdlog/spdlog.h>

#include <chrono>
#include <filesystem>
#include <set>

#include "archive/archive.h"
#include "backup/publish.h"
#include "core/lock.h"
#include "crypto/sha256.h"
#include "manifest/catalog.h"
#include "manifest/chain.h"
#include "materialize/materialize.h"
#include "verify/verify.h"

namespace fs = std::filesystem;

namespace lakevault {

namespace {

// Presents the current archive member as a file to copy into the new archive.
class MemberFile final : public SequentialFile {
 public:
  MemberFile(ArchiveReader& reader, std::string path) : reader_(reader), path_(std::move(path)) {}
  Result<size_t> Read(void* buffer, size_t size) override { return reader_.Read(buffer, size); }
  const std::string& path() const override { return path_; }

 private:
  ArchiveReader& reader_;
  std::string path_;
};

}  // namespace

Result<ConsolidateOutcome> RunConsolidate(Env& env, const std::string& dir,
                                          const std::string& selector, Compression compression,
                                          std::optional<TimePoint> fixed_now) {
  LV_ASSIGN_OR_RETURN(auto lock, FileLock::Acquire((fs::path(dir) / ".lakevault.lock").string(),
                                                   "backup or prune"));
  RemoveStaleTemporaries(env, dir);
  LV_ASSIGN_OR_RETURN(Catalog catalog, Catalog::Load(dir));
  LV_ASSIGN_OR_RETURN(const CatalogEntry* target, catalog.Find(selector));
  LV_ASSIGN_OR_RETURN(auto chain, ResolveChain(catalog, target->id));
  if (!target->manifest) return Error(target->id + ": " + target->manifest_error);
  // Neither list is held: the source's is read as a stream (ReadBackupMembers), the new one is
  // written to its manifest file as members are copied. At 1,000,000 files each would be
  // hundreds of MB as records.
  const std::string source_list = ManifestSidecarPath(dir, target->id);
  const Manifest& source = *target->manifest;

  ConsolidateOutcome outcome;
  Manifest& manifest = outcome.manifest;
  manifest = source;
  manifest.id = ChooseId(dir, fixed_now);
  manifest.kind = "full";
  manifest.parent.clear();
  manifest.consolidated_from = source.id;
  manifest.compression = CompressionName(compression);
  manifest.archive = manifest.id + ArchiveExtension(compression);
  manifest.files.clear();
  manifest.listed_files = manifest.listed_bytes = 0;
  const std::string final_path = (fs::path(dir) / manifest.archive).string();
  const std::string tmp_path = (fs::path(dir) / ("." + manifest.archive + ".tmp")).string();
  const std::string manifest_tmp = ManifestTempPath(dir, manifest.id);
  spdlog::info("consolidate {} ({} backups in its chain) into full backup {}", source.id,
               chain.size(), manifest.id);

  const auto started = std::chrono::steady_clock::now();
  std::unique_ptr<WritableFile> manifest_file;
  ManifestWriter list(
      [&](std::string_view piece) { return manifest_file->Append(piece.data(), piece.size()); });
  int64_t stored_bytes = 0;
  auto copy = [&](ArchiveWriter& writer, const CatalogEntry& link, ArchiveReader& reader,
                  const ArchiveEntry& member, const ManifestFile& file) -> Status {
    ManifestFile record = file;
    record.backup = manifest.id;
    ArchiveEntry entry;
    entry.path = record.path;
    entry.size = record.size;
    entry.mode = record.mode;
    entry.mtime = record.mtime;
    if (!record.link.empty()) {
      entry.link_target = record.link;
      LV_RETURN_IF_ERROR(writer.AddSymlink(entry));
    } else {
      MemberFile input(reader, member.path);
      Sha256 hash;
      LV_RETURN_IF_ERROR(writer.AddFile(entry, input, &hash));
      if (hash.HexDigest() != record.sha256)
        return Error(link.id + ": " + record.path +
                     ": content does not match its SHA-256 (archive damaged)");
      stored_bytes += record.size;
    }
    return list.Add(record);
  };

  auto write = [&]() -> Status {
    // Folders first, as a backup writes them: one read of the list for their names.
    std::set<std::string> folders;
    LV_RETURN_IF_ERROR(ReadManifestFile(env, source_list, [&](ManifestFile&& f) {
                         for (fs::path p = fs::path(f.path).parent_path(); !p.empty();
                              p = p.parent_path())
                           if (!folders.insert(p.generic_string()).second) break;
                         return Status::Ok();
                       }).status());
    LV_ASSIGN_OR_RETURN(auto writer, ArchiveWriter::Create(env, tmp_path, compression));
    LV_ASSIGN_OR_RETURN(manifest_file, env.NewWritableFile(manifest_tmp, 0600));
    // Checked as it is written, as a backup is.
    VerifyWhileWritten check(env, manifest.id, tmp_path, manifest_tmp);
    LV_RETURN_IF_ERROR(list.Begin(manifest));
    for (const auto& folder : folders) {
      ArchiveEntry entry;
      entry.path = folder + "/";
      entry.mode = 0755;
      LV_RETURN_IF_ERROR(writer->AddDirectory(entry));
    }
    folders.clear();
    // The members in the order the chain's archives give them, the list in the same order: the
    // new archive reads back in one merge.
    LV_RETURN_IF_ERROR(ReadBackupMembers(env, catalog, target->id, MaterializeOptions{},
                                         [&](const CatalogEntry& link, ArchiveReader& reader,
                                             const ArchiveEntry& member, const ManifestFile& file) {
                                           return copy(*writer, link, reader, member, file);
                                         })
                           .status());
    // What writing this backup cost, for `report` and the metrics: every file is stored in a
    // synthetic full (the source's own figures were an incremental's).
    manifest.files_stored = list.files();
    manifest.bytes_stored = stored_bytes;
    manifest.duration_seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    LV_RETURN_IF_ERROR(list.End(manifest));
    ArchiveEntry entry;
    entry.path = kManifestMemberName;
    entry.mode = 0600;
    entry.size = list.bytes_written();
    LV_ASSIGN_OR_RETURN(auto manifest_source, env.NewSequentialFile(manifest_tmp));
    LV_RETURN_IF_ERROR(writer->AddFile(entry, *manifest_source, nullptr));
    // As backup does: the check's tail overlaps the archive's fsync, the manifest's follows it.
    LV_RETURN_IF_ERROR(writer->Finish([&] { check.Written(); }));
    LV_RETURN_IF_ERROR(manifest_file->Sync());
    LV_RETURN_IF_ERROR(manifest_file->Close());
    outcome.archive_bytes = writer->bytes_written();
    LV_RETURN_IF_ERROR(check.Finish());
    return PublishArchive(env, dir, manifest.id, tmp_path, final_path, writer->archive_sha256(),
                          manifest_tmp, /*verified=*/true);
  };
  Status status = write();
  if (!status.ok()) {
    RemoveUnpublished(env, dir, manifest.id, tmp_path, final_path);
    return Error("consolidate " + source.id + " failed: " + status.message() +
                 "; no backup was written, existing backups are untouched");
  }
  manifest.listed_files = list.files();
  outcome.archive_path = final_path;
  return outcome;
}

}  // namespace lakevault
