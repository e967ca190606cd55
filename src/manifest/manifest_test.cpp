#include "manifest/manifest.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <tuple>

#include "manifest/list_index.h"

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
             std::to_string(i) + (i % 3 == 0 ? " \"quoted\\\".parquet" : ".parquet") +
             (i % 7 == 6 ? "\t\x01" : "");
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
  int64_t bytes = 0;
  for (const auto& f : m.files) {
    bytes += f.size;
    json entry = {{"path", f.path},     {"size", f.size},   {"sha256", f.sha256},
                  {"backup", f.backup}, {"mtime", f.mtime}, {"mode", f.mode}};
    if (!f.link.empty()) entry["link"] = f.link;
    files.push_back(entry);
  }
  doc["files"] = files;
  doc["list"] = {{"files", m.files.size()}, {"bytes", bytes}};
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

// The text written to a file and read back a file entry at a time.
class StreamedManifest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("lv-manifest-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string Write(const std::string& text) {
    std::string path = (dir_ / "m.json").string();
    std::ofstream(path, std::ios::binary) << text;
    return path;
  }
  std::filesystem::path dir_;
};

TEST_F(StreamedManifest, WriterGivesTheWholeDocumentWhateverTheSinkPieces) {
  for (size_t files : {0, 1, 37, 3000}) {
    Manifest m = Sample(files);
    std::string out;
    size_t calls = 0;
    ManifestWriter writer([&](std::string_view piece) {
      out.append(piece);
      calls++;
      return Status::Ok();
    });
    Manifest header = m;
    header.files.clear();
    header.duration_seconds = 0;  // the stats are known only at the end
    ASSERT_TRUE(writer.Begin(header).ok());
    for (const auto& f : m.files) ASSERT_TRUE(writer.Add(f).ok());
    header.duration_seconds = m.duration_seconds;
    ASSERT_TRUE(writer.End(header).ok());
    EXPECT_EQ(out, WholeDocument(m)) << files << " files";
    EXPECT_EQ(writer.bytes_written(), static_cast<int64_t>(out.size()));
    EXPECT_EQ(writer.files(), static_cast<int64_t>(files));
    // Buffered: 3000 entries (about 1 MB) reach the sink in pieces of 64 KiB, not one a file.
    if (files == 3000) EXPECT_LT(calls, 40u);
  }
}

TEST_F(StreamedManifest, WriterRefusesAHeaderThatChangedBeforeTheList) {
  Manifest m = Sample(2);
  ManifestWriter writer([](std::string_view) { return Status::Ok(); });
  ASSERT_TRUE(writer.Begin(m).ok());
  m.missing.clear();  // "complete" was written before the list
  EXPECT_FALSE(writer.End(m).ok());
  ManifestWriter failing([](std::string_view) { return Status(Error("disk full")); });
  Status begun = failing.Begin(Sample(0));
  Status ended = begun.ok() ? failing.End(Sample(0)) : begun;
  EXPECT_EQ(ended.message(), "disk full");
}

TEST_F(StreamedManifest, ReadsEveryEntryInOrderWithoutKeepingThem) {
  Manifest m = Sample(500);
  std::string path = Write(ManifestToJson(m));
  std::vector<ManifestFile> seen;
  auto read = ReadManifestFile(Env::Default(), path, [&](ManifestFile&& f) {
    seen.push_back(std::move(f));
    return Status::Ok();
  });
  ASSERT_TRUE(read.ok()) << read.message();
  EXPECT_TRUE(read->files.empty());
  EXPECT_EQ(read->listed_files, 500);
  EXPECT_EQ(read->listed_bytes, m.TotalBytes());
  EXPECT_EQ(read->TotalBytes(), m.TotalBytes());
  read->files = std::move(seen);
  ExpectSame(m, *read);
  // Without a visitor: the header alone, counts included.
  auto header = ReadManifestFile(Env::Default(), path, nullptr);
  ASSERT_TRUE(header.ok()) << header.message();
  EXPECT_TRUE(header->files.empty());
  EXPECT_EQ(header->listed_files, 500);
  EXPECT_EQ(header->id, m.id);
  EXPECT_EQ(header->missing, m.missing);
}

