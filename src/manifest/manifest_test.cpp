#include "manifest/manifest.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

namespace lakevault {
namespace {

Manifest Sample(size_t files) {
  Manifest m;
  m.id = "backup_20261124_170000";
  m.kind = "incremental";
  m.parent = "backup_20261123_170000";
  m.created = "2026-11-24T17:00:00Z";
  m.source_root = "/srv/v6";
  m.lake = "data/lake";
  m.compression = "gzip";
  m.archive = "backup_20261124_170000.tar.gz";
  m.tool_version = "0.1.0";
  m.consolidated_from = "backup_20261122_170000";
  m.duration_seconds = 1.25;
  m.files_stored = 3;
  m.bytes_stored = 123456789012;
  // By name: tables are an object keyed by name, read back in key order.
  m.tables.push_back({"quotes \"q\"", "data/lake/quotes", -1, std::nullopt, 0, 0});
  m.tables.push_back({"trades", "data/lake/trades", 42, 1000, 7, 2048});
  m.missing = {"data/lake/trades/gone.parquet"};
  for (size_t i = 0; i < files; ++i) {
    ManifestFile f;
    f.path = "data/lake/trades/date=2026-11-2" + std::to_string(i % 10) + "/part-" +
             std::to_string(i) + (i % 3 == 0 ? " \"quoted\\\".parquet" : ".parquet");
    f.size = static_cast<int64_t>(i) * 1000 + 1;
    f.sha256 = std::string(64, "0123456789abcdef"[i % 16]);
    f.backup = i % 2 ? m.id : m.parent;
    f.mtime = 1764000000 + static_cast<int64_t>(i);
    f.mode = i % 4 == 0 ? 0755 : 0644;
    if (i % 5 == 4) {
      f.link = "../elsewhere/\xc3\xa9t\xc3\xa9";
      f.sha256.clear();
      f.size = 0;
    }
    m.files.push_back(f);
  }
  return m;
}

// The document as one nlohmann DOM dumped whole: the format manifests have always had.
std::string WholeDocument(const Manifest& m) {
  using nlohmann::json;
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
  for (const auto& t : m.tables)
    tables[t.name] = {{"path", t.path},
                      {"version", t.version},
                      {"rows", t.rows ? json(*t.rows) : json(nullptr)},
                      {"files", t.files},
                      {"bytes", t.bytes}};
  doc["tables"] = tables;
  json files = json::array();
  for (const auto& f : m.files) {
    json entry = {{"path", f.path},     {"size", f.size},   {"sha256", f.sha256},
                  {"backup", f.backup}, {"mtime", f.mtime}, {"mode", f.mode}};
    if (!f.link.empty()) entry["link"] = f.link;
    files.push_back(entry);
  }
  doc["files"] = files;
  return doc.dump(1) + "\n";
}

void ExpectSame(const Manifest& a, const Manifest& b) {
  EXPECT_EQ(a.id, b.id);
  EXPECT_EQ(a.kind, b.kind);
  EXPECT_EQ(a.parent, b.parent);
  EXPECT_EQ(a.created, b.created);
  EXPECT_EQ(a.source_root, b.source_root);
  EXPECT_EQ(a.lake, b.lake);
  EXPECT_EQ(a.compression, b.compression);
  EXPECT_EQ(a.archive, b.archive);
  EXPECT_EQ(a.tool_version, b.tool_version);
  EXPECT_EQ(a.consolidated_from, b.consolidated_from);
  EXPECT_DOUBLE_EQ(a.duration_seconds, b.duration_seconds);
  EXPECT_EQ(a.files_stored, b.files_stored);
  EXPECT_EQ(a.bytes_stored, b.bytes_stored);
  EXPECT_EQ(a.missing, b.missing);
  ASSERT_EQ(a.tables.size(), b.tables.size());
  for (size_t i = 0; i < a.tables.size(); ++i) {
    EXPECT_EQ(a.tables[i].name, b.tables[i].name);
    EXPECT_EQ(a.tables[i].path, b.tables[i].path);
    EXPECT_EQ(a.tables[i].version, b.tables[i].version);
    EXPECT_EQ(a.tables[i].rows, b.tables[i].rows);
    EXPECT_EQ(a.tables[i].files, b.tables[i].files);
    EXPECT_EQ(a.tables[i].bytes, b.tables[i].bytes);
  }
  ASSERT_EQ(a.files.size(), b.files.size());
  for (size_t i = 0; i < a.files.size(); ++i) {
    EXPECT_EQ(a.files[i].path, b.files[i].path);
    EXPECT_EQ(a.files[i].size, b.files[i].size);
    EXPECT_EQ(a.files[i].sha256, b.files[i].sha256);
    EXPECT_EQ(a.files[i].backup, b.files[i].backup);
    EXPECT_EQ(a.files[i].mtime, b.files[i].mtime);
    EXPECT_EQ(a.files[i].mode, b.files[i].mode);
    EXPECT_EQ(a.files[i].link, b.files[i].link);
  }
}

TEST(ManifestTest, WrittenEntryByEntryAsTheWholeDocumentWasAndReadBack) {
  for (size_t files : {0, 1, 2, 37}) {
    Manifest m = Sample(files);
    if (files == 1) {  // a full backup without the optional fields
      m.kind = "full";
      m.parent.clear();
      m.consolidated_from.clear();
      m.missing.clear();
    }
    std::string text = ManifestToJson(m);
    EXPECT_EQ(text, WholeDocument(m)) << files << " files";
    auto back = ParseManifest(text);
    ASSERT_TRUE(back.ok()) << back.message();
    ExpectSame(m, *back);
    EXPECT_EQ(ManifestToJson(*back), text);
  }
}

TEST(ManifestTest, RefusesWhatIsNotAWellFormedManifest) {
  std::string good = ManifestToJson(Sample(3));
  ASSERT_TRUE(ParseManifest(good).ok());
  auto message = [](const std::string& text) {
    auto r = ParseManifest(text);
    return r.ok() ? std::string("accepted") : r.message();
  };
  auto with = [&](const std::string& from, const std::string& to) {
    std::string text = good;
    size_t at = text.find(from);
    EXPECT_NE(at, std::string::npos) << from;
    return text.replace(at, from.size(), to);
  };
  EXPECT_NE(message(good.substr(0, good.size() / 2)).find("malformed manifest"), std::string::npos);
  EXPECT_EQ(message("[]"), "not a lakevault manifest");
  EXPECT_EQ(message(with("\"lakevault-manifest\"", "\"other\"")), "not a lakevault manifest");
  EXPECT_NE(message(with("\"format_version\": 1", "\"format_version\": 2")).find("newer"),
            std::string::npos);
  EXPECT_NE(
      message(with("\"id\": \"backup_20261124_170000\"", "\"id\": \"x\"")).find("malformed id"),
      std::string::npos);
  EXPECT_NE(message(with("\"kind\": \"incremental\"", "\"kind\": \"weekly\"")).find("unknown kind"),
            std::string::npos);
  EXPECT_EQ(message(with("\"created\":", "\"made\":")),
            "malformed manifest: missing key 'created'");
  EXPECT_EQ(message(with("\"size\": 1\n", "\"size\": \"1\"\n")),
            "malformed manifest: 'size' is not a number in range");
  EXPECT_EQ(message(with("\"size\": 1\n", "\"size\": -1\n")),
            "manifest lists a negative size for data/lake/trades/date=2026-11-20/part-0 "
            "\"quoted\\\".parquet");
  EXPECT_EQ(message(with("\"mode\": 493", "\"mode\": 4294967296")),
            "malformed manifest: 'mode' is not a number in range");
  EXPECT_EQ(message(with("\"files\": [", "\"files\": 5, \"unused\": [")),
            "malformed manifest: 'files' is not an array");
  // Optional keys may be absent.
  auto without_missing = ParseManifest(with("\"missing\": [", "\"unused\": ["));
  ASSERT_TRUE(without_missing.ok()) << without_missing.message();
  EXPECT_TRUE(without_missing->missing.empty());
  EXPECT_EQ(message(with("\"tables\": {", "\"tables\": 5, \"unused\": {")),
            "malformed manifest: 'tables' is not an object");
}

}  // namespace
}  // namespace lakevault
