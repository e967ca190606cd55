// LiveUpload against a real S3-compatible server (s3rver on 127.0.0.1): parts leave while the
// archive is still growing, the object appears only at Complete, and bytes that are not the
// published archive never become an object.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <regex>
#include <thread>

#include "core/env.h"
#include "crypto/encrypt.h"
#include "offsite/offsite.h"
#include "remote/storage.h"
#include "support/test_util.h"

namespace fs = std::filesystem;

namespace lakevault::testing {
namespace {

constexpr size_t kPart = 5 << 20;

void Append(const fs::path& path, std::string_view bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::app);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

// Parts s3rver has stored for multipart uploads still in progress (it writes "N" and "N.md5"
// under an uploads folder and removes them when the upload completes or is aborted).
int PartsInFlight(const fs::path& data) {
  static const std::regex part(R"(\d+\.md5)");
  int n = 0;
  for (const auto& e : fs::recursive_directory_iterator(data))
    n += std::regex_match(e.path().filename().string(), part);
  return n;
}

class LiveUploadTest : public ::testing::Test {
 protected:
  void SetUp() override {
    s3_ = std::make_unique<S3Server>(tmp_.path() / "s3data", "live-test");
    if (s3_->port == 0) {
      if (std::getenv("CI")) FAIL() << s3_->error;
      GTEST_SKIP() << s3_->error;
    }
    root_ = tmp_.path() / "project";
    CopyTree(fs::path(CorpusDir()) / "table-with-dv-small", root_ / "data/lake/option_legs");
    // A table whose one data file is incompressible; archived uncompressed, it spans three
    // 5 MiB parts.
    const size_t blob = 13 << 20;
    WriteFile(root_ / "data/lake/raw/blob.parquet", RandomBytes(blob, 11));
    WriteFile(root_ / "data/lake/raw/_delta_log/00000000000000000000.json",
              R"({"protocol":{"minReaderVersion":1,"minWriterVersion":2}})"
              "\n"
              R"({"metaData":{"id":"raw","format":{"provider":"parquet","options":{}},)"
              R"("schemaString":"{\"type\":\"struct\",\"fields\":[]}","partitionColumns":[],)"
              R"("configuration":{},"createdTime":0}})"
              "\n"
              R"({"add":{"path":"blob.parquet","partitionValues":{},"size":)" +
                  std::to_string(blob) +
                  R"(,"modificationTime":0,"dataChange":true,"stats":"{\"numRecords\":1}"}})"
                  "\n");
    ASSERT_EQ(RunLakevault({"key", "generate", "backup.key"}, root_.string()).exit_code, 0);
    auto b = RunLakevault({"backup", "--full", "--compress", "none", "--json"}, root_.string());
    ASSERT_EQ(b.exit_code, 0) << b.err;
    id_ = nlohmann::json::parse(b.out)["id"];
    archive_ = ReadFile(root_ / "backups" / (id_ + ".tar"));
    ASSERT_GT(archive_.size(), 2 * kPart + 1);
    // The driver reads credentials from the environment only.
    setenv("AWS_ACCESS_KEY_ID", "S3RVER", 1);
    setenv("AWS_SECRET_ACCESS_KEY", "S3RVER", 1);
    setenv("HOME", tmp_.str().c_str(), 1);
    auto remote =
        OpenStorage(RemoteSpec{"s3",
                               {{"url", "s3://live-test/v6"},
                                {"endpoint", "http://127.0.0.1:" + std::to_string(s3_->port)},
                                {"region", "us-east-1"},
                                {"path_style", "true"},
                                {"part_size", std::to_string(kPart)}}});
    ASSERT_TRUE(remote.ok()) << remote.message();
    remote_ = std::move(remote).value();
  }

  bool Exists(const std::string& name) {
    auto st = remote_->Stat(name);
    EXPECT_TRUE(st.ok()) << st.message();
    return st.ok() && st->has_value();
  }

