// Restore, rollback, point-in-time, drill and status, end to end through the binary.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "delta/delta.h"
#include "support/test_util.h"

namespace fs = std::filesystem;

namespace lakevault::testing {
namespace {

class RestoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = tmp_.path() / "project";
    fs::create_directories(root_ / "data/lake");
    CopyTree(fs::path(CorpusDir()) / "delta-0.8.0-partitioned",
             root_ / "data/lake/position_updates");
    CopyTree(fs::path(CorpusDir()) / "table-with-dv-small", root_ / "data/lake/option_legs");
    CopyTree(fs::path(CorpusDir()) / "checkpoint-cdf-table",
             root_ / "data/lake/strategy_executions");
    WriteFile(root_ / "config/production.yaml", "broker: ib\n");
    WriteFile(root_ / ".env", "IB_ACCOUNT=DU123456\n");
  }
  RunResult Run(std::vector<std::string> args, std::map<std::string, std::string> env = {}) {
    return RunLakevault(args, root_.string(), env);
  }
  std::string Backup(const std::string& now = "") {
    std::map<std::string, std::string> env;
    if (!now.empty()) env["LAKEVAULT_NOW"] = now;
    auto r = Run({"backup", "--json", "--full"}, env);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return nlohmann::json::parse(r.out)["id"];
  }
  void Damage() {
    fs::remove_all(root_ / "data/lake/option_legs");
    WriteFile(root_ / "data/lake/position_updates/junk.parquet", "junk");
    fs::remove(root_ / "data/lake/strategy_executions/_delta_log/00000000000000000005.json");
    WriteFile(root_ / "config/production.yaml", "broker: changed\n");
  }
  std::map<std::string, std::string> Lake() { return TreeDigest(root_ / "data/lake"); }
  void Hooks(const std::string& yaml) { WriteFile(root_ / "lakevault.yaml", yaml); }

  TempDir tmp_;
  fs::path root_;
};

