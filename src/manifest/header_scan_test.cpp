#include "manifest/header_scan.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>

#include "manifest/manifest.h"

namespace lakevault {
namespace {

// Paths and link targets with what a scan for the list's end could trip on: quotes and
// backslashes (escaped in the text), brackets and braces inside strings, a string ending in a
// backslash, control characters written as \u00XX, non-ASCII.
Manifest Awkward(size_t files) {
  static const char* const kNames[] = {"plain.parquet",
                                       "q\"uote\".parquet",
                                       "back\\slash\\",
                                       "]",
                                       "[",
                                       "}{",
                                       "\\\"]\\\"",
                                       "tab\there",
                                       "nl\nx\x01y",
                                       "\xc3\xa9t\xc3\xa9",
                                       "a\\\\\"b\\",
                                       "]]]}}}\"\""};
  Manifest m;
  m.id = "backup_20261124_170000";
  m.kind = "full";
  m.created = "2026-11-24T17:00:00Z";
  m.source_root = "/srv/\"odd\" root]";
  m.lake = "data/lake";
  m.compression = "gzip";
  m.archive = "backup_20261124_170000.tar.gz";
  m.tool_version = "0.1.0";
  m.duration_seconds = 2.5;
  m.files_stored = static_cast<int64_t>(files);
  m.bytes_stored = 77;
  m.tables.push_back({"t]\"", "data/lake/t", 3, 10, 1, 2});
  m.missing = {"data/lake/t/gone \"]\\.parquet"};
  for (size_t i = 0; i < files; ++i) {
    ManifestFile f;
    f.path = "data/lake/t/" + std::to_string(i) + "/" + kNames[i % std::size(kNames)];
    f.size = static_cast<int64_t>(i * 37 % 1000);
    f.sha256 = std::string(64, 'a' + i % 6);
    f.backup = m.id;
    f.mtime = 1764000000 + static_cast<int64_t>(i);
    if (i % 4 == 3) {
      f.link = std::string("../") + kNames[(i + 5) % std::size(kNames)];
      f.sha256.clear();
      f.size = 0;
    }
    m.files.push_back(f);
  }
  return m;
}

class HeaderRead : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("lv-header-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string Write(const std::string& text) {
    std::string path = (dir_ / "backup_20261124_170000.manifest.json").string();
    std::ofstream(path, std::ios::binary | std::ios::trunc) << text;
    return path;
  }
  std::filesystem::path dir_;
};

void ExpectSameHeader(const Manifest& a, const Manifest& b) {
  EXPECT_EQ(ManifestToJson(a), ManifestToJson(b));  // every header field, and no list kept
  EXPECT_TRUE(b.files.empty());
  EXPECT_EQ(a.listed_files, b.listed_files);
  EXPECT_EQ(a.listed_bytes, b.listed_bytes);
}

TEST_F(HeaderRead, GivesTheFullReadsHeaderAndTotalsWithoutTheList) {
  // 40,000 entries is about 11 MB of text: the list crosses many of the read's 1 MiB blocks.
  for (size_t files : {0, 1, 2, 13, 40000}) {
    SCOPED_TRACE(files);
    const Manifest m = Awkward(files);
    const std::string path = Write(ManifestToJson(m));
    auto full = ReadManifestFile(Env::Default(), path, nullptr);
    ASSERT_TRUE(full.ok()) << full.message();
    auto header = ReadManifestHeader(Env::Default(), path);
    ASSERT_TRUE(header.ok()) << header.message();
    ExpectSameHeader(*full, *header);
    EXPECT_EQ(header->listed_files, static_cast<int64_t>(files));
    EXPECT_EQ(header->listed_bytes, m.TotalBytes());
    EXPECT_EQ(header->source_root, m.source_root);
    EXPECT_EQ(header->missing, m.missing);
  }
}

// The header's totals are what the catalogue reports: taken from "list", not counted. A header
// that disagrees with its list is refused by the full read (manifest_test) but, unread, passes
// here: the test proves the list was skipped.
TEST_F(HeaderRead, TakesTheTotalsFromTheHeaderWithoutReadingTheList) {
  const Manifest m = Awkward(50);
  std::string text = ManifestToJson(m);
  const std::string from = "\"files\": 50\n";
  ASSERT_NE(text.find(from), std::string::npos);
  text.replace(text.find(from), from.size(), "\"files\": 4000\n");
  const std::string path = Write(text);
  ASSERT_FALSE(ReadManifestFile(Env::Default(), path, nullptr).ok());
  auto header = ReadManifestHeader(Env::Default(), path);
  ASSERT_TRUE(header.ok()) << header.message();
  EXPECT_EQ(header->listed_files, 4000);
}

// The scan fed in pieces of any size keeps the document with its list emptied, byte for byte
// the text around the list.
TEST(ManifestHeaderScanTest, KeepsAllButTheListWhateverTheBlocks) {
  const std::string text = ManifestToJson(Awkward(60));
  nlohmann::json expected = nlohmann::json::parse(text);
  expected["files"] = nlohmann::json::array();
  const size_t open = text.find("\"files\": [") + 10;
  const size_t close = text.find("\n ],\n \"format\"") + 2;
  const std::string expected_text = text.substr(0, open) + text.substr(close);
  for (size_t piece : {1, 2, 3, 7, 64, 4096, 1 << 20}) {
    SCOPED_TRACE(piece);
    ManifestHeaderScan scan;
    for (size_t at = 0; at < text.size(); at += piece)
      ASSERT_TRUE(scan.Feed(text.data() + at, std::min(piece, text.size() - at)).ok());
    ASSERT_TRUE(scan.Finish().ok());
    EXPECT_TRUE(scan.list_skipped());
    EXPECT_EQ(scan.kept(), expected_text);
    EXPECT_EQ(nlohmann::json::parse(scan.kept()), expected);
  }
}

// Cut anywhere before its closing brace, a manifest is refused, by the scan or by the parse of
// what it kept, with the file named: never a crash, a hang or a header read from half a file.
TEST_F(HeaderRead, RefusesTheManifestCutAtAnyPoint) {
  const std::string text = ManifestToJson(Awkward(12));
  const size_t end = text.rfind('}');
  for (size_t cut = 0; cut < end + 1; ++cut) {
    const std::string path = Write(text.substr(0, cut));
    auto header = ReadManifestHeader(Env::Default(), path);
    ASSERT_FALSE(header.ok()) << "cut at " << cut;
    EXPECT_NE(header.message().find(path), std::string::npos) << header.message();
  }
  EXPECT_TRUE(ReadManifestHeader(Env::Default(), Write(text.substr(0, end + 1))).ok());
}

// Bytes garbled one at a time. Outside the list and its totals, the header read decides as the
// full read does; inside them, the entries are not checked (nor the totals against them), but
// whatever the full read accepts the header read gives back the same.
TEST_F(HeaderRead, GarbledBytesGiveAnErrorOrTheFullReadsAnswer) {
  const std::string text = ManifestToJson(Awkward(9));
  const size_t list_open = text.find("\"files\": [") + 10;
  const size_t list_close = text.find("\n ],\n \"format\"") + 2;
  const size_t totals_open = text.find("\"list\": {");
  const size_t totals_close = text.find('}', totals_open);
  const char kBytes[] = {'"', '\\', '[', ']', '{', '}', ',', 'x', '\0', '\n', '1'};
  std::mt19937 random(8);
  int refused = 0;
  for (size_t at = 0; at < text.size(); ++at) {
    std::string garbled = text;
    garbled[at] = kBytes[random() % std::size(kBytes)];
    if (garbled == text) continue;
    const std::string path = Write(garbled);
    auto full = ReadManifestFile(Env::Default(), path, nullptr);
    auto header = ReadManifestHeader(Env::Default(), path);
    const bool unchecked =
        (at >= list_open && at < list_close) || (at >= totals_open && at < totals_close);
    if (!unchecked) {
      EXPECT_EQ(header.ok(), full.ok()) << "at " << at << ": " << garbled[at];
    }
    if (full.ok()) {
      ASSERT_TRUE(header.ok()) << "at " << at << ": " << header.message();
      ExpectSameHeader(*full, *header);
    }
    if (!header.ok()) {
      refused++;
      EXPECT_NE(header.message().find(path), std::string::npos) << header.message();
    }
  }
  EXPECT_GT(refused, 100);
}

TEST_F(HeaderRead, RefusesAListWhoseBracketsDoNotMatch) {
  std::string text = ManifestToJson(Awkward(3));
  const size_t close = text.find("\n ],\n \"format\"") + 2;
  text[close] = '}';
  auto header = ReadManifestHeader(Env::Default(), Write(text));
  ASSERT_FALSE(header.ok());
  EXPECT_NE(header.message().find("the file list's brackets do not match"), std::string::npos)
      << header.message();
  auto missing = ReadManifestHeader(Env::Default(), (dir_ / "none.manifest.json").string());
  EXPECT_FALSE(missing.ok());
}

}  // namespace
}  // namespace lakevault
