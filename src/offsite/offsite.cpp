#include "offsite/offsite.h"

#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "crypto/sha256.h"
#include "manifest/catalog.h"
#include "manifest/manifest.h"
#include "retention/retention.h"

namespace fs = std::filesystem;

namespace lakevault {

namespace {

// Keys of a remote's config that are ours, not the storage driver's.
const std::set<std::string> kOwnKeys = {"type", "encrypt", "prune"};

RemoteSpec SpecFrom(const Remote& r) {
  RemoteSpec spec;
  spec.type = r.type;
  for (const auto& [k, v] : r.settings)
    if (!kOwnKeys.count(k)) spec.settings[k] = v;
  return spec;
}

std::string Scratch(const std::string& dir, const std::string& name) {
  return (fs::path(dir) / ("." + name + ".offsite-" + std::to_string(::getpid()) + ".tmp"))
      .string();
}

// A remote object read front to back in ranged reads of a few MiB, so a manifest of any size is
// parsed as a stream.
class RemoteObjectFile final : public SequentialFile {
 public:
  RemoteObjectFile(Storage& remote, std::string name) : remote_(remote), name_(std::move(name)) {}
  Result<size_t> Read(void* buffer, size_t size) override {
    if (at_ == chunk_.size() && !ended_) {
      LV_ASSIGN_OR_RETURN(chunk_, remote_.GetRange(name_, offset_, kChunk));
      at_ = 0;
      offset_ += chunk_.size();
      ended_ = chunk_.size() < kChunk;
    }
    size_t n = std::min(size, chunk_.size() - at_);
    std::memcpy(buffer, chunk_.data() + at_, n);
    at_ += n;
    return n;
  }
  const std::string& path() const override { return name_; }

 private:
  static constexpr uint64_t kChunk = 4u << 20;
  Storage& remote_;
  std::string name_;
  std::string chunk_;
  size_t at_ = 0;
  uint64_t offset_ = 0;
  bool ended_ = false;
};

}  // namespace

Result<std::unique_ptr<Storage>> OpenRemote(const Config& config, const std::string& what) {
  auto it = config.remotes.find(what);
  if (it != config.remotes.end()) return OpenStorage(SpecFrom(it->second));
  // The guide's --upload-s3 / --upload-rsync: the first remote of that type.
  for (const auto& [name, remote] : config.remotes)
    if (remote.type == what) return OpenStorage(SpecFrom(remote));
  if (what.rfind("s3://", 0) == 0) {
    Remote r{"s3", "s3", {}};
    for (const auto& [name, remote] : config.remotes)
      if (remote.type == "s3") {
        r = remote;
        break;
      }
    r.settings["url"] = what;
    if (const char* e = std::getenv("AWS_ENDPOINT_URL")) r.settings["endpoint"] = e;
    if (const char* g = std::getenv("AWS_REGION")) r.settings["region"] = g;
    return OpenStorage(SpecFrom(r));
  }
  if (!what.empty() && what.front() == '/')
    return OpenStorage(RemoteSpec{"local", {{"path", what}}});
  if (what.find(':') != std::string::npos && what.find('@') != std::string::npos)
    return OpenStorage(RemoteSpec{"rsync", {{"dest", what}}});
  std::string names;
  for (const auto& [name, remote] : config.remotes) names += (names.empty() ? "" : ", ") + name;
  return Error(
      "no remote named '" + what + "' in the config" +
      (names.empty() ? std::string(" (none configured)") : " (configured: " + names + ")"));
}

Result<std::optional<Key>> ConfiguredKey(const Config& config) {
  if (config.encryption_key_file.empty()) return std::optional<Key>();
  auto key = LoadKeyFile(config.Resolve(config.encryption_key_file));
  if (!key.ok()) return key.error();
  return std::optional<Key>(std::move(key).value());
}

namespace {

// An incremental is useless off-site without its chain: ancestors the remote lacks go up too.
Status UploadMissingParent(Env& env, Storage& remote, const std::string& backup_dir,
                           const CatalogEntry& entry, const std::optional<Key>& key,
                           UploadOutcome& out) {
  if (!entry.manifest || entry.manifest->parent.empty()) return Status::Ok();
  LV_ASSIGN_OR_RETURN(auto present, ListRemoteBackups(remote));
  for (const auto& b : present)
    if (b.id == entry.manifest->parent) return Status::Ok();
  LV_ASSIGN_OR_RETURN(UploadOutcome parent,
                      UploadBackup(env, remote, backup_dir, entry.manifest->parent, key));
  out.objects.insert(out.objects.end(), parent.objects.begin(), parent.objects.end());
  out.bytes += parent.bytes;
  return Status::Ok();
}

// The manifest, then the .sha256 of the object as sent: a backup counts as present on the
// remote only once its .sha256 is there.
Status PutSidecars(Env& env, Storage& remote, const std::string& backup_dir, const std::string& id,
                   const std::string& object, const std::string& digest, UploadOutcome& out) {
  // Through a scratch file: the storage drivers upload files.
  std::string side = Scratch(backup_dir, object + ".sha256");
  Status put = WriteFileAtomically(env, side, Sha256SidecarContent(digest, object), 0600);
  if (put.ok()) put = remote.Put(id + ".manifest.json", ManifestSidecarPath(backup_dir, id));
  if (put.ok()) put = remote.Put(object + ".sha256", side);
  env.RemoveFile(side);
  if (!put.ok()) return put;
  out.objects.push_back(id + ".manifest.json");
  out.objects.push_back(object + ".sha256");
  return Status::Ok();
}

}  // namespace

struct LiveUpload::State {
  Storage& remote;
  std::string path;
  std::string object;
  std::optional<Key> key;  // for ancestors the remote lacks
  std::unique_ptr<Encryptor> encryptor;
  std::unique_ptr<SequentialFile> file;
  std::unique_ptr<UploadStream> stream;
  Sha256 read_hash;  // the archive's bytes: must match its sidecar
  Sha256 sent_hash;  // the object's bytes when encrypted: its .sha256 on the remote
  int64_t sent = 0;
  std::mutex mu;
  std::condition_variable wake;
  bool finishing = false;  // the file is complete: read to its end, then stop
  bool stop = false;
  bool done = false;
  Status status = Status::Ok();
  std::thread thread;

