#include "manifest/manifest.h"

#include <simdjson.h>

#include <limits>
#include <nlohmann/json.hpp>
#include <optional>
#include <regex>
#include <type_traits>
#include <utility>

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

// The document is nlohmann's dump(1) of one object with every key, but the file list, which is
// most of it at thousands of files, is written entry by entry: a DOM of the whole list took
// about 1.5 KB per file, the largest allocation of a backup of a lake of small files.
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
  doc["files"] = json::array();
  std::string head = doc.dump(1);
  // Keys are sorted and "files" is a top-level key (indent 1); a string value cannot hold this
  // sequence unescaped.
  static const std::string kPlaceholder = "\n \"files\": []";
  size_t at = head.find(kPlaceholder);
  // Reserved once for the whole text: at 300,000 files it is about 90 MB, and a guess short of it
  // by a few bytes a file copied it into twice the capacity, both held at once. Each entry is its
  // strings plus about 110 bytes of keys, numbers and indentation (more only if escaped).
  size_t estimate = head.size();
  for (const auto& f : m.files)
    estimate += 128 + f.path.size() + f.sha256.size() + f.backup.size() +
                (f.link.empty() ? 0 : 16 + f.link.size());
  std::string out;
  out.reserve(estimate);
  out.append(head, 0, at + kPlaceholder.size() - 1);  // up to and without the closing ']'
  if (!m.files.empty()) {
    out += '\n';
    for (size_t i = 0; i < m.files.size(); ++i) {
      const auto& f = m.files[i];
      json entry = {{"path", f.path},     {"size", f.size},   {"sha256", f.sha256},
                    {"backup", f.backup}, {"mtime", f.mtime}, {"mode", f.mode}};
      if (!f.link.empty()) entry["link"] = f.link;
      std::string text = entry.dump(1);
      // Each line two levels deeper, as inside the whole document.
      out += "  ";
      for (char c : text) {
        out += c;
        if (c == '\n') out += "  ";
      }
      out += i + 1 < m.files.size() ? ",\n" : "\n";
    }
    out += ' ';
  }
  out.append(head, at + kPlaceholder.size() - 1, std::string::npos);
  out += '\n';
  return out;
}

namespace {

// A manifest field that is absent or of another type than expected is malformed; the message
// names the field, as nlohmann's did.
struct ManifestError {
  std::string message;
};

std::string Str(simdjson::dom::object o, const char* key, std::optional<std::string> fallback) {
  simdjson::dom::element e;
  if (o.at_key(key).get(e)) {
    if (fallback) return *fallback;
    throw ManifestError{std::string("missing key '") + key + "'"};
  }
  std::string_view v;
  if (e.get_string().get(v)) throw ManifestError{std::string("'") + key + "' is not a string"};
  return std::string(v);
}

template <typename T>
T Num(simdjson::dom::object o, const char* key, std::optional<T> fallback) {
  simdjson::dom::element e;
  if (o.at_key(key).get(e)) {
    if (fallback) return *fallback;
    throw ManifestError{std::string("missing key '") + key + "'"};
  }
  if constexpr (std::is_floating_point_v<T>) {
    double d;
    if (!e.get_double().get(d)) return d;
    int64_t i;
    if (!e.get_int64().get(i)) return static_cast<double>(i);
    uint64_t u;
    if (!e.get_uint64().get(u)) return static_cast<double>(u);
  } else {
    int64_t i;
    if (!e.get_int64().get(i) && std::in_range<T>(i)) return static_cast<T>(i);
  }
  throw ManifestError{std::string("'") + key + "' is not a number in range"};
}

simdjson::dom::object Obj(simdjson::dom::element e, const char* what) {
  simdjson::dom::object o;
  if (e.get_object().get(o)) throw ManifestError{std::string(what) + " is not an object"};
  return o;
}

// An absent optional array is nullopt (a default dom::array has no document to iterate).
std::optional<simdjson::dom::array> Arr(simdjson::dom::object o, const char* key, bool required) {
  simdjson::dom::element e;
  simdjson::dom::array a;
  if (o.at_key(key).get(e)) {
    if (required) throw ManifestError{std::string("missing key '") + key + "'"};
    return std::nullopt;
  }
  if (e.get_array().get(a)) throw ManifestError{std::string("'") + key + "' is not an array"};
  return a;
}

}  // namespace

