// ArchiveReader reads what ArchiveWriter writes (its gzip members inflated on every core) and
// any other tar: tar -czf output, zstd, plain. Damage anywhere in the member framing is an error,
// never a silent short read.
#include "archive/archive.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <map>
#include <random>

#include "support/test_util.h"

namespace lakevault {
namespace {

using testing::ReadFile;
using testing::TempDir;
using testing::WriteFile;

std::map<std::string, std::string> SampleFiles() {
  std::mt19937_64 rng(11);
  std::map<std::string, std::string> files;
  for (int i = 0; i < 6; ++i) {
    std::string random(900 * 1024 + i * 7, '\0');
    for (auto& c : random) c = static_cast<char>(rng());
    files["t/part-" + std::to_string(i) + ".parquet"] = random;
    std::string log;
    for (int k = 0; k < 20000; ++k)
      log += "{\"add\":{\"path\":\"part-" + std::to_string(k) + "\"}}\n";
    files["t/_delta_log/" + std::to_string(i) + ".json"] = log;
  }
  files["empty"] = "";
  return files;
}

void WriteArchive(const std::string& path, Compression c,
                  const std::map<std::string, std::string>& files) {
  auto writer = ArchiveWriter::Create(Env::Default(), path, c).value();
  for (const auto& [name, content] : files) {
    ArchiveEntry e;
    e.path = name;
    ASSERT_TRUE(writer->AddBytes(e, content).ok());
  }
  ASSERT_TRUE(writer->Finish().ok());
}

// Every file's content, and the whole-file hash, read back through ArchiveReader.
Result<std::map<std::string, std::string>> ReadArchive(const std::string& path,
                                                       std::string* hash_hex = nullptr) {
  Sha256 hash;
  LV_ASSIGN_OR_RETURN(auto reader, ArchiveReader::Open(Env::Default(), path, &hash));
  std::map<std::string, std::string> files;
  while (true) {
    ArchiveEntry e;
    LV_ASSIGN_OR_RETURN(bool more, reader->Next(&e));
    if (!more) break;
    if (e.type != EntryType::kFile) continue;
    LV_ASSIGN_OR_RETURN(files[e.path], reader->ReadAll(64 << 20));
  }
  LV_RETURN_IF_ERROR(reader->Drain());
  if (hash_hex) *hash_hex = hash.HexDigest();
  return files;
}

TEST(ArchiveReaderTest, ReadsItsOwnArchivesInEveryCompression) {
  TempDir tmp;
  auto files = SampleFiles();
  for (Compression c : {Compression::kGzip, Compression::kZstd, Compression::kNone}) {
    std::string path = tmp.str() + "/a" + ArchiveExtension(c);
    WriteArchive(path, c, files);
    std::string hash;
    auto read = ReadArchive(path, &hash);
    ASSERT_TRUE(read.ok()) << read.message();
    EXPECT_EQ(*read, files);
    EXPECT_EQ(hash, Sha256Hex(ReadFile(path)));
  }
}

// With no level configured, Parquet files are deflated at kColumnarGzipLevel and everything else
// at kDefaultGzipLevel; a configured level applies to every file.
TEST(ArchiveWriterTest, ParquetFilesGetTheColumnarLevelUnlessALevelIsSet) {
  EXPECT_EQ(GzipLevelFor("data/lake/t/date=2026-01-05/part-0.snappy.parquet"), kColumnarGzipLevel);
  EXPECT_EQ(GzipLevelFor("data/lake/t/_delta_log/00000000000000000000.json"), kDefaultGzipLevel);
  EXPECT_EQ(GzipLevelFor("config/parquet"), kDefaultGzipLevel);
  ASSERT_NE(kColumnarGzipLevel, kDefaultGzipLevel);

  TempDir tmp;
  std::string text;
  for (int k = 0; text.size() < (2u << 20); ++k)
    text += "2026-01-05T13:00:00Z,U0451760,AAPL," + std::to_string(k * 7919 % 100003) + "\n";
  int archives = 0;
  auto size_of = [&](const std::string& name, int level) {
    std::string path = tmp.str() + "/" + std::to_string(archives++) + ".tar.gz";
    auto writer = ArchiveWriter::Create(Env::Default(), path, Compression::kGzip, level).value();
    ArchiveEntry e;
    e.path = name;
    EXPECT_TRUE(writer->AddBytes(e, text).ok());
    EXPECT_TRUE(writer->Finish().ok());
    auto read = ReadArchive(path);
    EXPECT_TRUE(read.ok() && read->at(name) == text);
    return writer->bytes_written();
  };
  // Names of one length, so the tar headers differ only in their bytes.
  const std::string parquet = "t/part-0.parquet", other = "t/part-0.csvtext";
  EXPECT_EQ(size_of(parquet, 0), size_of(parquet, kColumnarGzipLevel));
  EXPECT_EQ(size_of(other, 0), size_of(other, kDefaultGzipLevel));
  EXPECT_GT(std::abs(size_of(parquet, 0) - size_of(other, 0)), 1000);
  EXPECT_LT(std::abs(size_of(parquet, 6) - size_of(other, 6)), 16);
}

TEST(ArchiveReaderTest, ReadsForeignTarGz) {
  TempDir tmp;
  auto files = SampleFiles();
  for (const auto& [name, content] : files) WriteFile(tmp.path() / "src" / name, content);
  std::string archive = tmp.str() + "/foreign.tar.gz";
  ASSERT_EQ(std::system(("tar -czf " + archive + " -C " + tmp.str() + "/src t empty").c_str()), 0);
  std::string hash;
  auto read = ReadArchive(archive, &hash);
  ASSERT_TRUE(read.ok()) << read.message();
  EXPECT_EQ(*read, files);
  EXPECT_EQ(hash, Sha256Hex(ReadFile(archive)));
}

TEST(ArchiveReaderTest, DamagedMemberFramingIsAnError) {
  TempDir tmp;
  std::string path = tmp.str() + "/a.tar.gz";
  WriteArchive(path, Compression::kGzip, SampleFiles());
  const std::string good = ReadFile(path);
  uint32_t first = static_cast<unsigned char>(good[16]) |
                   static_cast<unsigned char>(good[17]) << 8 |
                   static_cast<unsigned char>(good[18]) << 16 |
                   static_cast<uint32_t>(static_cast<unsigned char>(good[19])) << 24;
  ASSERT_LT(first, good.size());
  struct Case {
    const char* what;
    std::string bytes;
  };
  std::vector<Case> cases;
  std::string size_flip = good;
  size_flip[first + 17] ^= 0x10;  // the second member's size
  cases.push_back({"second member's size", size_flip});
  std::string data_flip = good;
  data_flip[first / 2] ^= 0x01;  // inside the first member's deflate data
  cases.push_back({"first member's data", data_flip});
  cases.push_back({"truncated mid-member", good.substr(0, good.size() - 1000)});
  cases.push_back({"garbage appended", good + "garbage after the last member"});
  for (const auto& c : cases) {
    WriteFile(path, c.bytes);
    auto read = ReadArchive(path);
    EXPECT_FALSE(read.ok()) << c.what;
  }
}

TEST(ArchiveReaderTest, StoppingEarlyDoesNotHang) {
  TempDir tmp;
  std::string path = tmp.str() + "/a.tar.gz";
  WriteArchive(path, Compression::kGzip, SampleFiles());
  for (int i = 0; i < 20; ++i) {
    auto reader = ArchiveReader::Open(Env::Default(), path).value();
    ArchiveEntry e;
    ASSERT_TRUE(reader->Next(&e).value());
  }  // destroyed while the read-ahead thread still has the rest of the file to read
}

}  // namespace
}  // namespace lakevault