TEST_F(StreamedManifest, AVisitorsErrorStopsTheRead) {
  std::string path = Write(ManifestToJson(Sample(50)));
  int calls = 0;
  auto read = ReadManifestFile(Env::Default(), path, [&](ManifestFile&&) {
    return ++calls == 7 ? Status(Error("enough")) : Status::Ok();
  });
  ASSERT_FALSE(read.ok());
  EXPECT_EQ(read.message(), "enough");
  EXPECT_EQ(calls, 7);
}

TEST_F(StreamedManifest, AReadErrorIsReportedNotTakenForTheEnd) {
  std::string path = Write(ManifestToJson(Sample(2000)));  // several 64 KiB reads
  auto env = NewFaultInjectingEnv(Env::Default(), FaultSpec{"read", 2});
  auto read = ReadManifestFile(*env, path, nullptr);
  ASSERT_FALSE(read.ok());
  EXPECT_EQ(read.message().find("malformed"), std::string::npos) << read.message();
}

TEST_F(StreamedManifest, RefusesDamageWithAMessageNamingIt) {
  std::string good = ManifestToJson(Sample(3));
  const std::string first = "data/lake/trades/date=2026-11-20/part-0 \"quoted\\\".parquet";
  const std::vector<std::tuple<std::string, std::string, std::string>> damage = {
      {"\"created\":", "\"made\":", "malformed manifest: missing key 'created'"},
      {"\"size\": 1\n", "\"size\": \"1\"\n", "malformed manifest: 'size' is not a number in range"},
      {"\"size\": 1\n", "\"size\": -1\n", "manifest lists a negative size for " + first},
      {"\"size\": 1\n", "\"size\": 1.5\n", "malformed manifest: 'size' is not a number in range"},
      {"\"size\": 1\n", "\"size\": {\"a\": [1]}\n",
       "malformed manifest: 'size' is not a number in range"},
      {"\"size\": 1\n", "\"size\": 18446744073709551615\n",
       "malformed manifest: 'size' is not a number in range"},
      {"\"size\": 1\n", "\"extra\": {\"size\": \"x\"}, \"size\": 1\n", ""},
      {"\"mode\": 493", "\"mode\": -1", "malformed manifest: 'mode' is not a number in range"},
      {"\"mode\": 493", "\"mode\": 4294967296",
       "malformed manifest: 'mode' is not a number in range"},
      {"\"path\": \"data", "\"path\": 5, \"x\": \"data",
       "malformed manifest: 'path' is not a string"},
      {"\"path\": \"data", "\"p\": \"data", "malformed manifest: missing key 'path'"},
      {"\"backup\": \"", "\"backup\": null, \"b\": \"",
       "malformed manifest: 'backup' is not a string"},
      {"\"files\": [", "\"files\": 5, \"unused\": [",
       "malformed manifest: 'files' is not an array"},
      {"\"files\": [\n  {", "\"files\": [\n  7, {",
       "malformed manifest: a file entry is not an object"},
      {"\"files\": [\n  {", "\"files\": [\n  [], {",
       "malformed manifest: a file entry is not an object"},
      {"\"lakevault-manifest\"", "\"other\"", "not a lakevault manifest"},
      {"\"tables\": {", "\"tables\": 5, \"unused\": {",
       "malformed manifest: 'tables' is not an object"},
  };
  for (const auto& [from, to, expected] : damage) {
    std::string text = good;
    size_t at = text.find(from);
    ASSERT_NE(at, std::string::npos) << from;
    text.replace(at, from.size(), to);
    auto parsed = ParseManifest(text);
    auto streamed = ReadManifestFile(Env::Default(), Write(text), nullptr);
    if (expected.empty()) {  // an unknown key's value is not looked into
      EXPECT_TRUE(parsed.ok()) << to << ": " << parsed.message();
      EXPECT_TRUE(streamed.ok()) << to;
      continue;
    }
    ASSERT_FALSE(parsed.ok()) << to;
    ASSERT_FALSE(streamed.ok()) << to;
    EXPECT_EQ(parsed.message(), expected) << to;
    EXPECT_EQ(streamed.message(), expected) << to;
  }
  auto cut = ReadManifestFile(Env::Default(), Write(good.substr(0, good.size() - 9)), nullptr);
  ASSERT_FALSE(cut.ok());
  EXPECT_NE(cut.message().find("malformed manifest"), std::string::npos) << cut.message();
  auto trailing = ReadManifestFile(Env::Default(), Write(good + "{}"), nullptr);
  EXPECT_FALSE(trailing.ok());
  auto missing = ReadManifestFile(Env::Default(), (dir_ / "none.json").string(), nullptr);
  EXPECT_FALSE(missing.ok());
}

