#include "manifest/catalog.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

namespace fs = std::filesystem;

namespace lakevault {

namespace {
const char* kArchiveExtensions[] = {".tar.gz",     ".tar.zst",     ".tar",
                                    ".tar.gz.enc", ".tar.zst.enc", ".tar.enc"};

bool ReadSmallFile(const std::string& path, std::string* out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  std::stringstream ss;
  ss << in.rdbuf();
  *out = ss.str();
  return true;
}

// Splits "backup_20260127_160000.tar.gz" into id and extension when it is an archive name.
bool SplitArchiveName(const std::string& name, std::string* id) {
  for (const char* ext : kArchiveExtensions) {
    std::string e(ext);
    if (name.size() > e.size() && name.compare(name.size() - e.size(), e.size(), e) == 0) {
      std::string candidate = name.substr(0, name.size() - e.size());
      if (IsBackupId(candidate)) {
        *id = candidate;
        return true;
      }
    }
  }
  return false;
}
}  // namespace

std::string Sha256SidecarPath(const std::string& archive_path) { return archive_path + ".sha256"; }
std::string ManifestSidecarPath(const std::string& dir, const std::string& id) {
  return (fs::path(dir) / (id + ".manifest.json")).string();
}
std::string VerifySidecarPath(const std::string& dir, const std::string& id) {
  return (fs::path(dir) / (id + ".verify.json")).string();
}

std::vector<std::string> BackupFileNames(const std::string& dir, const std::string& id) {
  std::vector<std::string> names;
  for (const char* ext : kArchiveExtensions) {
    std::string archive = (fs::path(dir) / (id + ext)).string();
    names.push_back(archive);
    names.push_back(Sha256SidecarPath(archive));
  }
  names.push_back(ManifestSidecarPath(dir, id));
  names.push_back(VerifySidecarPath(dir, id));
  return names;
}

std::string Sha256SidecarContent(const std::string& hex, const std::string& archive_name) {
  return hex + "  " + archive_name + "\n";
}

Result<std::string> ParseSha256Sidecar(const std::string& content,
                                       const std::string& archive_name) {
  // Exactly what we write: one line, newline-terminated. Anything else is damage.
  if (content.empty() || content.back() != '\n') return Error("sidecar is truncated");
  std::string line = content.substr(0, content.size() - 1);
  if (line.find('\n') != std::string::npos) return Error("sidecar has more than one line");
  if (line.size() < 66 || line.substr(64, 2) != "  ")
    return Error("sidecar is not in sha256sum format");
  std::string hex = line.substr(0, 64);
  if (!std::all_of(hex.begin(), hex.end(),
                   [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); }))
    return Error("sidecar checksum is not a hex SHA-256");
  std::string name = line.substr(66);
  if (!name.empty() && name[0] == '*') name.erase(0, 1);  // binary-mode marker
  if (name != archive_name) return Error("sidecar names " + name + ", not " + archive_name);
  return hex;
}

Status WriteVerifyRecord(Env& env, const std::string& dir, const std::string& id,
                         const VerifyRecord& record) {
  nlohmann::json doc = {{"time", record.time}, {"ok", record.ok}, {"error", record.error}};
  // The error can quote damaged bytes that are not UTF-8: replaced, never thrown.
  return WriteFileAtomically(
      env, VerifySidecarPath(dir, id),
      doc.dump(1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n", 0600);
}

Result<Catalog> Catalog::Load(const std::string& dir) {
  Catalog catalog;
  catalog.dir_ = dir;
  std::error_code ec;
  if (!fs::exists(dir, ec)) return catalog;
  fs::directory_iterator it(dir, ec);
  if (ec) return Error("reading backup folder " + dir + ": " + ec.message());
  for (const auto& item : it) {
    std::string name = item.path().filename().string();
    std::string id;
    if (!SplitArchiveName(name, &id)) continue;
    if (!item.is_regular_file(ec)) continue;
    CatalogEntry entry;
    entry.id = id;
    entry.archive_name = name;
    entry.archive_path = item.path().string();
    entry.archive_bytes = static_cast<int64_t>(item.file_size(ec));
    const std::string sidecar = ManifestSidecarPath(dir, id);
    if (fs::is_regular_file(sidecar, ec)) {
      // The header alone: every command loads the catalogue, and at 300,000 files each sidecar's
      // list is 90 MB that listing, pruning or choosing a parent never look into.
      auto manifest = ReadManifestHeader(Env::Default(), sidecar);
      if (manifest.ok())
        entry.manifest = std::move(manifest).value();
      else
        entry.manifest_error = manifest.message();
    } else {
      entry.manifest_error = "manifest sidecar " + id + ".manifest.json is missing";
    }
    std::string text;
    if (ReadSmallFile(VerifySidecarPath(dir, id), &text)) {
      try {
        auto doc = nlohmann::json::parse(text);
        entry.last_verify =
            VerifyRecord{doc.value("time", ""), doc.value("ok", false), doc.value("error", "")};
      } catch (const nlohmann::json::exception&) {
        // An unreadable record only means "not verified yet".
      }
    }
    catalog.entries_.push_back(std::move(entry));
  }
  std::sort(catalog.entries_.begin(), catalog.entries_.end(),
            [](const CatalogEntry& a, const CatalogEntry& b) { return a.id < b.id; });
  return catalog;
}

Result<Manifest> LoadManifestFiles(const Catalog& catalog, const CatalogEntry& entry) {
  if (!entry.manifest) return Error("backup " + entry.id + ": " + entry.manifest_error);
  auto manifest = LoadManifest(Env::Default(), ManifestSidecarPath(catalog.dir(), entry.id));
  if (!manifest.ok()) return Error("backup " + entry.id + ": " + manifest.message());
  return manifest;
}

Result<const CatalogEntry*> Catalog::Find(const std::string& selector) const {
  if (entries_.empty()) return Error("no backups in " + dir_);
  if (selector.empty() || selector == "latest") return &entries_.back();
  for (const auto& e : entries_)
    if (e.id == selector || e.archive_name == selector) return &e;
  return Error("no backup '" + selector + "' in " + dir_ + " (see `lakevault list`)");
}

}  // namespace lakevault
