// A backup's own check of the archive it wrote: the manifest member is compared with the text
// the backup holds as it is read, and kept only when it differs.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <functional>

#include "archive/archive.h"
#include "crypto/sha256.h"
#include "delta/delta.h"
#include "manifest/catalog.h"
#include "manifest/list_index.h"
#include "manifest/manifest.h"
#include "support/test_util.h"
#include "verify/verify.h"

namespace lakevault::testing {
namespace {

// The list entries of `members` (path, content), each held by backup `id` itself.
std::vector<ManifestFile> OwnFiles(const std::vector<std::pair<std::string, std::string>>& members,
                                   const std::string& id) {
  std::vector<ManifestFile> files;
  for (const auto& [path, content] : members) {
    ManifestFile f;
    f.path = path;
    f.size = static_cast<int64_t>(content.size());
    f.sha256 = Sha256Hex(content);
    f.backup = id;
    files.push_back(f);
  }
  return files;
}

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
    const std::string expected_path = (tmp_.path() / "expected.json").string();
    WriteFile(expected_path, expected);
    return VerifyArchive(Env::Default(), manifest_.id, path_, std::nullopt, expected_path,
                         {.keep_log_members = false});
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

// An archive of the given members, then the manifest of `listed` as its last member, and that
// manifest as a file beside it: what `verify` reads with a sidecar.
class VerifyListTest : public ::testing::Test {
 protected:
  struct Member {
    std::string path;
    std::string content;
    std::string link;  // non-empty: a symlink
  };
  static constexpr const char* kId = "backup_20260101_000000";

  static ManifestFile Listed(const std::string& path, const std::string& content,
                             const std::string& link = "") {
    ManifestFile f;
    f.path = path;
    f.size = link.empty() ? static_cast<int64_t>(content.size()) : 0;
    f.sha256 = link.empty() ? Sha256Hex(content) : "";
    f.link = link;
    f.backup = kId;
    return f;
  }

  VerifyReport Verify(const std::vector<Member>& members, std::vector<ManifestFile> listed) {
    Manifest m;
    m.id = kId;
    m.archive = m.id + ".tar.gz";
    m.files = std::move(listed);
    const std::string json = ManifestToJson(m);
    const std::string archive = (tmp_.path() / m.archive).string();
    std::filesystem::remove(archive);
    auto writer = ArchiveWriter::Create(Env::Default(), archive, Compression::kGzip, 0);
    EXPECT_TRUE(writer.ok()) << writer.message();
    for (const auto& member : members) {
      ArchiveEntry e;
      e.path = member.path;
      if (!member.link.empty()) {
        e.link_target = member.link;
        EXPECT_TRUE((*writer)->AddSymlink(e).ok());
      } else {
        e.size = static_cast<int64_t>(member.content.size());
        EXPECT_TRUE((*writer)->AddBytes(e, member.content).ok());
      }
    }
    ArchiveEntry e;
    e.path = kManifestMemberName;
    e.size = static_cast<int64_t>(json.size());
    EXPECT_TRUE((*writer)->AddBytes(e, json).ok());
    EXPECT_TRUE((*writer)->Finish().ok());
    const std::string sidecar = (tmp_.path() / "sidecar.json").string();
    WriteFile(sidecar, json);
    return VerifyArchive(Env::Default(), kId, archive, std::nullopt, sidecar,
                         {.keep_log_members = false});
  }

  static std::string Problems(const VerifyReport& r) {
    std::string all;
    for (const auto& p : r.problems) all += p + "\n";
    return all;
  }

