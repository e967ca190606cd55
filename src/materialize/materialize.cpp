#include "materialize/materialize.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <condition_variable>
#include <deque>
#include <filesystem>
#include <map>
#include <mutex>
#include <set>
#include <thread>
#include <unordered_map>
#include <vector>

#include "archive/archive.h"
#include "crypto/sha256.h"
#include "manifest/catalog.h"
#include "manifest/chain.h"

namespace fs = std::filesystem;

namespace lakevault {

namespace {

// A symlink may only point inside the folder it is restored into.
bool SymlinkStaysInside(const std::string& member, const std::string& target) {
  if (target.empty() || target.front() == '/') return false;
  fs::path resolved = (fs::path(member).parent_path() / target).lexically_normal();
  std::string text = resolved.generic_string();
  return !(text == ".." || text.rfind("../", 0) == 0);
}

// Files are fsynced on a thread of their own (by path, after they are closed, so no descriptor
// is held meanwhile) while extraction goes on; nothing is swapped in before every file is
// durable (Finish()).
class Syncer {
 public:
  explicit Syncer(Env& env) : env_(env), thread_([this] { Run(); }) {}
  ~Syncer() { Finish(); }
  Status Push(std::string path) {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [this] { return queue_.size() < kMaxQueued || !status_.ok(); });
    if (!status_.ok()) return status_;
    queue_.push_back(std::move(path));
    cv_.notify_all();
    return Status::Ok();
  }
  // Waits for every file pushed; the first fsync error.
  Status Finish() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      done_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
    return status_;
  }

 private:
  static constexpr size_t kMaxQueued = 256;
  void Run() {
    while (true) {
      std::string path;
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [this] { return !queue_.empty() || done_; });
        if (queue_.empty()) return;
        path = std::move(queue_.front());
        queue_.pop_front();
      }
      Status s = env_.SyncFile(path);
      std::lock_guard<std::mutex> lock(mu_);
      if (!s.ok() && status_.ok()) status_ = s;
      cv_.notify_all();
    }
  }
  Env& env_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::string> queue_;
  Status status_;
  bool done_ = false;
  std::thread thread_;
};

Status WriteMember(Env& env, ArchiveReader& reader, const ManifestFile& file,
                   const fs::path& target, std::vector<char>& buffer, Syncer& syncer,
                   int64_t* bytes) {
  std::error_code ec;
  fs::create_directories(target.parent_path(), ec);
  if (ec) return Error("creating folder " + target.parent_path().string() + ": " + ec.message());
  LV_ASSIGN_OR_RETURN(auto out, env.NewWritableFile(target.string(), file.mode & 0777));
  Sha256 hash;
  int64_t size = 0;
  while (true) {
    LV_ASSIGN_OR_RETURN(size_t n, reader.Read(buffer.data(), buffer.size()));
    if (n == 0) break;
    size += static_cast<int64_t>(n);
    if (size > file.size)
      return Error(file.path + ": archive member is larger than the manifest says");
    hash.Update(buffer.data(), n);
    LV_RETURN_IF_ERROR(out->Append(buffer.data(), n));
  }
  if (size != file.size || hash.HexDigest() != file.sha256)
    return Error(file.path + ": content does not match the manifest's SHA-256 (archive damaged)");
  LV_RETURN_IF_ERROR(out->Close());
  struct timespec times[2] = {{file.mtime, 0}, {file.mtime, 0}};
  ::utimensat(AT_FDCWD, target.c_str(), times, AT_SYMLINK_NOFOLLOW);
  LV_RETURN_IF_ERROR(syncer.Push(target.string()));
  *bytes += size;
  return Status::Ok();
}

}  // namespace