// simdjson instead of a nlohmann DOM: `list`, `verify` and every backup parse manifests, and a
// DOM of one with thousands of files was several times the size of its text.
Result<Manifest> ParseManifest(const std::string& text) {
  Manifest m;
  simdjson::dom::parser parser;
  simdjson::dom::element root;
  if (auto err = parser.parse(text).get(root))
    return Error(std::string("malformed manifest: ") + simdjson::error_message(err));
  try {
    simdjson::dom::object doc;
    std::string_view format;
    if (root.get_object().get(doc) || doc.at_key("format").get_string().get(format) ||
        format != "lakevault-manifest")
      return Error("not a lakevault manifest");
    m.format_version = Num<int>(doc, "format_version", std::nullopt);
    if (m.format_version > kManifestFormatVersion)
      return Error("manifest format " + std::to_string(m.format_version) +
                   " is newer than this lakevault understands; upgrade lakevault");
    m.id = Str(doc, "id", std::nullopt);
    if (!IsBackupId(m.id)) return Error("manifest has a malformed id '" + m.id + "'");
    m.kind = Str(doc, "kind", std::nullopt);
    if (m.kind != "full" && m.kind != "incremental")
      return Error("manifest has unknown kind '" + m.kind + "'");
    simdjson::dom::element parent;
    if (doc.at_key("parent").get(parent)) throw ManifestError{"missing key 'parent'"};
    if (!parent.is_null()) m.parent = Str(doc, "parent", std::nullopt);
    m.created = Str(doc, "created", std::nullopt);
    m.source_root = Str(doc, "source_root", "");
    m.lake = Str(doc, "lake", "");
    m.compression = Str(doc, "compression", "");
    m.archive = Str(doc, "archive", "");
    m.tool_version = Str(doc, "tool_version", "");
    m.consolidated_from = Str(doc, "consolidated_from", "");
    simdjson::dom::element stats_element;
    simdjson::dom::object stats;
    if (!doc.at_key("stats").get(stats_element) && !stats_element.get_object().get(stats)) {
      m.duration_seconds = Num<double>(stats, "duration_seconds", 0.0);
      m.files_stored = Num<int64_t>(stats, "files_stored", 0);
      m.bytes_stored = Num<int64_t>(stats, "bytes_stored", 0);
    }
    if (auto missing = Arr(doc, "missing", false))
      for (auto e : *missing) {
        std::string_view v;
        if (e.get_string().get(v)) throw ManifestError{"'missing' holds a non-string"};
        m.missing.emplace_back(v);
      }
    simdjson::dom::element tables_element;
    if (doc.at_key("tables").get(tables_element)) throw ManifestError{"missing key 'tables'"};
    for (auto [name, value] : Obj(tables_element, "'tables'")) {
      simdjson::dom::object t = Obj(value, "a table");
      ManifestTable table;
      table.name = std::string(name);
      table.path = Str(t, "path", std::nullopt);
      table.version = Num<int64_t>(t, "version", -1);
      simdjson::dom::element rows;
      if (!t.at_key("rows").get(rows) && !rows.is_null())
        table.rows = Num<int64_t>(t, "rows", std::nullopt);
      table.files = Num<int64_t>(t, "files", 0);
      table.bytes = Num<int64_t>(t, "bytes", 0);
      m.tables.push_back(std::move(table));
    }
    simdjson::dom::array files = *Arr(doc, "files", true);
    m.files.reserve(files.size());
    for (auto element : files) {
      simdjson::dom::object f = Obj(element, "a file entry");
      ManifestFile file;
      file.path = Str(f, "path", std::nullopt);
      file.size = Num<int64_t>(f, "size", std::nullopt);
      file.sha256 = Str(f, "sha256", std::nullopt);
      file.backup = Str(f, "backup", std::nullopt);
      file.mtime = Num<int64_t>(f, "mtime", 0);
      file.mode = Num<uint32_t>(f, "mode", 0644u);
      file.link = Str(f, "link", "");
      if (file.size < 0) return Error("manifest lists a negative size for " + file.path);
      m.files.push_back(std::move(file));
    }
  } catch (const ManifestError& e) {
    return Error("malformed manifest: " + e.message);
  }
  return m;
}

bool IsBackupId(const std::string& id) {
  static const std::regex pattern("backup_[0-9]{8}_[0-9]{6}(_[0-9]+)?");
  return std::regex_match(id, pattern);
}

}  // namespace lakevault
