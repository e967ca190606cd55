// A backup's own check of the archive it wrote: the manifest member is compared with the text
// the backup holds as it is read, and kept only when it differs.
#include <gtest/gtest.h>

#include "archive/archive.h"
#include "crypto/sha256.h"
#include "manifest/manifest.h"
#include "support/test_util.h"
#include "verify/verify.h"

namespace lakevault::testing {
namespace {

class VerifyOwnArchiveTest : public ::testing::Test {
 protected:
  void SetUp() override {
    manifest_.id = "backup_20260101_000000";
    manifest_.archive = manifest_.id + ".tar.gz";
    ManifestFile f;
    f.path = "data/lake/t/a.parquet";
    f.size = 5;
    f.sha256 = Sha256Hex("hello");
    f.backup = manifest_.id;
    manifest_.files.push_back(f);
    json_ = ManifestToJson(manifest_);
    path_ = (tmp_.path() / manifest_.archive).string();
    auto writer = ArchiveWriter::Create(Env::Default(), path_, Compression::kGzip, 0);
    ASSERT_TRUE(writer.ok()) << writer.message();
    ArchiveEntry file;
    file.path = f.path;
    file.size = 5;
    ASSERT_TRUE((*writer)->AddBytes(file, "hello").ok());
    ArchiveEntry member;
    member.path = kManifestMemberName;
    member.size = static_cast<int64_t>(json_.size());
    ASSERT_TRUE((*writer)->AddBytes(member, json_).ok());
    ASSERT_TRUE((*writer)->Finish().ok());
  }

  VerifyReport Verify(const std::string& expected) {
    return VerifyArchive(Env::Default(), manifest_.id, path_, std::nullopt, expected,
                         {.keep_log_members = false, .source_manifest = &manifest_});
  }

  TempDir tmp_;
  Manifest manifest_;
  std::string json_;
  std::string path_;
};

TEST_F(VerifyOwnArchiveTest, TheVeryManifestTextPassesWithoutAParse) {
  VerifyReport report = Verify(json_);
  EXPECT_TRUE(report.ok) << (report.problems.empty() ? "" : report.problems[0]);
  EXPECT_FALSE(report.manifest);  // not parsed again
}

TEST_F(VerifyOwnArchiveTest, AnotherManifestTextIsReportedAndTheArchivesOwnIsChecked) {
  // Differing in the middle, longer, and shorter (the member a prefix of it): each time the
  // member is parsed whole, as it is in the archive.
  std::string changed = json_;
  changed[changed.size() / 2] ^= 1;
  for (const std::string& expected : {changed, json_ + " ", json_.substr(0, json_.size() - 1)}) {
    VerifyReport report = Verify(expected);
    EXPECT_FALSE(report.ok);
    ASSERT_FALSE(report.problems.empty());
    EXPECT_NE(report.problems[0].find("the manifest sidecar differs"), std::string::npos)
        << report.problems[0];
    EXPECT_EQ(report.problems.size(), 1u) << report.problems.back();
    ASSERT_TRUE(report.manifest);
    EXPECT_EQ(report.manifest->id, manifest_.id);
    ASSERT_EQ(report.manifest->files.size(), 1u);
    EXPECT_EQ(report.manifest->files[0].sha256, manifest_.files[0].sha256);
  }
}

}  // namespace
}  // namespace lakevault::testing
