// Materialising merges an archive's members with the backup's list as both are read; members
// out of the list's order are found by a second read, and nothing listed is left out.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <mutex>

#include "backup/consolidate.h"
#include "crypto/sha256.h"
#include "manifest/catalog.h"
#include "manifest/manifest.h"
#include "materialize/materialize.h"
#include "support/test_util.h"

namespace lakevault::testing {
namespace {

namespace fs = std::filesystem;

constexpr const char* kId = "backup_20260101_000000";

struct Member {
  std::string path;
  std::string content;
};

// A catalogued full backup in `dir`: `members` in the archive in that order, `listed` in the
// manifest (and its sidecar) in that order.
void MakeBackup(const fs::path& dir, const std::vector<Member>& members,
                const std::vector<Member>& listed) {
  Manifest m;
  m.id = kId;
  m.archive = std::string(kId) + ".tar.gz";
  m.created = "2026-01-01T00:00:00Z";
  for (const auto& l : listed) {
    ManifestFile f;
    f.path = l.path;
    f.size = static_cast<int64_t>(l.content.size());
    f.sha256 = Sha256Hex(l.content);
    f.backup = kId;
    f.mtime = 1767225600;
    m.files.push_back(f);
  }
  std::vector<std::pair<std::string, std::string>> parts;
  for (const auto& member : members) parts.push_back({member.path, member.content});
  WriteBackupForTest(dir, m, parts);
}

Result<MaterializeOutcome> Materialize(const fs::path& dir, const fs::path& dest,
                                       MaterializeOptions options = {}, Env& env = Env::Default()) {
  auto catalog = Catalog::Load(dir.string());
  if (!catalog.ok()) return catalog.error();
  options.verify_archives = true;
  return MaterializeBackup(env, *catalog, kId, dest.string(), options);
}

// The real file system, with a record of which files were fsynced one by one and which file
// systems were synced whole.
class SyncRecordingEnv final : public ForwardingEnv {
 public:
  Status SyncFile(const std::string& path) override {
    std::lock_guard<std::mutex> lock(mu_);
    synced_files.push_back(fs::path(path).filename().string());
    return ForwardingEnv::SyncFile(path);
  }
  Status SyncFileSystem(const std::string& path) override {
    std::lock_guard<std::mutex> lock(mu_);
    synced_file_systems.push_back(path);
    return ForwardingEnv::SyncFileSystem(path);
  }

  std::vector<std::string> synced_files, synced_file_systems;