Result<MaterializeOutcome> MaterializeBackup(Env& env, const Catalog& catalog,
                                             const std::string& id, const std::string& dest,
                                             const MaterializeOptions& options) {
  LV_ASSIGN_OR_RETURN(auto chain, ResolveChain(catalog, id));
  LV_ASSIGN_OR_RETURN(const Manifest manifest, LoadManifestFiles(catalog, *chain.back()));
  // Which archive holds which wanted file.
  std::map<std::string, std::unordered_map<std::string, const ManifestFile*>> wanted;
  size_t expected = 0;
  // A file below a symlink would be written wherever the link points: refused up front.
  std::set<std::string> links;
  for (const auto& file : manifest.files)
    if (!file.link.empty()) links.insert(file.path);
  for (const auto& file : manifest.files) {
    if (!IsSafeMemberPath(file.path))
      return Error("backup " + id + ": manifest names an unsafe path '" + file.path + "'");
    for (fs::path p = fs::path(file.path).parent_path(); !p.empty() && p != p.parent_path();
         p = p.parent_path())
      if (links.count(p.generic_string()))
        return Error("backup " + id + ": " + file.path + " lies below the symlink " +
                     p.generic_string() + "; refusing to write through it");
  }
  for (const auto& file : manifest.files) {
    if (!IsSafeMemberPath(file.path))
      return Error("backup " + id + ": manifest names an unsafe path '" + file.path + "'");
    if (!file.link.empty() && !SymlinkStaysInside(file.path, file.link))
      return Error("backup " + id + ": symlink " + file.path + " points outside the lake (" +
                   file.link + ")");
    if (options.include && !options.include(file.path)) continue;
    wanted[file.backup][file.path] = &file;
    ++expected;
  }
  for (const auto& [holder, files] : wanted) {
    bool in_chain = false;
    for (const CatalogEntry* link : chain) in_chain |= link->id == holder;
    if (!in_chain)
      return Error("backup " + id + " says " + files.begin()->first + " is in " + holder +
                   ", which is not in its chain");
  }

  MaterializeOutcome outcome;
  std::vector<char> buffer(1 << 20);
  Syncer syncer(env);
  const fs::path root(dest);
  for (const CatalogEntry* link : chain) {
    auto it = wanted.find(link->id);
    if (it == wanted.end() && !options.verify_archives) continue;
    std::unordered_map<std::string, const ManifestFile*> none;
    auto& files = it == wanted.end() ? none : it->second;
    std::string expected_sha;
    std::string manifest_sidecar;
    if (options.verify_archives) {
      auto sidecar = ReadWholeFile(env, Sha256SidecarPath(link->archive_path));
      if (!sidecar.ok())
        return Error(link->id + ": checksum sidecar " + link->archive_name + ".sha256 is missing");
      LV_ASSIGN_OR_RETURN(expected_sha, ParseSha256Sidecar(*sidecar, link->archive_name));
      // The file list above comes from the manifest sidecar, which no checksum covers: it must
      // equal the manifest sealed inside the archive, or a damaged mode, size or version in it
      // would be restored as if it were the backup's.
      auto text = ReadWholeFile(env, ManifestSidecarPath(catalog.dir(), link->id));
      if (!text.ok()) return Error(link->id + ": manifest sidecar is missing or unreadable");
      manifest_sidecar = std::move(text).value();
    }
    Sha256 whole;
    LV_ASSIGN_OR_RETURN(
        auto reader,
        ArchiveReader::Open(env, link->archive_path, options.verify_archives ? &whole : nullptr));
    bool manifest_matched = false;
    while (!files.empty() || (options.verify_archives && !manifest_matched)) {
      ArchiveEntry entry;
      LV_ASSIGN_OR_RETURN(bool more, reader->Next(&entry));
      if (!more) break;
      if (options.verify_archives && entry.path == kManifestMemberName) {
        LV_ASSIGN_OR_RETURN(std::string sealed, reader->ReadAll(512u << 20));
        if (sealed != manifest_sidecar)
          return Error(link->id +
                       ": the manifest sidecar differs from the manifest inside the archive (the "
                       "sidecar is damaged)");
        manifest_matched = true;
        continue;
      }
      auto found = files.find(entry.path);
      if (found == files.end()) continue;
      const ManifestFile& file = *found->second;
      fs::path target = root / file.path;
      if (!file.link.empty()) {
        std::error_code ec;
        fs::create_directories(target.parent_path(), ec);
        if (entry.type != EntryType::kSymlink || entry.link_target != file.link)
          return Error(link->id + ": " + file.path + ": archive member differs from the manifest");
        if (::symlink(file.link.c_str(), target.c_str()) != 0)
          return ErrnoError("creating symlink " + target.string(), errno);
      } else {
        if (entry.type != EntryType::kFile)
          return Error(link->id + ": " + file.path + ": archive member is not a regular file");
        Status s = WriteMember(env, *reader, file, target, buffer, syncer, &outcome.bytes);
        if (!s.ok()) return s.error().Context("restoring from " + link->id);
        if (options.on_progress) options.on_progress(outcome.bytes);
      }
      outcome.files++;
      files.erase(found);
    }
    if (!files.empty())
      return Error(link->id + ": " + files.begin()->first + " is missing from the archive");
    if (options.verify_archives) {
      if (!manifest_matched)
        return Error(link->id + ": the archive holds no manifest (" +
                     std::string(kManifestMemberName) + ")");
      LV_RETURN_IF_ERROR(reader->Drain());
      if (whole.HexDigest() != expected_sha)
        return Error(link->id +
                     ": archive checksum does not match its .sha256 sidecar (the file "
                     "is damaged)");
    }
  }
  LV_RETURN_IF_ERROR(syncer.Finish());
  if (static_cast<size_t>(outcome.files) != expected)
    return Error("backup " + id + ": restored " + std::to_string(outcome.files) + " of " +
                 std::to_string(expected) + " files");
  // Folders back to the lake's own modes is not needed for Delta; files carry theirs.
  return outcome;
}

}  // namespace lakevault