namespace lakevault {
namespace {

// Counts the syncs of the files it makes.
class SyncCountingEnv final : public ForwardingEnv {
 public:
  Result<std::unique_ptr<WritableFile>> NewWritableFile(const std::string& path,
                                                        mode_t mode) override {
    LV_ASSIGN_OR_RETURN(auto file, ForwardingEnv::NewWritableFile(path, mode));
    return std::unique_ptr<WritableFile>(new Counted(std::move(file), syncs));
  }
  int syncs = 0;

 private:
  class Counted final : public WritableFile {
   public:
    Counted(std::unique_ptr<WritableFile> base, int& syncs)
        : base_(std::move(base)), syncs_(syncs) {}
    Status Append(const void* data, size_t size) override { return base_->Append(data, size); }
    Status Sync() override {
      ++syncs_;
      return base_->Sync();
    }
    Status Close() override { return base_->Close(); }
    const std::string& path() const override { return base_->path(); }

   private:
    std::unique_ptr<WritableFile> base_;
    int& syncs_;
  };
};

// The backup's check takes the archive as whole when Finish says every byte is written, and
// runs its tail during the fsync: by then the file must hold all of it.
TEST(ArchiveTest, FinishSaysTheArchiveIsWrittenBeforeItsFsync) {
  for (Compression c : {Compression::kGzip, Compression::kZstd, Compression::kNone}) {
    TempDir dir;
    const std::string path = dir.str() + "/a.tar";
    SyncCountingEnv env;
    auto writer = ArchiveWriter::Create(env, path, c).value();
    for (const auto& [name, content] : SampleFiles()) {
      ArchiveEntry e;
      e.path = name;
      e.size = static_cast<int64_t>(content.size());
      e.mode = 0644;
      ASSERT_TRUE(writer->AddBytes(e, content).ok());
    }
    int calls = 0;
    std::string seen;
    int syncs_then = -1;
    ASSERT_TRUE(writer
                    ->Finish([&] {
                      ++calls;
                      syncs_then = env.syncs;
                      seen = ReadFile(path);
                    })
                    .ok());
    EXPECT_EQ(calls, 1);
    EXPECT_EQ(syncs_then, 0);
    EXPECT_EQ(env.syncs, 1);
    const std::string final_bytes = ReadFile(path);
    EXPECT_EQ(seen.size(), final_bytes.size());
    EXPECT_TRUE(seen == final_bytes);
    EXPECT_EQ(Sha256Hex(seen), writer->archive_sha256());
  }
}

}  // namespace
}  // namespace lakevault