// The catalogue takes the header's "list" totals on trust (ReadManifestHeader): every reader of
// the list itself must hold the two against each other.
TEST_F(StreamedManifest, EveryReadOfTheListRefusesTotalsItsHeaderDoesNotMatch) {
  Manifest m = Sample(20);
  const std::string good = ManifestToJson(m);
  const std::string totals =
      "\"list\": {\n  \"bytes\": " + std::to_string(m.TotalBytes()) + ",\n  \"files\": 20\n }";
  ASSERT_NE(good.find(totals), std::string::npos) << good.substr(good.find("\"list\""), 60);
  auto with = [&](const std::string& from, const std::string& to) {
    std::string text = good;
    size_t at = text.find(from);
    EXPECT_NE(at, std::string::npos) << from;
    return text.replace(at, from.size(), to);
  };
  // The last entry dropped, the header left as it was.
  std::string dropped = good;
  size_t last = dropped.rfind(",\n  {");
  dropped.erase(last, dropped.find("}", last) + 1 - last);
  ASSERT_TRUE(nlohmann::json::accept(dropped));
  const std::vector<std::string> damaged = {
      with("\"files\": 20\n", "\"files\": 21\n"),
      with("\"bytes\": " + std::to_string(m.TotalBytes()),
           "\"bytes\": " + std::to_string(m.TotalBytes() - 1)),
      with("\"size\": 1001\n", "\"size\": 1002\n"), dropped};
  for (const std::string& text : damaged) {
    auto parsed = ParseManifest(text);
    ASSERT_FALSE(parsed.ok());
    EXPECT_NE(parsed.message().find("is damaged: its header counts"), std::string::npos)
        << parsed.message();
    const std::string path = Write(text);
    auto streamed = ReadManifestFile(Env::Default(), path, nullptr);
    ASSERT_FALSE(streamed.ok());
    EXPECT_NE(streamed.message().find("manifest " + path + " is damaged"), std::string::npos)
        << streamed.message();
    EXPECT_FALSE(LoadManifest(Env::Default(), path).ok());
    EXPECT_FALSE(ManifestIndex::Load(Env::Default(), path).ok());
    ManifestStream stream(Env::Default(), path, [](const ManifestFile&) { return true; });
    while (stream.Peek()) stream.Pop();
    EXPECT_FALSE(stream.result().ok());
  }
  auto undamaged = ReadManifestFile(Env::Default(), Write(good), nullptr);
  ASSERT_TRUE(undamaged.ok()) << undamaged.message();
  EXPECT_EQ(undamaged->listed_files, 20);
  EXPECT_EQ(undamaged->listed_bytes, m.TotalBytes());
  // The totals themselves are checked as any header field.
  auto message = [](const std::string& text) {
    auto r = ParseManifest(text);
    return r.ok() ? std::string("accepted") : r.message();
  };
  EXPECT_EQ(message(with(totals, "\"list\": 5")), "malformed manifest: 'list' is not an object");
  EXPECT_EQ(message(with("\"files\": 20\n", "\"files\": \"20\"\n")),
            "malformed manifest: 'files' is not a number in range");
  EXPECT_EQ(message(with("\"files\": 20\n", "\"nothing\": 20\n")),
            "malformed manifest: missing key 'files'");
  EXPECT_EQ(message(with("\"files\": 20\n", "\"files\": -20\n")),
            "malformed manifest: 'list' holds a negative total");
}

