// End-to-end tests of `lakevault backup`, `list` and `verify` on real Delta tables.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>

#include "manifest/catalog.h"
#include "manifest/manifest.h"
#include "support/test_util.h"

namespace fs = std::filesystem;

namespace lakevault::testing {
namespace {

// A project root with the guide's layout and a few corpus tables as the V6 tables.
class BackupTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = tmp_.path() / "project";
    fs::create_directories(root_ / "data/lake");
    AddTable("delta-0.8.0-partitioned", "position_updates");
    AddTable("table-with-dv-small", "option_legs");
    AddTable("checkpoint-cdf-table", "strategy_executions");
    WriteFile(root_ / "config/production.yaml", "broker: ib\nmax_positions: 10\n");
    WriteFile(root_ / ".env", "IB_ACCOUNT=DU123456\n");
  }
  void AddTable(const std::string& corpus_name, const std::string& as) {
    CopyTree(fs::path(CorpusDir()) / corpus_name, root_ / "data/lake" / as);
  }
  RunResult Run(std::vector<std::string> args, std::map<std::string, std::string> env = {}) {
    return RunLakevault(args, root_.string(), env);
  }
  fs::path Backups() const { return root_ / "backups"; }
  // The backup folder's files, less the lock file whose pid note every run rewrites.
  std::map<std::string, std::string> BackupState() const {
    auto state = FolderState(Backups());
    state.erase(".lakevault.lock");
    return state;
  }
  std::vector<fs::path> Archives() const {
    std::vector<fs::path> out;
    if (!fs::exists(Backups())) return out;
    for (const auto& e : fs::directory_iterator(Backups())) {
      std::string n = e.path().filename().string();
      if (n.rfind("backup_", 0) == 0 &&
          (n.ends_with(".tar.gz") || n.ends_with(".tar") || n.ends_with(".tar.zst")))
        out.push_back(e.path());
    }
    std::sort(out.begin(), out.end());
    return out;
  }
  static void ExpectOneErrorLine(const RunResult& r) {
    EXPECT_NE(r.exit_code, 0);
    auto lines = Lines(r.err);
    ASSERT_EQ(lines.size(), 1u) << r.err;
    EXPECT_EQ(lines[0].rfind("lakevault: error: ", 0), 0u) << r.err;
  }
  static void FlipByte(const fs::path& file, std::streamoff offset) {
    std::fstream f(file, std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(offset);
    char c;
    f.get(c);
    f.seekp(offset);
    f.put(static_cast<char>(c ^ 0x5a));
  }

  TempDir tmp_;
  fs::path root_;
};

TEST_F(BackupTest, BackupOfGuideLayoutExtractsWithPlainTarByteForByte) {
  auto r = Run({"backup"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto archives = Archives();
  ASSERT_EQ(archives.size(), 1u);
  std::string name = archives[0].filename().string();
  EXPECT_TRUE(std::regex_match(name, std::regex(R"(backup_\d{8}_\d{6}\.tar\.gz)"))) << name;
  // The sidecar is what `sha256sum -c` accepts.
  auto sum = RunShell("sha256sum -c " + name + ".sha256", Backups().string());
  EXPECT_EQ(sum.exit_code, 0) << sum.out << sum.err;

  fs::path out = tmp_.path() / "extracted";
  fs::create_directories(out);
  auto tar = RunShell("tar -xzf " + archives[0].string() + " -C " + out.string());
  ASSERT_EQ(tar.exit_code, 0) << tar.err;
  EXPECT_EQ(TreeDigest(out / "data/lake"), TreeDigest(root_ / "data/lake"));
  EXPECT_EQ(ReadFile(out / "config/production.yaml"), ReadFile(root_ / "config/production.yaml"));
  EXPECT_EQ(ReadFile(out / ".env"), ReadFile(root_ / ".env"));
  // Archives and sidecars hold .env secrets: owner-only.
  EXPECT_EQ(fs::status(archives[0]).permissions() & fs::perms::all,
            fs::perms::owner_read | fs::perms::owner_write);
  EXPECT_EQ(fs::status(Backups()).permissions() & fs::perms::all, fs::perms::owner_all);
  // The plan's scratch files (PlannedFiles::Spill) are gone; only the backup and its sidecars.
  std::set<std::string> names;
  for (const auto& e : fs::directory_iterator(Backups())) names.insert(e.path().filename());
  const std::string id = name.substr(0, name.size() - 7);
  EXPECT_EQ(names,
            (std::set<std::string>{".lakevault-state.json", ".lakevault.lock", name,
                                   name + ".sha256", id + ".manifest.json", id + ".verify.json"}));
}

TEST_F(BackupTest, EveryCorpusTableRoundTripsThroughPlainTar) {
  fs::remove_all(root_ / "data/lake");
  fs::create_directories(root_ / "data/lake");
  size_t tables = 0;
  for (const auto& line : Lines(ReadFile(fs::path(CorpusDir()) / "INDEX.tsv"))) {
    std::string name = line.substr(0, line.find('\t'));
    if (name == "table") continue;
    CopyTree(fs::path(CorpusDir()) / name, root_ / "data/lake" / name);
    ++tables;
  }
  ASSERT_GT(tables, 40u);
  auto r = Run({"backup", "--allow-missing", "--json"});
  if (r.exit_code != 0 && r.err.find("--allow-missing") != std::string::npos)
    r = Run({"backup", "--json"});  // before Delta-aware backups existed
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto doc = nlohmann::json::parse(r.out);
  EXPECT_EQ(doc["tables"].size(), tables);
  auto v = Run({"verify", "latest"});
  EXPECT_EQ(v.exit_code, 0) << v.out << v.err;

  fs::path out = tmp_.path() / "extracted";
  fs::create_directories(out);
  auto tar = RunShell("tar -xzf " + Archives()[0].string() + " -C " + out.string());
  ASSERT_EQ(tar.exit_code, 0) << tar.err;
  auto got = TreeDigest(out / "data/lake");
  auto want = TreeDigest(root_ / "data/lake");
  for (const auto& [path, digest] : want) {
    auto it = got.find(path);
    EXPECT_TRUE(it != got.end() && it->second == digest) << "not restored as it was: " << path;
  }
  for (const auto& [path, digest] : got) EXPECT_TRUE(want.count(path)) << "extra file: " << path;
}

TEST_F(BackupTest, ZstdAndUncompressedArchivesVerify) {
  for (std::string c : {"zstd", "none"}) {
    auto r = Run({"backup", "--compress", c});
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }
  auto archives = Archives();
  ASSERT_EQ(archives.size(), 2u);
  auto v = Run({"verify", "--all"});
  EXPECT_EQ(v.exit_code, 0) << v.out << v.err;
  fs::path out = tmp_.path() / "x";
  fs::create_directories(out);
  for (const auto& a : archives)
    EXPECT_EQ(RunShell("tar -xf " + a.string() + " -C " + out.string()).exit_code, 0);
  EXPECT_EQ(TreeDigest(out / "data/lake"), TreeDigest(root_ / "data/lake"));
}

TEST_F(BackupTest, CompressionLevelFromTheConfigIsUsed) {
  std::map<int, uintmax_t> sizes;
  for (int level : {1, 9}) {
    WriteFile(root_ / "lakevault.yaml", "compression_level: " + std::to_string(level) + "\n");
    auto r = Run({"backup", "--full", "--path", "b" + std::to_string(level)});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    for (const auto& e : fs::directory_iterator(root_ / ("b" + std::to_string(level))))
      if (e.path().string().ends_with(".tar.gz")) {
        sizes[level] = fs::file_size(e.path());
        fs::path out = tmp_.path() / ("x" + std::to_string(level));
        fs::create_directories(out);
        ASSERT_EQ(RunShell("tar -xzf " + e.path().string() + " -C " + out.string()).exit_code, 0);
        EXPECT_EQ(TreeDigest(out / "data/lake"), TreeDigest(root_ / "data/lake"));
      }
  }
  ASSERT_EQ(sizes.size(), 2u);
  EXPECT_LT(sizes[9], sizes[1]);
  WriteFile(root_ / "lakevault.yaml", "compression_level: 99\n");
  ExpectOneErrorLine(Run({"backup"}));
}

// The guide's "permission denied": root reads and writes anything, so the run drops to nobody.
TEST_F(BackupTest, PermissionDeniedNamesTheFolderAndTheUserToRunAs) {
  if (::geteuid() != 0 || RunShell("command -v setpriv").exit_code != 0)
    GTEST_SKIP() << "needs root and setpriv to run as another user";
  ASSERT_EQ(Run({"backup"}).exit_code, 0);  // backups/ is now root's, mode 0700
  auto before = BackupState();
  fs::permissions(tmp_.path(), fs::perms(0755));
  fs::permissions(root_, fs::perms(0755));
  const std::string as_nobody = "cd " + root_.string() +
                                " && setpriv --reuid=65534 --regid=65534 --clear-groups " +
                                BinaryPath() + " ";
  auto r = RunShell(as_nobody + "backup 2>&1 >/dev/null | grep 'error:'");
  EXPECT_NE(r.out.find("permission denied"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("backup folder " + Backups().string()), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("run lakevault as root"), std::string::npos) << r.out;
  EXPECT_EQ(BackupState(), before);
  // An unreadable table log is named too, before anything is written.
  fs::permissions(root_ / "data/lake/option_legs/_delta_log", fs::perms(0700));
  r = RunShell(as_nobody + "backup --path /tmp/lakevault-nobody-never 2>&1 >/dev/null");
  EXPECT_NE(r.out.find("cannot read the table log"), std::string::npos) << r.out;
  EXPECT_FALSE(fs::exists("/tmp/lakevault-nobody-never"));
  // A restore as nobody is refused before anything moves.
  auto lake_before = TreeDigest(root_ / "data/lake");
  r = RunShell(as_nobody + "restore latest --yes 2>&1 >/dev/null | grep 'error:'");
  EXPECT_NE(r.out.find("permission denied"), std::string::npos) << r.out;
  EXPECT_EQ(TreeDigest(root_ / "data/lake"), lake_before);
}

TEST_F(BackupTest, ListShowsKindTimeSizeTablesAndVerification) {
  ASSERT_EQ(Run({"backup"}).exit_code, 0);
  auto r = Run({"list", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto doc = nlohmann::json::parse(r.out);
  ASSERT_EQ(doc["backups"].size(), 1u);
  auto b = doc["backups"][0];
  EXPECT_EQ(b["kind"], "full");
  EXPECT_TRUE(b["parent"].is_null());
  EXPECT_EQ(b["file"], Archives()[0].filename().string());
  EXPECT_EQ(b["bytes"].get<int64_t>(), static_cast<int64_t>(fs::file_size(Archives()[0])));
  EXPECT_EQ(b["tables"].size(), 3u);
  EXPECT_TRUE(b["tables"].contains("position_updates"));
  EXPECT_EQ(b["verified"], true);
  auto text = Run({"list"});
  EXPECT_NE(text.out.find(b["id"].get<std::string>()), std::string::npos);
}

TEST_F(BackupTest, TwoBackupsInTheSameSecondGetDistinctNames) {
  ASSERT_EQ(Run({"backup"}).exit_code, 0);
  ASSERT_EQ(Run({"backup"}).exit_code, 0);
  ASSERT_EQ(Archives().size(), 2u);
  EXPECT_EQ(Run({"verify", "--all"}).exit_code, 0);
}

TEST_F(BackupTest, FlippedByteAnywhereIsDetectedAndNamed) {
  ASSERT_EQ(Run({"backup"}).exit_code, 0);
  fs::path archive = Archives()[0];
  std::string id = archive.filename().string().substr(0, 22);
  fs::path pristine = tmp_.path() / "pristine";
  fs::copy_file(archive, pristine);
  auto size = static_cast<std::streamoff>(fs::file_size(archive));
  for (std::streamoff offset : {std::streamoff{20}, size / 2, size - 30, size - 9}) {
    fs::copy_file(pristine, archive, fs::copy_options::overwrite_existing);
    FlipByte(archive, offset);
    auto r = Run({"verify", id});
    EXPECT_NE(r.exit_code, 0) << "offset " << offset;
    EXPECT_NE(r.err.find(id), std::string::npos) << r.err;
    auto lines = Lines(r.err);
    EXPECT_EQ(lines.size(), 1u) << r.err;
  }
  fs::copy_file(pristine, archive, fs::copy_options::overwrite_existing);
  EXPECT_EQ(Run({"verify", id}).exit_code, 0);
  auto list = nlohmann::json::parse(Run({"list", "--json"}).out);
  EXPECT_EQ(list["backups"][0]["verified"], true);
}

TEST_F(BackupTest, DamageInsideAMemberOrTheManifestNamesIt) {
  ASSERT_EQ(Run({"backup", "--compress", "none"}).exit_code, 0);
  fs::path archive = Archives()[0];
  std::string bytes = ReadFile(archive);
  std::string id = archive.filename().string().substr(0, 22);
  // .env's content is stored verbatim in an uncompressed tar.
  auto env_at = bytes.find("IB_ACCOUNT=DU123456");
  ASSERT_NE(env_at, std::string::npos);
  fs::path pristine = tmp_.path() / "pristine";
  fs::copy_file(archive, pristine);
  FlipByte(archive, static_cast<std::streamoff>(env_at + 3));
  auto r = Run({"verify", id});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find(".env"), std::string::npos) << r.err;

  fs::copy_file(pristine, archive, fs::copy_options::overwrite_existing);
  auto manifest_at = bytes.find("\"lakevault-manifest\"");
  ASSERT_NE(manifest_at, std::string::npos);
  FlipByte(archive, static_cast<std::streamoff>(manifest_at + 4));
  r = Run({"verify", id});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("manifest"), std::string::npos) << r.err;
}

TEST_F(BackupTest, TruncatedArchiveFailsVerification) {
  ASSERT_EQ(Run({"backup"}).exit_code, 0);
  fs::path archive = Archives()[0];
  fs::resize_file(archive, fs::file_size(archive) / 2);
  auto r = Run({"verify"});
  ExpectOneErrorLine(r);
  auto list = nlohmann::json::parse(Run({"list", "--json"}).out);
  EXPECT_EQ(list["backups"][0]["verified"], false);
}

TEST_F(BackupTest, DryRunWritesNothing) {
  auto r = Run({"backup", "--dry-run"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("position_updates"), std::string::npos);
  EXPECT_FALSE(fs::exists(Backups()));
  ASSERT_EQ(Run({"backup"}).exit_code, 0);
  auto before = BackupState();
  ASSERT_EQ(Run({"backup", "--dry-run", "--json"}).exit_code, 0);
  EXPECT_EQ(BackupState(), before);
}

TEST_F(BackupTest, PathAndEnvironmentOverrideTheBackupFolder) {
  ASSERT_EQ(Run({"backup", "--path", "elsewhere"}).exit_code, 0);
  EXPECT_EQ(fs::exists(root_ / "elsewhere"), true);
  ASSERT_EQ(Run({"backup"}, {{"BACKUP_PATH", (tmp_.path() / "viaenv").string()}}).exit_code, 0);
  EXPECT_FALSE(fs::is_empty(tmp_.path() / "viaenv"));
  EXPECT_FALSE(fs::exists(Backups()));
}

TEST_F(BackupTest, MissingLakeRootIsOneClearError) {
  fs::remove_all(root_ / "data");
  auto r = Run({"backup"});
  ExpectOneErrorLine(r);
  EXPECT_NE(r.err.find("does not exist"), std::string::npos);
  EXPECT_FALSE(fs::exists(Backups()));
}

TEST_F(BackupTest, LakeWithoutDeltaTablesIsOneClearError) {
  fs::remove_all(root_ / "data/lake");
  WriteFile(root_ / "data/lake/notes.txt", "no tables here\n");
  auto r = Run({"backup"});
  ExpectOneErrorLine(r);
  EXPECT_NE(r.err.find("no Delta table"), std::string::npos);
}

TEST_F(BackupTest, MalformedYamlAndUnknownKeysAreOneClearError) {
  WriteFile(root_ / "lakevault.yaml", "lake: data/lake\ntables: [a, b\n");
  auto r = Run({"backup"});
  ExpectOneErrorLine(r);
  EXPECT_NE(r.err.find("malformed YAML"), std::string::npos);
  WriteFile(root_ / "lakevault.yaml", "lake: data/lake\nretention_days: 30\n");
  r = Run({"backup"});
  ExpectOneErrorLine(r);
  EXPECT_NE(r.err.find("unknown key 'retention_days'"), std::string::npos);
  EXPECT_FALSE(fs::exists(Backups()));
}

TEST_F(BackupTest, UnreadableSourceFileFailsAndLeavesEarlierBackupsUntouched) {
  ASSERT_EQ(Run({"backup"}).exit_code, 0);
  auto before = BackupState();
  // Root reads anything, so the read failure is injected at the I/O seam. A full backup: an
  // incremental reads its parent's list and may re-read a config file to compare it, and a
  // failed compare only means the file is stored again.
  auto r = Run({"backup", "--full"}, {{"LAKEVAULT_FAULT", "read:5"}});
  ExpectOneErrorLine(r);
  EXPECT_NE(r.err.find("reading"), std::string::npos) << r.err;
  EXPECT_EQ(BackupState(), before);
}

TEST_F(BackupTest, FailedWriteLeavesNoFinalNameAndEarlierBackupsUntouched) {
  ASSERT_EQ(Run({"backup"}).exit_code, 0);
  auto before = BackupState();
  for (std::string fault : {"write:1", "write:3", "fsync:1", "fsync:2", "rename:1", "rename:3"}) {
    auto r = Run({"backup"}, {{"LAKEVAULT_FAULT", fault}});
    ExpectOneErrorLine(r);
    EXPECT_EQ(BackupState(), before) << fault;
  }
  EXPECT_EQ(Run({"verify", "--all"}).exit_code, 0);
}

TEST_F(BackupTest, FullFilesystemIsOneClearErrorAndLeavesNothingBehind) {
  fs::path small = tmp_.path() / "small";
  fs::create_directories(small);
  if (::mount("tmpfs", small.c_str(), "tmpfs", 0, "size=24k") != 0)
    GTEST_SKIP() << "cannot mount a tmpfs here; FailedWriteLeavesNoFinalName covers ENOSPC";
  // The lake is larger than the folder can hold.
  std::string big(256 * 1024, '\0');
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>((i * 2654435761u) >> 13);
  WriteFile(root_ / "data/lake/position_updates/part-big.parquet", big);
  // The pre-flight sees it coming; with the pre-flight fooled, the kernel's ENOSPC mid-write
  // is just as clean.
  auto pre = Run({"backup", "--path", small.string()});
  auto r =
      Run({"backup", "--path", small.string()}, {{"LAKEVAULT_TEST_FREE_BYTES", "1000000000000"}});
  std::vector<std::string> left;
  for (const auto& e : fs::directory_iterator(small)) left.push_back(e.path().filename().string());
  ::umount(small.c_str());
  ExpectOneErrorLine(pre);
  EXPECT_NE(pre.err.find("not enough free space"), std::string::npos) << pre.err;
  ExpectOneErrorLine(r);
  EXPECT_NE(r.err.find("No space left on device"), std::string::npos) << r.err;
  for (const auto& name : left) EXPECT_EQ(name.rfind("backup_", 0), std::string::npos) << name;
}

TEST_F(BackupTest, SecondBackupWhileOneRunsIsRefusedByTheLock) {
  fs::create_directories(Backups());
  int fd = ::open((Backups() / ".lakevault.lock").c_str(), O_RDWR | O_CREAT, 0600);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::flock(fd, LOCK_EX | LOCK_NB), 0);
  auto r = Run({"backup"});
  ::close(fd);
  ExpectOneErrorLine(r);
  EXPECT_NE(r.err.find("another lakevault"), std::string::npos) << r.err;
  EXPECT_TRUE(Archives().empty());
  EXPECT_EQ(Run({"backup"}).exit_code, 0);
}

// logs.include takes the logs folder, but not lakevault's own log, which this very run writes.
TEST_F(BackupTest, IncludedLogsLeaveOutLakevaultsOwnLog) {
  WriteFile(root_ / "lakevault.yaml", "logs: {include: true}\n");
  WriteFile(root_ / "logs/trader.log", "2026-11-24 filled 10 SPY\n");
  WriteFile(root_ / "logs/lakevault.log", "an earlier run\n");
  ASSERT_EQ(Run({"backup"}).exit_code, 0);
  ASSERT_EQ(Archives().size(), 1u);
  std::string id = Archives()[0].filename().string().substr(0, 22);
  auto manifest = ParseManifest(ReadFile(ManifestSidecarPath(Backups().string(), id)));
  ASSERT_TRUE(manifest.ok()) << manifest.message();
  EXPECT_NE(manifest->FindFile("logs/trader.log"), nullptr);
  EXPECT_EQ(manifest->FindFile("logs/lakevault.log"), nullptr);
  EXPECT_NE(manifest->FindFile("data/lake/position_updates/_delta_log/00000000000000000000.json"),
            nullptr);
}

TEST_F(BackupTest, LogFileRecordsEveryOperation) {
  ASSERT_EQ(Run({"backup"}).exit_code, 0);
  ASSERT_EQ(Run({"verify"}).exit_code, 0);
  std::string log = ReadFile(root_ / "logs/lakevault.log");
  EXPECT_NE(log.find("written and verified"), std::string::npos) << log;
  // Secrets from .env never reach the log.
  EXPECT_EQ(log.find("DU123456"), std::string::npos);
}

}  // namespace
TEST_F(BackupTest, NotEnoughFreeSpaceIsRefusedBeforeWriting) {
  ASSERT_EQ(Run({"backup"}).exit_code, 0);
  auto before = BackupState();
  auto r = Run({"backup", "--full"}, {{"LAKEVAULT_TEST_FREE_BYTES", "1000"}});
  ExpectOneErrorLine(r);
  EXPECT_NE(r.err.find("not enough free space"), std::string::npos) << r.err;
  EXPECT_EQ(BackupState(), before);
  auto v = Run({"-v", "backup", "--full"}, {{"LAKEVAULT_NOW", "2030-01-01T00:00:00Z"}});
  EXPECT_EQ(v.exit_code, 0) << v.err;
  EXPECT_NE(v.err.find("a writer committing meanwhile is fine"), std::string::npos) << v.err;
}

}  // namespace lakevault::testing