  explicit State(Storage& r) : remote(r) {}

  Status Send(const char* data, size_t size) {
    if (size == 0) return Status::Ok();
    if (encryptor) sent_hash.Update(data, size);  // else the object is the archive: read_hash
    sent += static_cast<int64_t>(size);
    return stream->Append(data, size);
  }

  // Reads what the writer has appended so far; at the current end it waits for more (a read
  // past the end of a growing file returns 0) until told the file is complete.
  void Run() {
    std::string buffer(1 << 20, '\0');
    std::string cipher;
    bool last_pass = false;
    for (;;) {
      {
        std::lock_guard<std::mutex> lock(mu);
        if (stop) return;
      }
      auto n = file->Read(buffer.data(), buffer.size());
      if (!n.ok()) {
        status = n.status();
        return;
      }
      if (*n == 0) {
        if (last_pass) return;
        std::unique_lock<std::mutex> lock(mu);
        if (finishing) {
          last_pass = true;
          continue;
        }
        wake.wait_for(lock, std::chrono::milliseconds(20), [&] { return finishing || stop; });
        continue;
      }
      read_hash.Update(buffer.data(), *n);
      Status st;
      if (encryptor) {
        cipher.clear();
        encryptor->Update(buffer.data(), *n, cipher);
        st = Send(cipher.data(), cipher.size());
      } else {
        st = Send(buffer.data(), *n);
      }
      if (!st.ok()) {
        status = st;
        return;
      }
    }
  }