  // Waits until at least `n` parts sit on the server for an upload not yet completed.
  void AwaitParts(int n) {
    for (int i = 0; i < 400 && PartsInFlight(tmp_.path() / "s3data") < n; ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    ASSERT_GE(PartsInFlight(tmp_.path() / "s3data"), n);
  }

  TempDir tmp_;
  std::unique_ptr<S3Server> s3_;
  fs::path root_;
  std::string id_;
  std::string archive_;
  std::unique_ptr<Storage> remote_;
};

TEST_F(LiveUploadTest, PartsLeaveWhileTheArchiveGrowsAndTheObjectAppearsAtComplete) {
  auto key = LoadKeyFile((root_ / "backup.key").string());
  ASSERT_TRUE(key.ok()) << key.message();
  for (bool encrypt : {false, true}) {
    SCOPED_TRACE(encrypt ? "encrypted" : "plain");
    const fs::path growing = tmp_.path() / (encrypt ? "growing.enc" : "growing");
    const std::string object = id_ + ".tar" + (encrypt ? ".enc" : "");
    Append(growing, std::string_view(archive_).substr(0, 2 * kPart + 4096));
    auto live = LiveUpload::Start(*remote_, growing.string(), id_ + ".tar",
                                  encrypt ? std::optional<Key>(*key) : std::nullopt);
    ASSERT_TRUE(live.ok()) << live.message();
    // Two parts are on the server while the file is still short of the archive.
    AwaitParts(2);
    EXPECT_FALSE(Exists(object));
    Append(growing, std::string_view(archive_).substr(2 * kPart + 4096));
    auto out = (*live)->Complete(Env::Default(), (root_ / "backups").string(), id_);
    ASSERT_TRUE(out.ok()) << out.message();
    EXPECT_EQ(out->encrypted, encrypt);
    EXPECT_EQ(PartsInFlight(tmp_.path() / "s3data"), 0);
    ASSERT_TRUE(Exists(object));
    ASSERT_TRUE(Exists(object + ".sha256"));
    ASSERT_TRUE(Exists(id_ + ".manifest.json"));
    const std::string fetched = (tmp_.path() / "fetched").string();
    ASSERT_TRUE(remote_->Get(object, fetched).ok());
    if (encrypt) {
      EXPECT_EQ(ReadFile(fetched).substr(0, 6), "LVENC1");
      ASSERT_TRUE(DecryptFile(fetched, fetched + ".plain", *key).ok());
      EXPECT_TRUE(ReadFile(fetched + ".plain") == archive_);
      fs::remove(fetched + ".plain");
    } else {
      EXPECT_TRUE(ReadFile(fetched) == archive_);
    }
    // The .sha256 names the object's bytes as sent.
    EXPECT_EQ(ReadFile(fetched).size(), static_cast<size_t>(out->bytes));
    fs::remove(fetched);
    // The same object is not the backup folder's scratch: nothing was left beside the backups.
    for (const auto& e : fs::directory_iterator(root_ / "backups"))
      EXPECT_EQ(e.path().filename().string().find(".offsite-"), std::string::npos) << e.path();
    for (const auto& name : {object, object + ".sha256", id_ + ".manifest.json"})
      ASSERT_TRUE(remote_->Delete(name).ok());
  }
}

TEST_F(LiveUploadTest, BytesThatAreNotThePublishedArchiveNeverBecomeAnObject) {
  std::string changed = archive_;
  changed[kPart + 17] ^= 0x01;
  const fs::path growing = tmp_.path() / "growing";
  Append(growing, std::string_view(changed).substr(0, 2 * kPart + 4096));
  auto live = LiveUpload::Start(*remote_, growing.string(), id_ + ".tar", std::nullopt);
  ASSERT_TRUE(live.ok()) << live.message();
  AwaitParts(2);
  Append(growing, std::string_view(changed).substr(2 * kPart + 4096));
  auto out = (*live)->Complete(Env::Default(), (root_ / "backups").string(), id_);
  ASSERT_FALSE(out.ok());
  EXPECT_NE(out.message().find("do not hash to its sidecar"), std::string::npos) << out.message();
  EXPECT_FALSE(Exists(id_ + ".tar"));
  EXPECT_FALSE(Exists(id_ + ".tar.sha256"));
}

TEST_F(LiveUploadTest, AnAbortedUploadLeavesNothing) {
  const fs::path growing = tmp_.path() / "growing";
  Append(growing, std::string_view(archive_).substr(0, 2 * kPart + 4096));
  {
    auto live = LiveUpload::Start(*remote_, growing.string(), id_ + ".tar", std::nullopt);
    ASSERT_TRUE(live.ok()) << live.message();
    AwaitParts(2);
    (*live)->Abort();
  }
  // s3rver answers AbortMultipartUpload with 405, so its parts stay in its folder (S3 and MinIO
  // drop them; remote_test checks the request is sent). What matters: no object at all.
  EXPECT_FALSE(Exists(id_ + ".tar"));
  auto listed = remote_->List("");
  ASSERT_TRUE(listed.ok()) << listed.message();
  EXPECT_TRUE(listed->empty());
}

}  // namespace
}  // namespace lakevault::testing
