// The Delta log reader against every table of the corpus: the resolved snapshot (version,
// checkpoint, live files, deletion vector files, rows, missing files) must equal what the
// corpus's independent reader recorded in _expected/<table>.json.
#include "delta/delta.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <set>

#include "support/test_util.h"

namespace fs = std::filesystem;
using namespace lakevault;
namespace lt = lakevault::testing;

namespace {

struct Expected {
  std::string table;
  nlohmann::json doc;
};

std::vector<Expected> LoadExpectations() {
  std::vector<Expected> out;
  for (auto& e : fs::directory_iterator(fs::path(lt::CorpusDir()) / "_expected")) {
    Expected x;
    x.doc = nlohmann::json::parse(lt::ReadFile(e.path()));
    x.table = x.doc["table"];
    out.push_back(x);
  }
  std::sort(out.begin(), out.end(), [](auto& a, auto& b) { return a.table < b.table; });
  return out;
}

}  // namespace

TEST(Delta, EveryCorpusTableResolvesAsExpected) {
  auto expectations = LoadExpectations();
  ASSERT_GE(expectations.size(), 45u);
  for (const auto& x : expectations) {
    SCOPED_TRACE(x.table);
    std::string dir = (fs::path(lt::CorpusDir()) / x.table).string();
    auto snap = delta::LoadSnapshot(Env::Default(), dir);
    ASSERT_TRUE(snap.ok()) << snap.message();
    EXPECT_EQ(snap->version, x.doc["version"].get<int64_t>());
    EXPECT_EQ(snap->checkpoint_version, x.doc["checkpoint"].get<int64_t>());
    std::set<std::string> files, want;
    for (const auto& f : snap->files) files.insert(f.path);
    for (const auto& f : x.doc["files"]) want.insert(f.get<std::string>());
    EXPECT_EQ(files, want);
    std::set<std::string> dvs, want_dvs;
    for (const auto& f : snap->files)
      if (f.dv && !f.dv->file.empty()) dvs.insert(f.dv->file);
    for (const auto& f : x.doc["dvs"]) want_dvs.insert(f.get<std::string>());
    EXPECT_EQ(dvs, want_dvs);
    if (x.doc["rows"].is_number_integer()) {
      auto rows = snap->RowsFromStats();
      ASSERT_TRUE(rows.has_value());
      EXPECT_EQ(*rows, x.doc["rows"].get<int64_t>());
    }
    int missing = 0;
    for (const auto& rel : snap->RequiredFiles())
      if (!fs::exists(fs::path(dir) / rel)) ++missing;
    EXPECT_EQ(missing, x.doc["missing"].get<int>());
  }
}

TEST(Delta, OlderVersionsResolve) {
  // Every version of a JSON-only table, recomputed independently from its commits.
  std::string dir = (fs::path(lt::CorpusDir()) / "simple_table").string();
  auto log = delta::ListLog(dir);
  ASSERT_TRUE(log.ok());
  int64_t latest = delta::LatestVersion(*log);
  std::set<std::string> live;
  for (int64_t v = 0; v <= latest; ++v) {
    char name[32];
    std::snprintf(name, sizeof(name), "%020lld.json", static_cast<long long>(v));
    for (const auto& line : lt::Lines(lt::ReadFile(fs::path(dir) / "_delta_log" / name))) {
      auto j = nlohmann::json::parse(line);
      if (j.contains("add")) live.insert(j["add"]["path"].get<std::string>());
      if (j.contains("remove")) live.erase(j["remove"]["path"].get<std::string>());
    }
    auto snap = delta::LoadSnapshot(Env::Default(), dir, *log, v);
    ASSERT_TRUE(snap.ok()) << snap.message();
    std::set<std::string> got;
    for (const auto& f : snap->files) got.insert(f.path);
    EXPECT_EQ(got, live) << "version " << v;
  }
}

TEST(Delta, PathsAndDeletionVectors) {
  EXPECT_EQ(*delta::DecodePath("a%20b/c%25d=%C3%A9.parquet"), "a b/c%d=\xC3\xA9.parquet");
  EXPECT_FALSE(delta::DecodePath("bad%2").ok());
  EXPECT_FALSE(delta::DecodePath("bad%zz").ok());
  EXPECT_FALSE(delta::DecodePath("nul%00").ok());
  // The example from PROTOCOL.md: prefix "ab" and a Z85 UUID.
  auto f = delta::DeletionVectorFile("u", "ab^-aqEH.-t@S}K{vb[*k^");
  ASSERT_TRUE(f.ok()) << f.message();
  EXPECT_EQ(*f, "ab/deletion_vector_d2c639aa-8816-431a-aaf6-d3fe2512ff61.bin");
  EXPECT_EQ(*delta::DeletionVectorFile("i", "wi5b=000010000siXQKl0rr91000f55c8Xg0@@D72lkbi5=-{L"),
            "");
  EXPECT_EQ(*delta::DeletionVectorFile("p", "s3://bucket/dv%20x.bin"), "s3://bucket/dv x.bin");
  EXPECT_FALSE(delta::DeletionVectorFile("u", "short").ok());
  EXPECT_FALSE(delta::DeletionVectorFile("x", "whatever").ok());
}