  void Join(bool abort) {
    {
      std::lock_guard<std::mutex> lock(mu);
      (abort ? stop : finishing) = true;
    }
    wake.notify_all();
    if (thread.joinable()) thread.join();
  }
};

LiveUpload::LiveUpload(std::unique_ptr<State> state) : state_(std::move(state)) {}

LiveUpload::~LiveUpload() { Abort(); }

Result<std::unique_ptr<LiveUpload>> LiveUpload::Start(Storage& remote, const std::string& path,
                                                      const std::string& object,
                                                      const std::optional<Key>& key) {
  auto state = std::make_unique<State>(remote);
  state->path = path;
  state->object = key ? object + ".enc" : object;
  state->key = key;
  if (key) state->encryptor = std::make_unique<Encryptor>(*key);
  LV_ASSIGN_OR_RETURN(state->file, Env::Default().NewSequentialFile(path));
  LV_ASSIGN_OR_RETURN(state->stream, remote.OpenUpload(state->object));
  State* s = state.get();
  state->thread = std::thread([s] { s->Run(); });
  return std::unique_ptr<LiveUpload>(new LiveUpload(std::move(state)));
}

void LiveUpload::Abort() {
  if (!state_ || state_->done) return;
  state_->Join(/*abort=*/true);
  state_->stream->Abort();
  state_->done = true;
}

Result<UploadOutcome> LiveUpload::Complete(Env& env, const std::string& backup_dir,
                                           const std::string& id) {
  auto catalog = Catalog::Load(backup_dir);
  auto entry = catalog.ok() ? catalog->Find(id) : Result<const CatalogEntry*>(catalog.error());
  if (!entry.ok()) {
    Abort();
    return Error("uploading " + id + " to " + state_->remote.Describe() + ": " + entry.message());
  }
  return Complete(env, backup_dir, **entry);
}

Result<UploadOutcome> LiveUpload::Complete(Env& env, const std::string& backup_dir,
                                           const CatalogEntry& e) {
  State& s = *state_;
  const std::string& id = e.id;
  if (s.done) return Error("the upload of " + s.object + " has already ended");
  auto fail = [&](const std::string& why) -> Error {
    Abort();
    return Error("uploading " + id + " to " + s.remote.Describe() + ": " + why);
  };
  s.Join(/*abort=*/false);
  if (!s.status.ok()) return fail(s.status.message());
  // The bytes sent were read while the archive grew; they count only if they are exactly the
  // archive that was verified and published.
  auto sidecar = ReadWholeFile(env, Sha256SidecarPath(e.archive_path));
  if (!sidecar.ok()) return fail(sidecar.message());
  auto expected = ParseSha256Sidecar(*sidecar, e.archive_name);
  if (!expected.ok()) return fail(expected.message());
  const std::string read_digest = s.read_hash.HexDigest();
  if (read_digest != *expected)
    return fail("the bytes read from " + s.path + " do not hash to its sidecar's SHA-256 " +
                *expected + "; the upload was aborted");
  if (s.encryptor) {
    std::string tail;
    s.encryptor->Final(tail);
    Status st = s.Send(tail.data(), tail.size());
    if (!st.ok()) return fail(st.message());
  }
  Status finished = s.stream->Finish();
  s.done = true;
  if (!finished.ok())
    return Error("uploading " + id + " to " + s.remote.Describe() + ": " + finished.message());
  UploadOutcome out;
  Status st = UploadMissingParent(env, s.remote, backup_dir, e, s.key, out);
  out.objects.push_back(s.object);
  out.encrypted = s.encryptor != nullptr;
  out.bytes += s.sent;
  if (st.ok())
    st = PutSidecars(env, s.remote, backup_dir, id, s.object,
                     s.encryptor ? s.sent_hash.HexDigest() : read_digest, out);
  if (!st.ok())
    return Error("uploading " + id + " to " + s.remote.Describe() + ": " + st.message());
  return out;
}

Result<UploadOutcome> UploadBackup(Env& env, Storage& remote, const std::string& backup_dir,
                                   const std::string& id, const std::optional<Key>& key) {
  LV_ASSIGN_OR_RETURN(Catalog catalog, Catalog::Load(backup_dir));
  LV_ASSIGN_OR_RETURN(const CatalogEntry* entry, catalog.Find(id));
  if (remote.StreamsUploads()) {
    // One read of the archive: hashed, encrypted and sent in the same pass, no .enc file.
    LV_ASSIGN_OR_RETURN(auto live,
                        LiveUpload::Start(remote, entry->archive_path, entry->archive_name, key));
    return live->Complete(env, backup_dir, *entry);
  }
  UploadOutcome out;
  auto failed = [&](const Status& st) {
    return Error("uploading " + entry->id + " to " + remote.Describe() + ": " + st.message());
  };
  // Ancestors first here: nothing of this backup is on the remote if one of them fails.
  Status parent = UploadMissingParent(env, remote, backup_dir, *entry, key, out);
  if (!parent.ok()) return parent.error();
  std::string local = entry->archive_path;
  std::string object = entry->archive_name;
  std::string scratch;
  if (key) {
    // rsync and folders take files: the encrypted copy is a scratch file beside the backups.
    object += ".enc";
    scratch = Scratch(backup_dir, object);
    LV_RETURN_IF_ERROR(EncryptFile(local, scratch, *key, env));
    local = scratch;
    out.encrypted = true;
  }
  auto digest = Sha256OfFile(env, local);
  std::error_code ec;
  out.bytes += static_cast<int64_t>(fs::file_size(local, ec));
  Status put = digest.ok() ? remote.Put(object, local) : digest.status();
  if (put.ok()) {
    out.objects.push_back(object);
    put = PutSidecars(env, remote, backup_dir, entry->id, object, *digest, out);
  }
  if (!scratch.empty()) env.RemoveFile(scratch);
  if (!put.ok()) return failed(put);
  return out;
}

Result<std::vector<RemoteBackup>> ListRemoteBackups(Storage& remote) {
  LV_ASSIGN_OR_RETURN(auto objects, remote.List("backup_"));
  std::map<std::string, uint64_t> sizes;
  for (const auto& o : objects) sizes[o.name] = o.size;
  std::vector<RemoteBackup> out;
  for (const auto& [name, size] : sizes) {
    for (const std::string ext :
         {".tar.gz", ".tar.zst", ".tar", ".tar.gz.enc", ".tar.zst.enc", ".tar.enc"}) {
      if (name.size() <= ext.size() || name.compare(name.size() - ext.size(), ext.size(), ext) != 0)
        continue;
      std::string id = name.substr(0, name.size() - ext.size());
      if (!IsBackupId(id) || !sizes.count(name + ".sha256")) continue;
      out.push_back(
          RemoteBackup{id, name, ext.size() > 4 && ext.substr(ext.size() - 4) == ".enc", size});
    }
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.id < b.id; });
  return out;
}

