#include "manifest/manifest.h"

#include <nlohmann/json.hpp>
#include <regex>

namespace lakevault {

using nlohmann::json;

int64_t Manifest::TotalBytes() const {
  int64_t total = 0;
  for (const auto& f : files) total += f.size;
  return total;
}

const ManifestFile* Manifest::FindFile(const std::string& path) const {
  for (const auto& f : files)
    if (f.path == path) return &f;
  return nullptr;
}

std::string ManifestToJson(const Manifest& m) {
  json doc;
  doc["format"] = "lakevault-manifest";
  doc["format_version"] = m.format_version;
  doc["id"] = m.id;
  doc["kind"] = m.kind;
  doc["parent"] = m.parent.empty() ? json(nullptr) : json(m.parent);
  doc["created"] = m.created;
  doc["source_root"] = m.source_root;
  doc["lake"] = m.lake;
  doc["compression"] = m.compression;
  doc["archive"] = m.archive;
  doc["tool_version"] = m.tool_version;
  if (!m.consolidated_from.empty()) doc["consolidated_from"] = m.consolidated_from;
  doc["stats"] = {{"duration_seconds", m.duration_seconds},
                  {"files_stored", m.files_stored},
                  {"bytes_stored", m.bytes_stored}};
  doc["complete"] = m.complete();
  doc["missing"] = m.missing;
  json tables = json::object();
  for (const auto& t : m.tables) {
    tables[t.name] = {{"path", t.path},
                      {"version", t.version},
                      {"rows", t.rows ? json(*t.rows) : json(nullptr)},
                      {"files", t.files},
                      {"bytes", t.bytes}};
  }
  doc["tables"] = tables;
  json files = json::array();
  for (const auto& f : m.files) {
    json entry = {{"path", f.path},     {"size", f.size},   {"sha256", f.sha256},
                  {"backup", f.backup}, {"mtime", f.mtime}, {"mode", f.mode}};
    if (!f.link.empty()) entry["link"] = f.link;
    files.push_back(std::move(entry));
  }
  doc["files"] = std::move(files);
  return doc.dump(1) + "\n";
}

Result<Manifest> ParseManifest(const std::string& text) {
  Manifest m;
  try {
    json doc = json::parse(text);
    if (!doc.is_object() || doc.value("format", "") != "lakevault-manifest")
      return Error("not a lakevault manifest");
    m.format_version = doc.at("format_version").get<int>();
    if (m.format_version > kManifestFormatVersion)
      return Error("manifest format " + std::to_string(m.format_version) +
                   " is newer than this lakevault understands; upgrade lakevault");
    m.id = doc.at("id").get<std::string>();
    if (!IsBackupId(m.id)) return Error("manifest has a malformed id '" + m.id + "'");
    m.kind = doc.at("kind").get<std::string>();
    if (m.kind != "full" && m.kind != "incremental")
      return Error("manifest has unknown kind '" + m.kind + "'");
    if (!doc.at("parent").is_null()) m.parent = doc.at("parent").get<std::string>();
    m.created = doc.at("created").get<std::string>();
    m.source_root = doc.value("source_root", "");
    m.lake = doc.value("lake", "");
    m.compression = doc.value("compression", "");
    m.archive = doc.value("archive", "");
    m.tool_version = doc.value("tool_version", "");
    m.consolidated_from = doc.value("consolidated_from", "");
    if (doc.contains("stats") && doc.at("stats").is_object()) {
      const auto& stats = doc.at("stats");
      m.duration_seconds = stats.value("duration_seconds", 0.0);
      m.files_stored = stats.value("files_stored", int64_t{0});
      m.bytes_stored = stats.value("bytes_stored", int64_t{0});
    }
    if (doc.contains("missing")) m.missing = doc.at("missing").get<std::vector<std::string>>();
    for (const auto& [name, t] : doc.at("tables").items()) {
      ManifestTable table;
      table.name = name;
      table.path = t.at("path").get<std::string>();
      table.version = t.value("version", int64_t{-1});
      if (t.contains("rows") && !t.at("rows").is_null()) table.rows = t.at("rows").get<int64_t>();
      table.files = t.value("files", int64_t{0});
      table.bytes = t.value("bytes", int64_t{0});
      m.tables.push_back(std::move(table));
    }
    for (const auto& f : doc.at("files")) {
      ManifestFile file;
      file.path = f.at("path").get<std::string>();
      file.size = f.at("size").get<int64_t>();
      file.sha256 = f.at("sha256").get<std::string>();
      file.backup = f.at("backup").get<std::string>();
      file.mtime = f.value("mtime", int64_t{0});
      file.mode = f.value("mode", 0644u);
      file.link = f.value("link", "");
      if (file.size < 0) return Error("manifest lists a negative size for " + file.path);
      m.files.push_back(std::move(file));
    }
  } catch (const json::exception& e) {
    return Error(std::string("malformed manifest: ") + e.what());
  }
  return m;
}

bool IsBackupId(const std::string& id) {
  static const std::regex pattern("backup_[0-9]{8}_[0-9]{6}(_[0-9]+)?");
  return std::regex_match(id, pattern);
}

}  // namespace lakevault
