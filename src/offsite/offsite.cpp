#include "offsite/offsite.h"

#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <map>
#include <set>

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

Result<UploadOutcome> UploadBackup(Env& env, Storage& remote, const std::string& backup_dir,
                                   const std::string& id, const std::optional<Key>& key) {
  LV_ASSIGN_OR_RETURN(Catalog catalog, Catalog::Load(backup_dir));
  LV_ASSIGN_OR_RETURN(const CatalogEntry* entry, catalog.Find(id));
  UploadOutcome out;
  // An incremental is useless off-site without its chain: missing ancestors go up first.
  if (entry->manifest && !entry->manifest->parent.empty()) {
    LV_ASSIGN_OR_RETURN(auto present, ListRemoteBackups(remote));
    bool there = false;
    for (const auto& b : present) there = there || b.id == entry->manifest->parent;
    if (!there) {
      LV_ASSIGN_OR_RETURN(UploadOutcome parent,
                          UploadBackup(env, remote, backup_dir, entry->manifest->parent, key));
      out.objects = parent.objects;
      out.bytes = parent.bytes;
    }
  }
  std::string local = entry->archive_path;
  std::string object = entry->archive_name;
  std::string scratch;
  if (key) {
    object += ".enc";
    scratch = Scratch(backup_dir, object);
    LV_RETURN_IF_ERROR(EncryptFile(local, scratch, *key, env));
    local = scratch;
    out.encrypted = true;
  }
  auto cleanup = [&]() {
    if (!scratch.empty()) env.RemoveFile(scratch);
  };
  auto digest = Sha256OfFile(env, local);
  if (!digest.ok()) {
    cleanup();
    return digest.error();
  }
  std::error_code ec;
  out.bytes += static_cast<int64_t>(fs::file_size(local, ec));
  Status put = remote.Put(object, local);
  if (put.ok()) {
    out.objects.push_back(object);
    // Sidecars go up through a scratch file: the storage drivers upload files.
    std::string side = Scratch(backup_dir, object + ".sha256");
    put = WriteFileAtomically(env, side, Sha256SidecarContent(*digest, object), 0600);
    if (put.ok())
      put = remote.Put(entry->id + ".manifest.json", ManifestSidecarPath(backup_dir, entry->id));
    if (put.ok()) put = remote.Put(object + ".sha256", side);
    env.RemoveFile(side);
    if (put.ok()) {
      out.objects.push_back(entry->id + ".manifest.json");
      out.objects.push_back(object + ".sha256");
    }
  }
  cleanup();
  if (!put.ok())
    return Error("uploading " + entry->id + " to " + remote.Describe() + ": " + put.message());
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
    auto manifest_text = ReadWholeFile(env, manifest_path);
    if (!manifest_text.ok()) return manifest_text.error();
    auto manifest = ParseManifest(*manifest_text);
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
    // The manifest says when the backup was taken and which backup it builds on.
    auto text = remote.GetRange(b.id + ".manifest.json", 0, 64 << 20);
    auto manifest = text.ok() ? ParseManifest(*text) : Result<Manifest>(text.error());
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