  TempDir tmp_;
};

TEST_F(VerifyListTest, MembersInTheListsOrderPassAndEachDamageIsNamedInThatOrder) {
  std::vector<Member> members;
  std::vector<ManifestFile> listed;
  for (int i = 0; i < 1000; ++i) {  // several batches of the list's reader
    std::string path = "data/lake/t/f" + std::to_string(i);
    std::string content = "content " + std::to_string(i * 7919);
    members.push_back({path, content, ""});
    listed.push_back(Listed(path, content));
  }
  VerifyReport clean = Verify(members, listed);
  EXPECT_TRUE(clean.ok) << Problems(clean);
  EXPECT_EQ(clean.members, 1001);

  std::vector<Member> damaged = members;
  damaged[700].content[0] ^= 1;                       // same size, other bytes
  damaged[300].content += "x";                        // longer
  damaged[5].content = damaged[5].content.substr(1);  // shorter
  VerifyReport bad = Verify(damaged, listed);
  ASSERT_EQ(bad.problems.size(), 3u) << Problems(bad);
  EXPECT_NE(bad.problems[0].find("data/lake/t/f5: size"), std::string::npos) << Problems(bad);
  EXPECT_NE(bad.problems[1].find("data/lake/t/f300: size"), std::string::npos) << Problems(bad);
  EXPECT_NE(bad.problems[2].find("data/lake/t/f700: content does not match"), std::string::npos)
      << Problems(bad);
}

TEST_F(VerifyListTest, MembersOutOfTheListsOrderAreCheckedByPath) {
  std::vector<Member> members;
  std::vector<ManifestFile> listed;
  for (int i = 0; i < 400; ++i) {
    std::string path = "data/lake/t/f" + std::to_string(i);
    members.push_back({path, "bytes of " + path, ""});
    listed.push_back(Listed(path, "bytes of " + path));
  }
  std::vector<Member> shuffled = members;
  std::swap(shuffled[10], shuffled[390]);
  std::reverse(shuffled.begin() + 100, shuffled.begin() + 200);
  VerifyReport ok = Verify(shuffled, listed);
  EXPECT_TRUE(ok.ok) << Problems(ok);

  // Out of order and damaged, one missing, one extra.
  shuffled[150].content[2] ^= 1;
  const std::string damaged_path = shuffled[150].path;
  shuffled.erase(shuffled.begin() + 250);
  shuffled.push_back({"data/lake/t/stray", "not listed", ""});
  VerifyReport bad = Verify(shuffled, listed);
  std::string all = Problems(bad);
  EXPECT_FALSE(bad.ok);
  EXPECT_NE(all.find(damaged_path + ": content does not match"), std::string::npos) << all;
  EXPECT_NE(all.find("data/lake/t/f250: listed in the manifest but missing"), std::string::npos)
      << all;
  EXPECT_NE(all.find("data/lake/t/stray: in the archive but not in the manifest"),
            std::string::npos)
      << all;
  EXPECT_EQ(bad.problems.size(), 3u) << all;
}

TEST_F(VerifyListTest, AMissingLastEntryAndAnExtraAfterTheListAreFound) {
  std::vector<Member> members = {{"a/1", "one", ""}, {"a/2", "two", ""}};
  std::vector<ManifestFile> listed = {Listed("a/1", "one"), Listed("a/2", "two"),
                                      Listed("a/3", "three")};
  VerifyReport missing = Verify(members, listed);
  ASSERT_EQ(missing.problems.size(), 1u) << Problems(missing);
  EXPECT_NE(missing.problems[0].find("a/3: listed in the manifest but missing"), std::string::npos);
  members.push_back({"a/3", "three", ""});
  members.push_back({"a/4", "four", ""});
  VerifyReport extra = Verify(members, listed);
  ASSERT_EQ(extra.problems.size(), 1u) << Problems(extra);
  EXPECT_NE(extra.problems[0].find("a/4: in the archive but not in the manifest"),
            std::string::npos);
}

TEST_F(VerifyListTest, NothingMayLieBelowASymlinkWhereverTheLinkComes) {
  // The file below the link is read before the link: found by the list's second reading.
  std::vector<Member> members = {{"cfg/dir/x", "x", ""}, {"cfg/dir", "", "../elsewhere"}};
  std::vector<ManifestFile> listed = {Listed("cfg/dir/x", "x"),
                                      Listed("cfg/dir", "", "../elsewhere")};
  VerifyReport report = Verify(members, listed);
  EXPECT_NE(Problems(report).find("cfg/dir/x lies below the symlink cfg/dir"), std::string::npos)
      << Problems(report);
  std::reverse(members.begin(), members.end());
  std::reverse(listed.begin(), listed.end());
  report = Verify(members, listed);
  EXPECT_NE(Problems(report).find("cfg/dir/x lies below the symlink cfg/dir"), std::string::npos)
      << Problems(report);
}

TEST_F(VerifyListTest, ARegularFileStoredAsASymlinkIsReported) {
  std::vector<Member> members = {{"a/0", "zero", ""}, {"a/1", "", "elsewhere"}, {"a/2", "two", ""}};
  std::vector<ManifestFile> listed = {Listed("a/0", "zero"), Listed("a/1", "one"),
                                      Listed("a/2", "two")};
  VerifyReport in_order = Verify(members, listed);
  ASSERT_EQ(in_order.problems.size(), 1u) << Problems(in_order);
  EXPECT_NE(in_order.problems[0].find("a/1: size 0 differs from the manifest's 3"),
            std::string::npos)
      << Problems(in_order);
  std::swap(members[0], members[2]);  // out of order: found at the end, by path
  VerifyReport out_of_order = Verify(members, listed);
  EXPECT_NE(Problems(out_of_order).find("a/1: size 0 differs from the manifest's 3"),
            std::string::npos)
      << Problems(out_of_order);
}

TEST_F(VerifyListTest, ADamagedListIsReportedNotTakenForMissingFiles) {
  std::vector<Member> members = {{"a/1", "one", ""}};
  std::vector<ManifestFile> listed = {Listed("a/1", "one")};
  VerifyReport good = Verify(members, listed);
  ASSERT_TRUE(good.ok) << Problems(good);
  // The sidecar cut short: it differs from the member, so the archive's own list is used.
  const std::string sidecar = (tmp_.path() / "sidecar.json").string();
  std::string text = ReadFile(sidecar);
  WriteFile(sidecar, text.substr(0, text.size() / 2));
  VerifyReport cut =
      VerifyArchive(Env::Default(), kId, (tmp_.path() / (std::string(kId) + ".tar.gz")).string(),
                    std::nullopt, sidecar, {.keep_log_members = false});
  ASSERT_EQ(cut.problems.size(), 1u) << Problems(cut);
  EXPECT_NE(cut.problems[0].find("the manifest sidecar differs"), std::string::npos);
}

// `lakevault verify` replays each table's log as the backup holds it (from scratch copies of the
// log members) and compares it with the manifest's table records and list.
TEST(VerifyTableContent, TheBackedUpLogIsComparedWithTheManifest) {
  TempDir dir;
  const std::string id = "backup_20260101_000000";
  const std::string commit =
      "{\"protocol\":{\"minReaderVersion\":1,\"minWriterVersion\":2}}\n"
      "{\"metaData\":{\"id\":\"x\",\"format\":{\"provider\":\"parquet\",\"options\":{}},"
      "\"schemaString\":\"{\\\"type\\\":\\\"struct\\\",\\\"fields\\\":[]}\","
      "\"partitionColumns\":[],\"configuration\":{}}}\n"
      "{\"add\":{\"path\":\"a.parquet\",\"size\":3,\"modificationTime\":1,\"dataChange\":true,"
      "\"stats\":\"{\\\"numRecords\\\":5}\"}}\n"
      "{\"add\":{\"path\":\"b.parquet\",\"size\":3,\"modificationTime\":1,\"dataChange\":true,"
      "\"stats\":\"{\\\"numRecords\\\":7}\"}}\n";
  const std::string log_path = "data/lake/t/_delta_log/00000000000000000000.json";
  auto make = [&](int64_t version, int64_t rows, bool list_b) {
    Manifest m;
    m.id = id;
    m.archive = id + ".tar.gz";
    m.created = "2026-01-01T00:00:00Z";
    m.tables.push_back({"t", "data/lake/t", version, rows, 2, 6});
    std::vector<std::pair<std::string, std::string>> members = {{log_path, commit},
                                                                {"data/lake/t/a.parquet", "aaa"}};
    if (list_b) members.push_back({"data/lake/t/b.parquet", "bbb"});
    m.files = OwnFiles(members, id);
    WriteBackupForTest(dir.path(), m, members);
  };
  // A bound of 120 bytes puts each file in a share of its own: the table is then replayed once
  // per share, and what is found must not change.
  auto verify = [&](size_t max_replay_bytes = kVerifyReplayBytes) {
    auto catalog = Catalog::Load(dir.str());
    EXPECT_TRUE(catalog.ok());
    return VerifyBackupWithChain(Env::Default(), *catalog, catalog->entries().at(0), nullptr,
                                 max_replay_bytes);
  };
  auto problems = [](const VerifyReport& r) {
    std::string all;
    for (const auto& p : r.problems) all += p + "\n";
    return all;
  };

  make(0, 12, true);
  VerifyReport good = verify();
  EXPECT_TRUE(good.ok) << problems(good);
  EXPECT_TRUE(verify(120).ok) << problems(verify(120));

  make(1, 12, true);
  VerifyReport version = verify();
  EXPECT_NE(problems(version).find("the backed-up log ends at version 0, the manifest says 1"),
            std::string::npos)
      << problems(version);
  EXPECT_EQ(problems(verify(120)), problems(version));

  make(0, 11, true);
  VerifyReport rows = verify();
  EXPECT_NE(problems(rows).find("the backed-up log holds 12 rows, the manifest says 11"),
            std::string::npos)
      << problems(rows);
  EXPECT_EQ(problems(verify(120)), problems(rows));

  make(0, 12, false);
  VerifyReport missing = verify();
  EXPECT_NE(problems(missing).find("b.parquet (needed by version 0) is not in the backup"),
            std::string::npos)
      << problems(missing);
  EXPECT_EQ(missing.problems.size(), 1u) << problems(missing);
  EXPECT_EQ(problems(verify(120)), problems(missing));
}

// The files a version needs are marked as the list is read: data files and deletion vector
// files, each under its own table's folder only, and a file the backup names as missing (gone
// while it was taken) is not reported again.
TEST(VerifyTableContent, EveryNeededFileIsLookedForUnderItsOwnTable) {
  TempDir dir;
  const std::string id = "backup_20260101_000000";
  const std::string dv_inline = "ab^-aqEH.-t@S}K{vb[*k^";
  auto dv_file = delta::DeletionVectorFile("u", dv_inline);
  ASSERT_TRUE(dv_file.ok()) << dv_file.message();
  auto add = [](const std::string& path, const std::string& extra) {
    return "{\"add\":{\"path\":\"" + path +
           "\",\"size\":3,\"modificationTime\":1,\"dataChange\":true" + extra + "}}\n";
  };
  const std::string header =
      "{\"protocol\":{\"minReaderVersion\":1,\"minWriterVersion\":2}}\n"
      "{\"metaData\":{\"id\":\"x\",\"format\":{\"provider\":\"parquet\",\"options\":{}},"
      "\"schemaString\":\"{\\\"type\\\":\\\"struct\\\",\\\"fields\\\":[]}\","
      "\"partitionColumns\":[],\"configuration\":{}}}\n";
  // t needs a.parquet (with a deletion vector), b.parquet and c.parquet; u needs b.parquet.
  const std::string dv = ",\"deletionVector\":{\"storageType\":\"u\",\"pathOrInlineDv\":\"" +
                         dv_inline + "\",\"offset\":1,\"sizeInBytes\":10,\"cardinality\":1}";
  const std::string t_commit =
      header + add("a.parquet", dv) + add("b.parquet", "") + add("c.parquet", "");
  const std::string u_commit = header + add("b.parquet", "");
  const std::string log = "/_delta_log/00000000000000000000.json";
  // With a bound of 120 bytes each file is in a share of its own (see above).
  auto make = [&](const std::vector<std::string>& t_files, const std::vector<std::string>& missing,
                  size_t max_replay_bytes = kVerifyReplayBytes) {
    Manifest m;
    m.id = id;
    m.archive = id + ".tar.gz";
    m.created = "2026-01-01T00:00:00Z";
    m.tables.push_back({"t", "data/lake/t", 0, std::nullopt, 0, 0});
    m.tables.push_back({"u", "data/lake/u", 0, std::nullopt, 0, 0});
    m.missing = missing;
    std::vector<std::pair<std::string, std::string>> members = {{"data/lake/t" + log, t_commit},
                                                                {"data/lake/u" + log, u_commit},
                                                                {"data/lake/u/b.parquet", "bbb"}};
    for (const auto& f : t_files) members.push_back({"data/lake/t/" + f, "xyz"});
    std::sort(members.begin(), members.end());
    m.files = OwnFiles(members, id);
    WriteBackupForTest(dir.path(), m, members);
    auto catalog = Catalog::Load(dir.str());
    EXPECT_TRUE(catalog.ok());
    VerifyReport r = VerifyBackupWithChain(Env::Default(), *catalog, catalog->entries().at(0),
                                           nullptr, max_replay_bytes);
    std::string all;
    for (const auto& p : r.problems) all += p + "\n";
    return all;
  };
  auto not_in_backup = [](const std::string& rel) {
    return ": table t: " + rel + " (needed by version 0) is not in the backup";
  };

  EXPECT_EQ(make({"a.parquet", "b.parquet", "c.parquet", *dv_file}, {}), "");

  // b.parquet is u's, not t's; the deletion vector file is not there at all.
  std::string problems = make({"a.parquet", "c.parquet"}, {});
  EXPECT_NE(problems.find(not_in_backup("b.parquet")), std::string::npos) << problems;
  EXPECT_NE(problems.find(not_in_backup(*dv_file)), std::string::npos) << problems;
  EXPECT_EQ(std::count(problems.begin(), problems.end(), '\n'), 2) << problems;
  std::string in_shares = make({"a.parquet", "c.parquet"}, {}, 120);
  EXPECT_NE(in_shares.find(not_in_backup("b.parquet")), std::string::npos) << in_shares;
  EXPECT_NE(in_shares.find(not_in_backup(*dv_file)), std::string::npos) << in_shares;
  EXPECT_EQ(std::count(in_shares.begin(), in_shares.end(), '\n'), 2) << in_shares;
  EXPECT_EQ(make({"a.parquet", "b.parquet", "c.parquet", *dv_file}, {}, 120), "");

  // Named as missing by the backup itself: not reported by this check.
  problems = make({"a.parquet", "c.parquet", *dv_file}, {"data/lake/t/b.parquet"});
  EXPECT_EQ(problems.find("is not in the backup"), std::string::npos) << problems;
  problems = make({"a.parquet", "c.parquet", *dv_file}, {"data/lake/t/b.parquet"}, 120);
  EXPECT_EQ(problems.find("is not in the backup"), std::string::npos) << problems;
}

// An incremental's list says, per file, which backup of its chain holds the bytes: each such
// claim is checked against what that backup lists as its own.
TEST(VerifyChain, EachFileAnAncestorHoldsIsCheckedAgainstThatAncestorsList) {
  TempDir dir;
  const std::string full = "backup_20260101_000000", incr = "backup_20260102_000000";
  auto file = [](const std::string& path, const std::string& content, const std::string& holder) {
    ManifestFile f;
    f.path = path;
    f.size = static_cast<int64_t>(content.size());
    f.sha256 = Sha256Hex(content);
    f.backup = holder;
    return f;
  };
  Manifest parent;
  parent.id = full;
  parent.archive = full + ".tar.gz";
  parent.created = "2026-01-01T00:00:00Z";
  std::vector<std::pair<std::string, std::string>> parent_members;
  for (int i = 0; i < 50; ++i) {
    std::string path = "data/lake/t/part-" + std::to_string(i) + ".parquet";
    parent.files.push_back(file(path, "bytes " + std::to_string(i), full));
    parent_members.push_back({path, "bytes " + std::to_string(i)});
  }
  WriteBackupForTest(dir.path(), parent, parent_members);

  // `changes` edits the incremental's list before it is written. `max_index_bytes` bounds what
  // the check holds of the parent's files; `passes` receives how many reads of the lists it took.
  auto verify_incremental = [&](const std::function<void(std::vector<ManifestFile>&)>& changes,
                                size_t max_index_bytes = kVerifyChainIndexBytes,
                                int* passes = nullptr) {
    Manifest m;
    m.id = incr;
    m.kind = "incremental";
    m.parent = full;
    m.archive = incr + ".tar.gz";
    m.created = "2026-01-02T00:00:00Z";
    m.files = parent.files;  // every file held by the parent ...
    m.files.push_back(file("data/lake/t/new.parquet", "new", incr));  // ... and one of its own
    changes(m.files);
    WriteBackupForTest(dir.path(), m, {{"data/lake/t/new.parquet", "new"}});
    auto catalog = Catalog::Load(dir.str());
    EXPECT_TRUE(catalog.ok()) << catalog.message();
    auto found = catalog->Find(incr);
    EXPECT_TRUE(found.ok());
    VerifyReport r = VerifyBackupWithChain(Env::Default(), *catalog, **found, nullptr,
                                           kVerifyReplayBytes, max_index_bytes);
    if (passes) *passes = r.chain_passes;
    std::vector<std::string> problems = r.problems;
    std::sort(problems.begin(), problems.end());
    return problems;
  };

  auto edits = [](std::vector<ManifestFile>& files) {
    files[3].sha256 = Sha256Hex("other bytes");
    files[7].backup = "backup_20251231_000000";
    files[9].path = "data/lake/t/renamed.parquet";
  };
  const std::vector<std::string> expected = {
      incr + ": data/lake/t/part-3.parquet: " + full +
          " does not hold these bytes (checksum differs)",
      incr +
          ": data/lake/t/part-7.parquet: its bytes are said to be in "
          "backup_20251231_000000, which is not in this backup's chain",
      incr + ": data/lake/t/renamed.parquet: " + full +
          " does not hold these bytes (checksum differs)",
  };
  int passes = 0;
  EXPECT_EQ(verify_incremental([](std::vector<ManifestFile>&) {}, kVerifyChainIndexBytes, &passes),
            std::vector<std::string>{});
  EXPECT_EQ(passes, 1);
  EXPECT_EQ(verify_incremental(edits), expected);

  // Room for 4 of the parent's 50 files at once: the paths are checked in shares, a read of the
  // lists each, and every claim is still checked once.
  const size_t four = 4 * HeldFilesIndex::kRecordBytes;
  EXPECT_EQ(verify_incremental([](std::vector<ManifestFile>&) {}, four, &passes),
            std::vector<std::string>{});
  EXPECT_GE(passes, 13);
  EXPECT_EQ(verify_incremental(edits, four, &passes), expected);
  EXPECT_GE(passes, 13);

  // A parent whose header understates what it holds: one share is planned, found over the
  // bound while the list is read, and split until each share fits.
  parent.files_stored = 1;
  WriteBackupForTest(dir.path(), parent, parent_members);
  EXPECT_EQ(verify_incremental(edits, 20 * HeldFilesIndex::kRecordBytes, &passes), expected);
  EXPECT_GE(passes, 3);
}

}  // namespace
}  // namespace lakevault::testing