Result<std::string> FetchBackup(Env& env, Storage& remote, const std::string& id,
                                const std::string& backup_dir, const std::optional<Key>& key) {
  LV_ASSIGN_OR_RETURN(auto listed, ListRemoteBackups(remote));
  if (listed.empty()) return Error("no backups on " + remote.Describe());
  std::error_code ec;
  fs::create_directories(backup_dir, ec);
  ::chmod(backup_dir.c_str(), 0700);
  std::string want = id == "latest" ? listed.back().id : id;
  std::string first = want;
  while (!want.empty()) {
    const RemoteBackup* rb = nullptr;
    for (const auto& b : listed)
      if (b.id == want) rb = &b;
    if (!rb) return Error("backup " + want + " is not on " + remote.Describe());
    std::string plain = rb->encrypted ? rb->archive.substr(0, rb->archive.size() - 4) : rb->archive;
    std::string final_archive = (fs::path(backup_dir) / plain).string();
    std::string manifest_path = ManifestSidecarPath(backup_dir, want);
    if (!fs::exists(final_archive)) {
      std::string got = Scratch(backup_dir, rb->archive);
      std::string side = Scratch(backup_dir, rb->archive + ".sha256");
      std::string man = Scratch(backup_dir, want + ".manifest.json");
      auto cleanup = [&]() {
        env.RemoveFile(got);
        env.RemoveFile(side);
        env.RemoveFile(man);
      };
      Status st = remote.Get(rb->archive, got);
      if (st.ok()) st = remote.Get(rb->archive + ".sha256", side);
      if (st.ok()) st = remote.Get(want + ".manifest.json", man);
      if (!st.ok()) {
        cleanup();
        return Error("downloading " + want + " from " + remote.Describe() + ": " + st.message());
      }
      auto side_text = ReadWholeFile(env, side);
      auto expected = side_text.ok() ? ParseSha256Sidecar(*side_text, rb->archive)
                                     : Result<std::string>(side_text.error());
      auto actual = Sha256OfFile(env, got);
      if (!expected.ok() || !actual.ok() || *expected != *actual) {
        cleanup();
        return Error("downloaded " + rb->archive +
                     " does not match its .sha256 (damaged in transit "
                     "or on the remote)");
      }
      if (rb->encrypted) {
        if (!key) {
          cleanup();
          return Error(rb->archive + " is encrypted: set encryption.key_file to the backup key");
        }
        std::string dec = Scratch(backup_dir, plain);
        Status d = DecryptFile(got, dec, *key, env);
        env.RemoveFile(got);
        if (!d.ok()) {
          cleanup();
          return d.error();
        }
        got = dec;
      }
      auto plain_hex = Sha256OfFile(env, got);
      if (!plain_hex.ok()) {
        cleanup();
        return plain_hex.error();
      }
      // Sidecars first, the archive's final name last: a half-fetched backup is never listed.
      Status w = WriteFileAtomically(env, Sha256SidecarPath(final_archive),
                                     Sha256SidecarContent(*plain_hex, plain), 0600);
      if (w.ok()) w = env.Rename(man, manifest_path, false);
      if (w.ok()) w = env.Rename(got, final_archive, true);
      if (w.ok()) w = env.SyncDir(backup_dir);
      if (!w.ok()) {
        cleanup();
        return w.error();
      }
      spdlog::info("fetched {} from {}", want, remote.Describe());
    }
    // Only its parent is needed: the header, read as a stream (the list can be 90 MB).
    auto manifest = ReadManifestFile(env, manifest_path, nullptr);
    if (!manifest.ok()) return Error(want + ": " + manifest.message());
    want = manifest->parent;
  }
  return first;
}