// Manifests written before the header had "list" hold their totals only in their list; readers
// that do not know a key pass over it (what lets format version 1 gain "list").
TEST_F(StreamedManifest, ReadsAManifestWithoutTotalsOrWithKeysItDoesNotKnow) {
  Manifest m = Sample(30);
  std::string text = ManifestToJson(m);
  size_t at = text.find(" \"list\": {");
  ASSERT_NE(at, std::string::npos);
  std::string old = text;
  old.erase(at, old.find("},\n", at) + 3 - at);
  ASSERT_EQ(old.find("\"list\""), std::string::npos);
  ASSERT_TRUE(nlohmann::json::accept(old)) << old.substr(at - 80, 200);
  for (const std::string& variant :
       {old, text.substr(0, text.rfind('}')) + ",\n \"zz_later\": {\"files\": [1, {}]}\n}\n"}) {
    auto parsed = ParseManifest(variant);
    ASSERT_TRUE(parsed.ok()) << parsed.message();
    ExpectSame(m, *parsed);
    const std::string path = Write(variant);
    for (auto read : {ReadManifestFile(Env::Default(), path, nullptr),
                      ReadManifestHeader(Env::Default(), path)}) {
      ASSERT_TRUE(read.ok()) << read.message();
      EXPECT_EQ(read->listed_files, 30);
      EXPECT_EQ(read->listed_bytes, m.TotalBytes());
      EXPECT_EQ(read->id, m.id);
    }
  }
}

TEST_F(StreamedManifest, TheCompactIndexGivesBackEveryEntryAsListed) {
  Manifest m = Sample(400);
  m.files[7].sha256 = std::string(64, 'A');  // not as lakevault writes digests: kept whole
  m.files[8].sha256 = "short";
  ManifestFile again = m.files[9];  // a path listed twice: the later entry counts
  again.size = 999;
  again.sha256 = std::string(64, 'f');
  m.files.push_back(again);
  auto index = ManifestIndex::Load(Env::Default(), Write(ManifestToJson(m)));
  ASSERT_TRUE(index.ok()) << index.message();
  for (size_t i = 0; i < m.files.size(); ++i) {
    if (i == 9) continue;
    const ManifestFile& f = m.files[i];
    auto found = index->Find(f.path);
    ASSERT_TRUE(found) << f.path;
    EXPECT_EQ(found->path, f.path);
    EXPECT_EQ(found->size, f.size) << f.path;
    EXPECT_EQ(found->sha256, f.sha256) << f.path;
    EXPECT_EQ(found->backup, f.backup) << f.path;
    EXPECT_EQ(found->mtime, f.mtime) << f.path;
    EXPECT_EQ(found->mode, f.mode) << f.path;
    EXPECT_EQ(found->link, f.link) << f.path;
  }
  EXPECT_EQ(index->Find(m.files[9].path)->size, 999);
  EXPECT_FALSE(index->Find("data/lake/trades/not-listed.parquet"));
  EXPECT_FALSE(index->Find(""));
  EXPECT_NE(PathFingerprint("a/b"), PathFingerprint("a/c"));
  auto broken = ManifestIndex::Load(Env::Default(), Write("{"));
  EXPECT_FALSE(broken.ok());
}

}  // namespace
}  // namespace lakevault