 private:
  std::mutex mu_;
};

std::vector<Member> Files(int n) {
  std::vector<Member> files;
  for (int i = 0; i < n; ++i)
    files.push_back({"data/lake/t/f" + std::to_string(i), "bytes " + std::to_string(i * 31)});
  return files;
}

TEST(MaterializeOrder, MembersInAndOutOfTheListsOrderAreAllWritten) {
  TempDir backups;
  std::vector<Member> listed = Files(600);  // several batches of the list's reader
  std::vector<Member> shuffled = listed;
  std::swap(shuffled[3], shuffled[500]);
  std::reverse(shuffled.begin() + 100, shuffled.begin() + 300);
  for (const auto& order : {listed, shuffled}) {
    MakeBackup(backups.path(), order, listed);
    TempDir out;
    auto m = Materialize(backups.path(), out.path());
    ASSERT_TRUE(m.ok()) << m.message();
    EXPECT_EQ(m->files, 600);
    for (const auto& f : listed) EXPECT_EQ(ReadFile(out.path() / f.path), f.content) << f.path;
  }
}

// An incremental written in shares of a big table whose parent was written in one piece (or the
// other way round) lists the parent's members in another order than its archive holds them:
// sorted runs interleaved. Past the bound of a map, each further read merges again, meeting a
// run at a time: every file is written once, exactly, with a bit held per entry.
TEST(MaterializeOrder, RunsOutOfTheArchivesOrderAreTakenByAReadEachWithoutAMap) {
  TempDir backups;
  std::vector<Member> members = Files(600);
  std::vector<Member> listed;  // three shares: i % 3 == 0, then 1, then 2
  for (int share = 0; share < 3; ++share)
    for (size_t i = share; i < members.size(); i += 3) listed.push_back(members[i]);
  MakeBackup(backups.path(), members, listed);
  for (size_t bound : {size_t{0}, size_t{1} << 14}) {
    SCOPED_TRACE("map bound " + std::to_string(bound));
    TempDir out;
    MaterializeOptions options;
    options.max_unordered_entries = bound;
    auto m = Materialize(backups.path(), out.path(), options);
    ASSERT_TRUE(m.ok()) << m.message();
    EXPECT_EQ(m->files, 600);
    // The first read meets the first share; the other two take a merge each, or one map.
    EXPECT_EQ(m->archive_rereads, bound == 0 ? 2 : 1);
    for (const auto& f : members) EXPECT_EQ(ReadFile(out.path() / f.path), f.content) << f.path;
  }
  // Any order at all, a member missing: found by merges, then said.
  std::vector<Member> shuffled = members;
  std::reverse(shuffled.begin() + 100, shuffled.begin() + 300);
  std::swap(shuffled[3], shuffled[500]);
  shuffled.erase(shuffled.begin() + 7);  // f7
  MakeBackup(backups.path(), shuffled, listed);
  TempDir out;
  MaterializeOptions no_map;
  no_map.max_unordered_entries = 0;
  auto missing = Materialize(backups.path(), out.path(), no_map);
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.message().find("data/lake/t/f7 is missing from the archive"), std::string::npos)
      << missing.message();
  shuffled.insert(shuffled.begin(), members[7]);
  MakeBackup(backups.path(), shuffled, listed);
  TempDir out2;
  auto all = Materialize(backups.path(), out2.path(), no_map);
  ASSERT_TRUE(all.ok()) << all.message();
  EXPECT_EQ(all->files, 600);
  for (const auto& f : members) EXPECT_EQ(ReadFile(out2.path() / f.path), f.content) << f.path;
}

TEST(MaterializeOrder, OnlyTheIncludedFilesAreWrittenAndAMissingOneIsAnError) {
  TempDir backups;
  std::vector<Member> listed = Files(50);
  listed.push_back({"config/production.yaml", "mode: live\n"});
  MakeBackup(backups.path(), listed, listed);
  TempDir out;
  MaterializeOptions only_config;
  only_config.include = [](const std::string& p) { return p.rfind("config/", 0) == 0; };
  auto m = Materialize(backups.path(), out.path(), only_config);
  ASSERT_TRUE(m.ok()) << m.message();
  EXPECT_EQ(m->files, 1);
  EXPECT_TRUE(fs::exists(out.path() / "config/production.yaml"));
  EXPECT_FALSE(fs::exists(out.path() / "data"));

  std::vector<Member> members = listed;
  members.erase(members.begin() + 20);
  MakeBackup(backups.path(), members, listed);
  TempDir out2;
  auto missing = Materialize(backups.path(), out2.path());
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.message().find("data/lake/t/f20 is missing from the archive"),
            std::string::npos)
      << missing.message();
}

TEST(MaterializeOrder, ADamagedMemberOutOfOrderIsRefused) {
  TempDir backups;
  std::vector<Member> listed = Files(20);
  std::vector<Member> members = listed;
  std::swap(members[2], members[15]);
  members[2].content[0] ^= 1;  // f15, met out of order
  MakeBackup(backups.path(), members, listed);
  TempDir out;
  auto m = Materialize(backups.path(), out.path());
  ASSERT_FALSE(m.ok());
  EXPECT_NE(m.message().find("f15: content does not match"), std::string::npos) << m.message();
}

TEST(MaterializeOrder, LargeFilesAreFsyncedAloneAndTheRestByOneSyncOfTheFileSystem) {
  TempDir backups;
  std::vector<Member> listed = Files(300);
  listed.push_back({"data/lake/t/big.parquet", std::string(300 << 10, 'b')});
  MakeBackup(backups.path(), listed, listed);
  TempDir out;
  SyncRecordingEnv env;
  auto m = Materialize(backups.path(), out.path() / "stage", {}, env);
  ASSERT_TRUE(m.ok()) << m.message();
  EXPECT_EQ(m->files, 301);
  EXPECT_EQ(env.synced_files, std::vector<std::string>{"big.parquet"});
  EXPECT_EQ(env.synced_file_systems, std::vector<std::string>{(out.path() / "stage").string()});
}

