// The check a backup (and a consolidation) makes of its new archive while writing it: the file is
// read back as it grows, so an archive damaged between write() and the file system is refused
// before it is published, and nothing of the attempt is left.
#include <gtest/gtest.h>

#include <filesystem>
#include <thread>

#include "backup/backup.h"
#include "backup/consolidate.h"
#include "core/time.h"
#include "manifest/catalog.h"
#include "support/test_util.h"
#include "verify/verify.h"

namespace fs = std::filesystem;

namespace lakevault::testing {
namespace {

// Writes what it is given except one byte, at `offset` of the file, which reaches the file with
// its bits inverted: what was hashed for the sidecar is intact, the file is not.
class BitFlipFile final : public WritableFile {
 public:
  BitFlipFile(std::unique_ptr<WritableFile> base, int64_t offset)
      : base_(std::move(base)), offset_(offset) {}
  Status Append(const void* data, size_t size) override {
    std::string piece(static_cast<const char*>(data), size);
    if (offset_ >= at_ && offset_ < at_ + static_cast<int64_t>(size)) {
      piece[static_cast<size_t>(offset_ - at_)] ^= 0xff;
      flipped_ = true;
    }
    at_ += static_cast<int64_t>(size);
    return base_->Append(piece.data(), piece.size());
  }
  Status Sync() override { return base_->Sync(); }
  Status Close() override { return base_->Close(); }
  const std::string& path() const override { return base_->path(); }
  bool flipped() const { return flipped_; }

 private:
  std::unique_ptr<WritableFile> base_;
  int64_t offset_;
  int64_t at_ = 0;
  bool flipped_ = false;
};

// Damages every archive being written (a temporary ".backup_*.tar.gz.tmp") at `offset`.
class BitFlipEnv final : public ForwardingEnv {
 public:
  explicit BitFlipEnv(int64_t offset) : offset_(offset) {}
  Result<std::unique_ptr<WritableFile>> NewWritableFile(const std::string& path,
                                                        mode_t mode) override {
    auto file = ForwardingEnv::NewWritableFile(path, mode);
    const std::string name = fs::path(path).filename().string();
    if (!file.ok() || name.rfind(".backup_", 0) != 0 || !name.ends_with(".tar.gz.tmp")) return file;
    archives_++;
    return std::unique_ptr<WritableFile>(
        std::make_unique<BitFlipFile>(std::move(file).value(), offset_));
  }
  int archives() const { return archives_; }

 private:
  int64_t offset_;
  int archives_ = 0;
};

class BackupCheckTest : public ::testing::Test {
 protected:
  void SetUp() override {
    DeltaWriter table(tmp_.path() / "data/lake/t");
    for (int i = 0; i < 4; ++i) table.Append();
    // Incompressible, so most of the archive is this file's deflate blocks, each behind a CRC-32.
    WriteFile(tmp_.path() / "big.bin", RandomBytes(3 << 20, 42));
    config_.root = tmp_.str();
    config_.lake = "data/lake";
    config_.files = {"big.bin"};
  }
  BackupOptions Full(const std::string& now) {
    BackupOptions options;
    options.kind = BackupKind::kFull;
    options.backup_dir = backups_.string();
    options.now = *ParseTime(now);
    return options;
  }
  std::map<std::string, std::string> Backups() {
    auto state = FolderState(backups_);
    state.erase(".lakevault.lock");
    return state;
  }

