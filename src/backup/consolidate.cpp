#include "backup/consolidate.h"

#include <spdlog/spdlog.h>

#include <filesystem>
#include <set>
#include <unordered_map>

#include "archive/archive.h"
#include "backup/publish.h"
#include "core/lock.h"
#include "crypto/sha256.h"
#include "manifest/catalog.h"
#include "manifest/chain.h"

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
  LV_ASSIGN_OR_RETURN(const Manifest source, LoadManifestFiles(catalog, *target));

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
  const std::string final_path = (fs::path(dir) / manifest.archive).string();
  const std::string tmp_path = (fs::path(dir) / ("." + manifest.archive + ".tmp")).string();
  spdlog::info("consolidate {} ({} backups in its chain) into full backup {}", source.id,
               chain.size(), manifest.id);

  auto write = [&]() -> Status {
    LV_ASSIGN_OR_RETURN(auto writer, ArchiveWriter::Create(env, tmp_path, compression));
    std::set<std::string> folders;
    for (const auto& f : source.files)
      for (fs::path p = fs::path(f.path).parent_path(); !p.empty(); p = p.parent_path())
        folders.insert(p.generic_string());
    for (const auto& folder : folders) {
      ArchiveEntry entry;
      entry.path = folder + "/";
      entry.mode = 0755;
      LV_RETURN_IF_ERROR(writer->AddDirectory(entry));
    }
    for (const CatalogEntry* link : chain) {
      std::unordered_map<std::string, const ManifestFile*> wanted;
      for (const auto& f : source.files)
        if (f.backup == link->id) wanted[f.path] = &f;
      if (wanted.empty()) continue;
      LV_ASSIGN_OR_RETURN(auto reader, ArchiveReader::Open(env, link->archive_path));
      while (!wanted.empty()) {
        ArchiveEntry member;
        LV_ASSIGN_OR_RETURN(bool more, reader->Next(&member));
        if (!more) break;
        auto it = wanted.find(member.path);
        if (it == wanted.end()) continue;
        ManifestFile record = *it->second;
        record.backup = manifest.id;
        ArchiveEntry entry;
        entry.path = record.path;
        entry.size = record.size;
        entry.mode = record.mode;
        entry.mtime = record.mtime;
        if (!record.link.empty()) {
          entry.link_target = record.link;
          LV_RETURN_IF_ERROR(writer->AddSymlink(entry));
        } else {
          MemberFile input(*reader, member.path);
          Sha256 hash;
          LV_RETURN_IF_ERROR(writer->AddFile(entry, input, &hash));
          if (hash.HexDigest() != record.sha256)
            return Error(link->id + ": " + record.path +
                         ": content does not match its SHA-256 (archive damaged)");
        }
        manifest.files.push_back(std::move(record));
        wanted.erase(it);
      }
      if (!wanted.empty())
        return Error(link->id + ": " + wanted.begin()->first + " is missing from the archive");
    }
    const std::string manifest_json = ManifestToJson(manifest);
    const std::string manifest_tmp = ManifestTempPath(dir, manifest.id);
    LV_RETURN_IF_ERROR(WriteSyncedFile(env, manifest_tmp, manifest_json));
    ArchiveEntry entry;
    entry.path = kManifestMemberName;
    entry.mode = 0600;
    LV_RETURN_IF_ERROR(writer->AddBytes(entry, manifest_json));
    LV_RETURN_IF_ERROR(writer->Finish());
    outcome.archive_bytes = writer->bytes_written();
    return PublishArchive(env, dir, manifest.id, tmp_path, final_path, writer->archive_sha256(),
                          manifest_tmp, /*verify=*/true);
  };
  Status status = write();
  if (!status.ok()) {
    RemoveUnpublished(env, dir, manifest.id, tmp_path, final_path);
    return Error("consolidate " + source.id + " failed: " + status.message() +
                 "; no backup was written, existing backups are untouched");
  }
  outcome.archive_path = final_path;
  return outcome;
}

}  // namespace lakevault