TEST(MaterializeOrder, AFailedSyncOfTheFileSystemFailsTheMaterialisation) {
  TempDir backups;
  std::vector<Member> listed = Files(30);
  MakeBackup(backups.path(), listed, listed);
  TempDir out;
  // The small files are not fsynced one by one, so the first fsync is the file system's.
  auto env = NewFaultInjectingEnv(Env::Default(), *FaultSpec::Parse("fsync:1"));
  auto m = Materialize(backups.path(), out.path(), {}, *env);
  ASSERT_FALSE(m.ok());
  EXPECT_NE(m.message().find("syncfs"), std::string::npos) << m.message();
}

// Consolidating reads the chain as materialising does, and writes the new full's list in the
// order its archive holds the members: out of order in the source, one merge in the result.
TEST(MaterializeOrder, AConsolidatedFullHoldsItsMembersInItsListsOrder) {
  TempDir backups;
  std::vector<Member> members = Files(600);
  std::vector<Member> listed;  // three shares, as in the test above
  for (int share = 0; share < 3; ++share)
    for (size_t i = share; i < members.size(); i += 3) listed.push_back(members[i]);
  MakeBackup(backups.path(), members, listed);
  auto made = RunConsolidate(Env::Default(), backups.str(), kId, Compression::kGzip,
                             ParseTime("2026-01-02T00:00:00Z").value());
  ASSERT_TRUE(made.ok()) << made.message();
  EXPECT_EQ(made->manifest.listed_files, 600);
  const std::string full = made->manifest.id;
  ASSERT_NE(full, kId);

  auto catalog = Catalog::Load(backups.str());
  ASSERT_TRUE(catalog.ok());
  auto manifest = LoadManifestFiles(*catalog, *catalog->Find(full).value());
  ASSERT_TRUE(manifest.ok()) << manifest.message();
  // A synthetic full stores every file (the source's figures are not carried over).
  int64_t bytes = 0;
  for (const auto& m : members) bytes += static_cast<int64_t>(m.content.size());
  EXPECT_EQ(manifest->files_stored, 600);
  EXPECT_EQ(manifest->bytes_stored, bytes);
  std::vector<std::string> list_order;
  for (const auto& f : manifest->files) {
    EXPECT_EQ(f.backup, full);
    list_order.push_back(f.path);
  }
  std::vector<std::string> archive_order;
  for (const auto& line : Lines(RunShell("tar -tzf " + made->archive_path).out))
    if (line.back() != '/' && line != kManifestMemberName) archive_order.push_back(line);
  EXPECT_EQ(archive_order, list_order);
  EXPECT_EQ(archive_order.size(), 600u);

  TempDir out;
  MaterializeOptions options;
  options.verify_archives = true;
  auto m = MaterializeBackup(Env::Default(), *catalog, full, out.str(), options);
  ASSERT_TRUE(m.ok()) << m.message();
  EXPECT_EQ(m->files, 600);
  EXPECT_EQ(m->archive_rereads, 0);
  for (const auto& f : members) EXPECT_EQ(ReadFile(out.path() / f.path), f.content) << f.path;
}

// A damaged member met out of order fails the consolidation and leaves nothing behind.
TEST(MaterializeOrder, ConsolidatingADamagedChainWritesNothing) {
  TempDir backups;
  std::vector<Member> listed = Files(20);
  std::vector<Member> members = listed;
  std::swap(members[2], members[15]);
  members[2].content[0] ^= 1;  // f15
  MakeBackup(backups.path(), members, listed);
  auto before = FolderState(backups.path());
  auto made = RunConsolidate(Env::Default(), backups.str(), kId, Compression::kGzip,
                             ParseTime("2026-01-02T00:00:00Z").value());
  ASSERT_FALSE(made.ok());
  EXPECT_NE(made.message().find("f15: content does not match"), std::string::npos)
      << made.message();
  auto after = FolderState(backups.path());
  after.erase(".lakevault.lock");
  EXPECT_EQ(after, before);
}

}  // namespace
}  // namespace lakevault::testing