TEST(Delta, LogFilesUpToAVersion) {
  std::string dir = (fs::path(lt::CorpusDir()) / "checkpoint-v2-table").string();
  auto log = delta::ListLog(dir);
  ASSERT_TRUE(log.ok());
  auto upto = delta::LogFilesUpTo(*log, 7);
  for (const auto& f : upto) {
    EXPECT_NE(f.kind, delta::LogFileKind::kLastCheckpoint);
    if (f.version >= 0) {
      EXPECT_LE(f.version, 7) << f.name;
    }
  }
  bool has_cp6 = false;
  for (const auto& f : upto) has_cp6 = has_cp6 || f.kind == delta::LogFileKind::kV2Checkpoint;
  EXPECT_TRUE(has_cp6);
}

TEST(Delta, MalformedActionsAreErrors) {
  EXPECT_FALSE(delta::ParseActions("{\"add\":{\"path\":\"a\"}}\n{\"add\": tru").ok());
  EXPECT_FALSE(delta::ParseActions("[1,2]").ok());
  EXPECT_FALSE(delta::ParseActions(std::string(100000, '[')).ok());
  auto ok = delta::ParseActions("\n{\"commitInfo\":{}}\n\n{\"protocol\":{}}\n");
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(ok->size(), 2u);
}

// Numbers too large for their type are unknown names, not a crash (found by delta_actions_fuzz:
// std::stoll threw on "_sidecars/999...").
TEST(Delta, OversizedNumbersInLogNamesAreUnknownFiles) {
  using delta::ClassifyLogName;
  using delta::LogFileKind;
  EXPECT_EQ(ClassifyLogName("00000000000000000007.json").kind, LogFileKind::kCommit);
  EXPECT_EQ(ClassifyLogName("00000000000000000007.json").version, 7);
  EXPECT_EQ(ClassifyLogName("99999999999999999999.json").kind, LogFileKind::kOther);
  EXPECT_EQ(ClassifyLogName("_sidecars/99999999999999999969999999999999999999999+9999.9").version,
            -1);
  EXPECT_EQ(ClassifyLogName("00000000000000000001.checkpoint.9999999999.0000000002.parquet").kind,
            LogFileKind::kOther);
  EXPECT_EQ(ClassifyLogName("00000000000000000001.00000000000000000002.compacted.json").end_version,
            2);
  EXPECT_EQ(ClassifyLogName("00000000000000000001.99999999999999999999.compacted.json").kind,
            LogFileKind::kOther);
}

// A deletion vector whose text fields are of another JSON type is a malformed log: an error
// value naming it, not an uncaught nlohmann::json type_error (found by delta_actions_fuzz).
TEST(Delta, DeletionVectorFieldsOfAnotherTypeAreAnError) {
  for (const std::string dv : {R"({"storageType":5,"pathOrInlineDv":"ab^-aqEH.-t@S}K{vb[*k^"})",
                               R"({"storageType":"u","pathOrInlineDv":[1,2]})",
                               R"({"storageType":null,"pathOrInlineDv":{"a":1}})"}) {
    lt::TempDir t;
    fs::create_directories(t.path() / "_delta_log");
    lt::WriteFile(t.path() / "part-0.parquet", "x");
    lt::WriteFile(
        t.path() / "_delta_log" / lt::CommitName(0),
        R"({"protocol":{"minReaderVersion":3,"minWriterVersion":7}})"
        "\n"
        R"({"metaData":{"id":"t","format":{"provider":"parquet"},"schemaString":"{}","partitionColumns":[]}})"
        "\n"
        R"({"add":{"path":"part-0.parquet","size":1,"modificationTime":1,"dataChange":true,"deletionVector":)" +
            dv + "}}\n");
    Result<delta::Snapshot> snap = delta::LoadSnapshot(Env::Default(), t.str());
    ASSERT_FALSE(snap.ok()) << dv;
    EXPECT_NE(snap.message().find("deletion"), std::string::npos) << snap.message();
  }
}