TEST_F(RestoreTest, RestoreBringsTheLakeBackByteForByte) {
  auto before = Lake();
  std::string id = Backup();
  Damage();
  ASSERT_NE(Lake(), before);
  auto r = Run({"restore", "--yes", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(Lake(), before);
  auto doc = nlohmann::json::parse(r.out);
  EXPECT_EQ(doc["id"], id);
  EXPECT_EQ(doc["tables"].size(), 3u);
  std::set<std::string> steps;
  for (auto& s : doc["steps"]) steps.insert(s["name"]);
  EXPECT_TRUE(steps.count("swap in"));
  // Without --with-config the config stays as it is now.
  EXPECT_EQ(ReadFile(root_ / "config/production.yaml"), "broker: changed\n");
  // The damaged state is kept for rollback; rollback puts it back exactly.
  auto rb = Run({"rollback", "--json"});
  ASSERT_EQ(rb.exit_code, 0) << rb.err;
  EXPECT_EQ(nlohmann::json::parse(rb.out)["ok"], true) << rb.out;
  EXPECT_FALSE(fs::exists(root_ / "data/lake/option_legs"));
  EXPECT_TRUE(fs::exists(root_ / "data/lake/position_updates/junk.parquet"));
  // Nothing left to roll back: a clear refusal.
  auto again = Run({"rollback"});
  EXPECT_NE(again.exit_code, 0);
  EXPECT_NE(again.err.find("no restore to roll back"), std::string::npos) << again.err;
}

TEST_F(RestoreTest, EveryCorpusTableRestoresByteIdentical) {
  fs::remove_all(root_ / "data/lake");
  for (const auto& line : Lines(ReadFile(fs::path(CorpusDir()) / "INDEX.tsv"))) {
    std::string name = line.substr(0, line.find('\t'));
    if (name == "table") continue;
    CopyTree(fs::path(CorpusDir()) / name, root_ / "data/lake" / name);
  }
  auto before = Lake();
  auto b = Run({"backup", "--allow-missing"});
  ASSERT_EQ(b.exit_code, 0) << b.err;
  fs::remove_all(root_ / "data/lake");
  fs::create_directories(root_ / "data/lake");
  auto r = Run({"restore", "--yes"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(Lake(), before);
}

TEST_F(RestoreTest, WithConfigRestoresConfigAndKeepsTheReplacedFiles) {
  Backup();
  Damage();
  auto r = Run({"restore", "--yes", "--with-config"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(ReadFile(root_ / "config/production.yaml"), "broker: ib\n");
  auto rb = Run({"rollback"});
  ASSERT_EQ(rb.exit_code, 0) << rb.err;
  EXPECT_EQ(ReadFile(root_ / "config/production.yaml"), "broker: changed\n");
}

TEST_F(RestoreTest, OneTableLeavesTheOthersInodesUntouched) {
  Backup();
  WriteFile(root_ / "data/lake/option_legs/junk", "x");
  auto others = FolderState(root_ / "data/lake/position_updates");
  auto others2 = FolderState(root_ / "data/lake/strategy_executions");
  auto r = Run({"restore", "--yes", "--table", "option_legs"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_FALSE(fs::exists(root_ / "data/lake/option_legs/junk"));
  EXPECT_EQ(FolderState(root_ / "data/lake/position_updates"), others);
  EXPECT_EQ(FolderState(root_ / "data/lake/strategy_executions"), others2);
  auto bad = Run({"restore", "--yes", "--table", "nope"});
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_NE(bad.err.find("has no table nope"), std::string::npos) << bad.err;
}

TEST_F(RestoreTest, FailingVerifyHookRollsBackByItself) {
  Hooks(
      "hooks:\n  stop: [\"echo stop >> hooks.log\"]\n  start: [\"echo start >> hooks.log\"]\n"
      "  reconcile: [\"echo reconcile >> hooks.log\"]\n  verify: [\"echo verify >> hooks.log; exit "
      "3\"]\n");
  Backup();
  Damage();
  auto damaged = Lake();
  std::string config_before = ReadFile(root_ / "config/production.yaml");
  std::string env_before = ReadFile(root_ / ".env");
  auto r = Run({"restore", "--yes", "--with-config"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("verify hook"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("are back"), std::string::npos) << r.err;
  EXPECT_EQ(Lines(r.err).size(), 1u) << r.err;
  EXPECT_EQ(Lake(), damaged);
  EXPECT_EQ(ReadFile(root_ / "config/production.yaml"), config_before);
  EXPECT_EQ(ReadFile(root_ / ".env"), env_before);
  // stop, reconcile, start, verify (fails), then stop and start again around the rollback.
  EXPECT_EQ(Lines(ReadFile(root_ / "hooks.log")),
            (std::vector<std::string>{"stop", "reconcile", "start", "verify", "stop", "start"}));
  // Nothing is left to roll back: the failed restore cleaned up after itself.
  EXPECT_NE(Run({"rollback"}).exit_code, 0);
}

TEST_F(RestoreTest, FailingStopHookChangesNothing) {
  Hooks("hooks:\n  stop: [\"exit 1\"]\n  start: [\"echo start >> hooks.log\"]\n");
  Backup();
  Damage();
  auto damaged = Lake();
  auto r = Run({"restore", "--yes"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("stop hook"), std::string::npos) << r.err;
  EXPECT_EQ(Lake(), damaged);
  EXPECT_EQ(ReadFile(root_ / "hooks.log"), "start\n");
}

TEST_F(RestoreTest, KilledRestoreLeavesOldOrNewStateAndIsRecovered) {
  Hooks("hooks:\n  start: [\"true\"]\n");
  // The lake and the config files: with --with-config a restore swaps three items.
  auto state = [&]() {
    auto s = Lake();
    s["config"] = ReadFile(root_ / "config/production.yaml");
    s[".env"] = ReadFile(root_ / ".env");
    return s;
  };
  auto original = state();
  Backup();
  Damage();
  auto damaged = state();
  for (std::string point : {"before-staging", "after-staging", "before-swap", "swap-1", "swap-2",
                            "swap-3", "after-swap", "hook-start"}) {
    SCOPED_TRACE(point);
    auto r = Run({"restore", "--yes", "--with-config"}, {{"LAKEVAULT_TEST_KILL_AT", point}});
    ASSERT_NE(r.exit_code, 0) << "the kill point was not reached";
    // The next run finds the journal, puts the old state back, and completes.
    auto again = Run({"restore", "--yes", "--with-config"});
    ASSERT_EQ(again.exit_code, 0) << again.err;
    EXPECT_EQ(state(), original);
    // Back to the damaged state for the next kill point.
    ASSERT_EQ(Run({"rollback"}).exit_code, 0);
    ASSERT_EQ(state(), damaged);
  }
  // A kill followed by `rollback` also recovers, to the state before the interrupted restore.
  auto r = Run({"restore", "--yes", "--with-config"}, {{"LAKEVAULT_TEST_KILL_AT", "swap-2"}});
  EXPECT_NE(r.exit_code, 0);
  auto rb = Run({"rollback"});
  ASSERT_EQ(rb.exit_code, 0) << rb.err;
  EXPECT_NE(rb.out.find("interrupted restore"), std::string::npos) << rb.out;
  EXPECT_EQ(state(), damaged);
}

TEST_F(RestoreTest, LakeIsOldOrNewAtTheInstantOfAKill) {
  auto original = Lake();
  Backup();
  Damage();
  auto damaged = Lake();
  for (std::string point : {"before-swap", "swap-1", "after-swap"}) {
    SCOPED_TRACE(point);
    auto r = Run({"restore", "--yes"}, {{"LAKEVAULT_TEST_KILL_AT", point}});
    ASSERT_NE(r.exit_code, 0);
    auto now = Lake();
    EXPECT_TRUE(now == damaged || now == original)
        << "half-restored lake after a kill at " << point;
    ASSERT_EQ(Run({"rollback"}).exit_code, 0);
    ASSERT_EQ(Lake(), damaged);
  }
}

TEST_F(RestoreTest, AtTimePicksTheNewestBackupBefore) {
  std::string first = Backup("2026-11-20T17:00:00Z");
  WriteFile(root_ / "data/lake/option_legs/later.txt", "later");
  std::string second = Backup("2026-11-21T17:00:00Z");
  auto r = Run({"restore", "--yes", "--json", "--at", "2026-11-21T09:00:00Z"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(nlohmann::json::parse(r.out)["id"], first);
  EXPECT_FALSE(fs::exists(root_ / "data/lake/option_legs/later.txt"));
  auto none = Run({"restore", "--yes", "--at", "2020-01-01T00:00:00Z"});
  EXPECT_NE(none.exit_code, 0);
  EXPECT_NE(none.err.find("at or before"), std::string::npos) << none.err;
}

TEST_F(RestoreTest, TableToAnOlderVersionByANewCommit) {
  // simple_table has versions 0..4; restore it to version 2.
  CopyTree(fs::path(CorpusDir()) / "simple_table", root_ / "data/lake/trades");
  Backup();
  auto r = Run({"restore", "--yes", "--table", "trades", "--version", "2"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::string restored = (root_ / "data/lake/trades").string();
  auto now = delta::LoadSnapshot(Env::Default(), restored);
  ASSERT_TRUE(now.ok()) << now.message();
  EXPECT_EQ(now->version, 5);  // history kept, one RESTORE commit on top
  auto then = delta::LoadSnapshot(Env::Default(), (fs::path(CorpusDir()) / "simple_table").string(),
                                  std::optional<int64_t>(2));
  ASSERT_TRUE(then.ok());
  std::set<std::string> a, b;
  for (const auto& f : now->files) a.insert(f.path);
  for (const auto& f : then->files) b.insert(f.path);
  EXPECT_EQ(a, b);
  EXPECT_TRUE(fs::exists(root_ / "data/lake/trades/_delta_log/00000000000000000004.json"));
  auto check = Run({"check", "--table", "trades"});
  EXPECT_EQ(check.exit_code, 0) << check.out << check.err;
}

TEST_F(RestoreTest, ToAnotherFolderRunsNoHooks) {
  Hooks("hooks:\n  stop: [\"echo stop >> hooks.log\"]\n");
  auto before = Lake();
  Backup();
  fs::path dest = tmp_.path() / "testenv";
  auto r = Run({"restore", "--to", dest.string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(TreeDigest(dest / "data/lake"), before);
  EXPECT_FALSE(fs::exists(root_ / "hooks.log"));
  auto again = Run({"restore", "--to", dest.string()});
  EXPECT_NE(again.exit_code, 0);
  EXPECT_NE(again.err.find("not empty"), std::string::npos);
}

TEST_F(RestoreTest, CorruptBackupIsRefusedBeforeTouchingTheLake) {
  std::string id = Backup();
  Damage();
  auto damaged = Lake();
  fs::path archive = root_ / "backups" / (id + ".tar.gz");
  std::string bytes = ReadFile(archive);
  bytes[bytes.size() / 2] ^= 0x40;
  WriteFile(archive, bytes);
  fs::permissions(archive, fs::perms::owner_read | fs::perms::owner_write);
  auto r = Run({"restore", "--yes"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("nothing was changed"), std::string::npos) << r.err;
  EXPECT_EQ(Lake(), damaged);
  EXPECT_FALSE(fs::exists(root_ / "data/.lakevault-restore") &&
               fs::exists(root_ / "data/.lakevault-restore/run_x"));
}

TEST_F(RestoreTest, DrillPassesAndFailsNamingTheFile) {
  Backup();
  auto r = Run({"drill", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto doc = nlohmann::json::parse(r.out);
  EXPECT_TRUE(doc["ok"].get<bool>());
  EXPECT_TRUE(doc["rto_ok"].get<bool>());
  EXPECT_EQ(doc["tables"].size(), 3u);
  for (auto& t : doc["tables"]) EXPECT_EQ(t["rows"], t["expected_rows"]);
  EXPECT_GT(doc["steps"].size(), 2u);
  EXPECT_GT(doc["rto_seconds"].get<double>(), 0.0);
  // The report is stored; status reads it.
  auto st = Run({"status", "--json"});
  EXPECT_EQ(st.exit_code, 0) << st.out;
  auto sdoc = nlohmann::json::parse(st.out);
  EXPECT_TRUE(sdoc["rpo_ok"].get<bool>());
  EXPECT_TRUE(sdoc["last_drill"]["ok"].get<bool>());

  // An RTO objective the drill cannot meet fails it.
  Hooks("objectives: {rto: 0s, rpo: 1d}\n");
  auto slow = Run({"drill"});
  EXPECT_NE(slow.exit_code, 0);
  EXPECT_NE(slow.err.find("exceeds the RTO"), std::string::npos) << slow.err;
  Hooks("");

  // Damage one member's bytes inside an uncompressed archive: the drill names the file.
  auto b = Run({"backup", "--full", "--compress", "none", "--json"},
               {{"LAKEVAULT_NOW", "2030-01-01T00:00:00Z"}});
  ASSERT_EQ(b.exit_code, 0) << b.err;
  fs::path archive = nlohmann::json::parse(b.out)["archive"].get<std::string>();
  std::string bytes = ReadFile(archive);
  std::string needle = "part-00000-fae5310a";  // option_legs' data file: find its content
  auto at = bytes.find("option_legs/part-00000-fae5310a");
  ASSERT_NE(at, std::string::npos);
  size_t data = (at / 512 + 1) * 512 + 100;  // inside the member's first data block
  bytes[data] ^= 0x01;
  WriteFile(archive, bytes);
  auto bad = Run({"drill"});
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_NE(bad.err.find(needle), std::string::npos) << bad.err;
}

TEST_F(RestoreTest, StatusExitCodesFollowNagios) {
  auto none = Run({"status"});
  EXPECT_EQ(none.exit_code, 2) << none.out;
  Backup("2026-11-24T12:00:00Z");
  ASSERT_EQ(Run({"drill"}).exit_code, 0);
  auto ok = Run({"status", "--json"}, {{"LAKEVAULT_NOW", "2026-11-24T13:00:00Z"}});
  EXPECT_EQ(ok.exit_code, 0) << ok.out;
  auto warn = Run({"status", "--json"}, {{"LAKEVAULT_NOW", "2026-11-25T18:00:00Z"}});
  EXPECT_EQ(warn.exit_code, 1) << warn.out;
  EXPECT_FALSE(nlohmann::json::parse(warn.out)["rpo_ok"].get<bool>());
  auto crit = Run({"status"}, {{"LAKEVAULT_NOW", "2026-11-27T18:00:00Z"}});
  EXPECT_EQ(crit.exit_code, 2) << crit.out;
  EXPECT_NE(crit.out.find("CRITICAL"), std::string::npos);
}

}  // namespace
}  // namespace lakevault::testing

namespace lakevault::testing {
namespace {

TEST_F(RestoreTest, HostileArchivesAreRefusedBeforeAnythingIsWritten) {
  std::string id = Backup("2026-11-20T17:00:00Z");
  Damage();
  auto damaged = Lake();
  std::string maker = SourceDir() + "/tests/data/make_hostile_backup.py";
  int n = 0;
  for (std::string kind :
       {"dotdot", "absolute", "manifest-outside", "symlink-escape", "hardlink", "device"}) {
    SCOPED_TRACE(kind);
    std::string hostile = "backup_20261121_17000" + std::to_string(n++);
    auto made = RunShell("python3 " + maker + " " + (root_ / "backups").string() + " " + id + " " +
                         hostile + " " + kind);
    ASSERT_EQ(made.exit_code, 0) << made.err;
    auto r = Run({"restore", hostile, "--yes"});
    EXPECT_NE(r.exit_code, 0) << r.out;
    EXPECT_EQ(Lines(r.err).size(), 1u) << r.err;
    EXPECT_EQ(Lake(), damaged) << r.err;
    auto to = Run({"restore", hostile, "--to", (tmp_.path() / ("to-" + kind)).string()});
    EXPECT_NE(to.exit_code, 0) << to.out;
    auto v = Run({"verify", hostile});
    EXPECT_NE(v.exit_code, 0) << kind << " passed verification";
    auto drill = Run({"drill", hostile});
    EXPECT_NE(drill.exit_code, 0);
    // Nothing was written outside the target.
    EXPECT_FALSE(fs::exists(tmp_.path() / "evil-dotdot.txt"));
    EXPECT_FALSE(fs::exists(root_.parent_path() / "evil-dotdot.txt"));
    EXPECT_FALSE(fs::exists(root_.parent_path() / "evil-outside.txt"));
    EXPECT_FALSE(fs::exists("/tmp/lakevault-evil-absolute.txt"));
    EXPECT_FALSE(fs::exists("/tmp/lakevault-evil-symlink.txt"));
    EXPECT_FALSE(fs::exists(tmp_.path() / ("to-" + kind)));
    // Nothing left to roll back: the lake was never swapped.
    EXPECT_NE(Run({"rollback"}).exit_code, 0);
  }
}

}  // namespace
}  // namespace lakevault::testing