Result<RemotePruneOutcome> PruneRemote(Storage& remote, const RetentionPolicy& policy,
                                       TimePoint now, bool dry_run) {
  LV_ASSIGN_OR_RETURN(auto listed, ListRemoteBackups(remote));
  RemotePruneOutcome out;
  std::vector<RetentionInput> inputs;
  std::map<std::string, const RemoteBackup*> by_id;
  for (const auto& b : listed) {
    by_id[b.id] = &b;
    // The manifest says when the backup was taken and which backup it builds on: its header,
    // read as a stream (the list after it is 90 MB at 300,000 files; a read of its first 64 MiB
    // left such a backup unreadable, so never pruned).
    RemoteObjectFile object(remote, b.id + ".manifest.json");
    auto manifest = ReadManifest(object, nullptr);
    auto created = manifest.ok() ? ParseTime(manifest->created) : Result<TimePoint>(Error(""));
    if (!manifest.ok() || !created.ok()) {
      // What cannot be judged is not deleted.
      out.decisions.push_back({b.id, true, "kept: its manifest on the remote is unreadable"});
      continue;
    }
    inputs.push_back(RetentionInput{b.id, *created, manifest->parent, true});
  }
  for (auto& d : PlanRetention(inputs, policy, now)) out.decisions.push_back(std::move(d));
  std::sort(out.decisions.begin(), out.decisions.end(),
            [](const auto& a, const auto& b) { return a.id < b.id; });
  if (dry_run) return out;
  // Newest first, and the .sha256 first within a backup: an interrupted prune leaves at worst
  // an incomplete backup (not listed), never a listed one missing its archive.
  for (auto it = out.decisions.rbegin(); it != out.decisions.rend(); ++it) {
    if (it->keep) continue;
    const RemoteBackup& b = *by_id.at(it->id);
    for (const std::string& name : {b.archive + ".sha256", b.archive, b.id + ".manifest.json"}) {
      Status s = remote.Delete(name);
      if (!s.ok())
        return Error("deleting " + name + " on " + remote.Describe() + ": " + s.message() +
                     " (backups deleted before it: " + std::to_string(out.deleted.size()) + ")");
    }
    spdlog::info("deleted {} on {}", b.id, remote.Describe());
    out.deleted.push_back(b.id);
  }
  return out;
}

}  // namespace lakevault