  TempDir tmp_;
  fs::path backups_ = tmp_.path() / "backups";
  Config config_;
};

TEST_F(BackupCheckTest, AnArchiveDamagedOnItsWayToTheFileIsNeitherPublishedNorLeft) {
  auto good = RunBackup(config_, Full("2026-12-01T00:00:00Z"), Env::Default());
  ASSERT_TRUE(good.ok()) << good.message();
  const int64_t size = good->archive_bytes;
  ASSERT_GT(size, 3 << 20);
  const auto before = Backups();

  int second = 1;
  for (int64_t offset : {size / 4, size / 2, size * 3 / 4}) {
    SCOPED_TRACE("byte " + std::to_string(offset) + " of " + std::to_string(size));
    BitFlipEnv env(offset);
    auto damaged =
        RunBackup(config_, Full("2026-12-01T00:00:0" + std::to_string(second++) + "Z"), env);
    EXPECT_EQ(env.archives(), 1);
    ASSERT_FALSE(damaged.ok()) << "a damaged archive was published";
    EXPECT_NE(damaged.message().find("the new archive failed verification"), std::string::npos)
        << damaged.message();
    EXPECT_EQ(Backups(), before);
  }

  // The same with no damage goes through and verifies: the check does not refuse sound archives.
  BitFlipEnv sound(size * 10);
  auto again = RunBackup(config_, Full("2026-12-01T00:00:09Z"), sound);
  ASSERT_TRUE(again.ok()) << again.message();
  auto catalog = Catalog::Load(backups_.string());
  ASSERT_TRUE(catalog.ok()) << catalog.message();
  EXPECT_TRUE(
      VerifyBackup(Env::Default(), *catalog, *catalog->Find(again->manifest.id).value()).ok);
}

TEST_F(BackupCheckTest, AConsolidationDamagedOnItsWayToTheFileIsNeitherPublishedNorLeft) {
  auto full = RunBackup(config_, Full("2026-12-01T00:00:00Z"), Env::Default());
  ASSERT_TRUE(full.ok()) << full.message();
  WriteFile(tmp_.path() / "big.bin", RandomBytes(3 << 20, 43));
  BackupOptions options = Full("2026-12-02T00:00:00Z");
  options.kind = BackupKind::kIncremental;
  auto incremental = RunBackup(config_, options, Env::Default());
  ASSERT_TRUE(incremental.ok()) << incremental.message();
  const auto before = Backups();

  BitFlipEnv env(full->archive_bytes / 2);
  auto made = RunConsolidate(env, backups_.string(), incremental->manifest.id, Compression::kGzip,
                             *ParseTime("2026-12-03T00:00:00Z"));
  EXPECT_EQ(env.archives(), 1);
  ASSERT_FALSE(made.ok()) << "a damaged consolidated full was published";
  EXPECT_NE(made.message().find("the new archive failed verification"), std::string::npos)
      << made.message();
  EXPECT_EQ(Backups(), before);
}

// A reader of a file still being appended to waits at its end for more, sees every byte once the
// writer is done, and is cut off when the writer fails.
TEST(GrowingFilesEnv, AReaderWaitsAtTheEndUntilTheWriterIsDone) {
  TempDir dir;
  const std::string path = (dir.path() / "growing").string();
  auto out = Env::Default().NewWritableFile(path, 0600).value();
  ASSERT_TRUE(out->Append("first ", 6).ok());
  GrowingFilesEnv env(Env::Default(), {path});
  auto in = env.NewSequentialFile(path).value();
  std::string got;
  std::thread reader([&] {
    char buffer[4];
    for (;;) {
      auto n = in->Read(buffer, sizeof buffer);
      ASSERT_TRUE(n.ok()) << n.message();
      if (*n == 0) break;
      got.append(buffer, *n);
    }
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  ASSERT_TRUE(out->Append("second", 6).ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  ASSERT_TRUE(out->Append(" third", 6).ok());
  ASSERT_TRUE(out->Close().ok());
  env.Complete();
  reader.join();
  EXPECT_EQ(got, "first second third");

  // Other files are read as they are: at their end a read gives 0 at once.
  WriteFile(dir.path() / "still", "x");
  auto other = env.NewSequentialFile((dir.path() / "still").string()).value();
  char c[2];
  EXPECT_EQ(other->Read(c, 2).value(), 1u);
  EXPECT_EQ(other->Read(c, 2).value(), 0u);

  GrowingFilesEnv failed(Env::Default(), {path});
  auto cut = failed.NewSequentialFile(path).value();
  std::string all(64, '\0');
  EXPECT_EQ(cut->Read(all.data(), all.size()).value(), 18u);
  std::thread abort([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    failed.Abort();
  });
  auto waited = cut->Read(all.data(), all.size());
  abort.join();
  EXPECT_FALSE(waited.ok());
}

}  // namespace
}  // namespace lakevault::testing
