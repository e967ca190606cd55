// Delta-aware behaviour end to end: `check` on the corpus and on broken tables, backups pinned
// at a version, and backups taken while a writer keeps committing.
#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <thread>

#include "support/test_util.h"

namespace fs = std::filesystem;

namespace lakevault::testing {
namespace {

nlohmann::json CheckJson(const std::string& lake, const std::string& table = "") {
  std::vector<std::string> args = {"check", "--lake", lake, "--json"};
  if (!table.empty()) {
    args.push_back("--table");
    args.push_back(table);
  }
  auto r = RunLakevault(args, lake);
  auto doc = nlohmann::json::parse(r.out, nullptr, false);
  EXPECT_FALSE(doc.is_discarded()) << r.out << r.err;
  EXPECT_EQ(r.exit_code == 0, doc.value("healthy", false)) << r.err;
  return doc;
}

}  // namespace

TEST(CheckCommand, EveryCorpusTableGivesTheExpectedRowsAndVerdict) {
  auto doc = CheckJson(CorpusDir());
  std::map<std::string, nlohmann::json> by_name;
  for (auto& t : doc["tables"]) by_name[t["name"]] = t;
  size_t compared = 0;
  for (const auto& line : Lines(ReadFile(fs::path(CorpusDir()) / "INDEX.tsv"))) {
    std::vector<std::string> col;
    std::stringstream ss(line);
    for (std::string c; std::getline(ss, c, '\t');) col.push_back(c);
    if (col[0] == "table") continue;
    SCOPED_TRACE(col[0]);
    ASSERT_TRUE(by_name.count(col[0]));
    const auto& t = by_name[col[0]];
    EXPECT_EQ(t["version"].get<int64_t>(), std::stoll(col[1]));
    EXPECT_EQ(t["live_files"].get<int64_t>(), std::stoll(col[3]));
    if (col[5] != "unknown") {
      EXPECT_EQ(t["rows"], nlohmann::json(std::stoll(col[5])));
      ++compared;
    }
    int missing = std::stoi(col[6]);
    EXPECT_EQ(t["missing_files"].size(), static_cast<size_t>(missing));
    EXPECT_EQ(t["healthy"].get<bool>(), missing == 0);
    // Rows unknown from stats come from the Parquet footers when the files are all there.
    if (col[5] == "unknown" && missing == 0) {
      EXPECT_TRUE(t["rows"].is_number_integer()) << t.dump();
      EXPECT_EQ(t["rows_source"], "footers");
    }
  }
  EXPECT_GT(compared, 30u);
}

class BrokenTableTest : public ::testing::Test {
 protected:
  void SetUp() override {
    lake_ = tmp_.path() / "lake";
    CopyTree(fs::path(CorpusDir()) / "checkpoint-cdf-table", lake_ / "t");
    CopyTree(fs::path(CorpusDir()) / "table-with-dv-small", lake_ / "good");
  }
  nlohmann::json Table() {
    auto doc = CheckJson(lake_.string(), "t");
    return doc["tables"][0];
  }
  TempDir tmp_;
  fs::path lake_;
};

TEST_F(BrokenTableTest, TruncatedCommitIsNamed) {
  auto commit = lake_ / "t/_delta_log" / CommitName(5);
  std::string text = ReadFile(commit);
  WriteFile(commit, text.substr(0, text.size() / 2));
  auto t = Table();
  EXPECT_FALSE(t["healthy"].get<bool>());
  ASSERT_EQ(t["unreadable"].size(), 1u);
  std::string msg = t["unreadable"][0];
  EXPECT_NE(msg.find(CommitName(5)), std::string::npos) << msg;
  EXPECT_NE(msg.find("malformed JSON"), std::string::npos) << msg;
}

TEST_F(BrokenTableTest, CorruptCheckpointIsNamed) {
  // checkpoint-cdf-table has no commits before its checkpoint: without it nothing resolves.
  auto cp = lake_ / "t/_delta_log/00000000000000000003.checkpoint.parquet";
  std::string bytes = ReadFile(cp);
  WriteFile(cp, bytes.substr(0, bytes.size() - 20));
  auto t = Table();
  EXPECT_FALSE(t["healthy"].get<bool>());
  ASSERT_EQ(t["unreadable"].size(), 1u);
  std::string msg = t["unreadable"][0];
  EXPECT_NE(msg.find("00000000000000000003.checkpoint.parquet"), std::string::npos) << msg;
  EXPECT_NE(msg.find("not a Parquet file"), std::string::npos) << msg;

  // With every commit from 0 present, the snapshot resolves from them; the damage is named.
  CopyTree(fs::path(CorpusDir()) / "simple_table_with_checkpoint", lake_ / "s");
  auto cp10 = lake_ / "s/_delta_log/00000000000000000010.checkpoint.parquet";
  std::string b10 = ReadFile(cp10);
  b10[b10.size() / 2] ^= 0x55;
  b10[b10.size() - 9] ^= 0x55;  // the footer length
  WriteFile(cp10, b10);
  auto s2 = CheckJson(lake_.string(), "s")["tables"][0];
  EXPECT_EQ(s2["version"], 10);
  EXPECT_EQ(s2["checkpoint_version"], -1);
  EXPECT_EQ(s2["live_files"], 11);
  bool named = false;
  for (auto& w : s2["warnings"])
    named = named || w.get<std::string>().find("00000000000000000010.checkpoint.parquet") !=
                         std::string::npos;
  EXPECT_TRUE(named) << s2.dump();
}

TEST_F(BrokenTableTest, LastCheckpointPointingNowhereIsReported) {
  WriteFile(lake_ / "t/_delta_log/_last_checkpoint", "{\"version\":4,\"size\":10}\n");
  auto t = Table();
  EXPECT_EQ(t["version"], 5);
  ASSERT_EQ(t["warnings"].size(), 1u);
  EXPECT_NE(t["warnings"][0].get<std::string>().find("points to version 4"), std::string::npos);
}

TEST_F(BrokenTableTest, MissingDataFileIsNamedAndBackupRefusesIt) {
  auto doc = CheckJson(lake_.string(), "t");
  std::string victim = doc["tables"][0]["path"].get<std::string>();
  // Remove one live file (the corpus's independent reader lists them).
  auto expected = nlohmann::json::parse(
      ReadFile(fs::path(CorpusDir()) / "_expected/checkpoint-cdf-table.json"));
  std::string live = expected["files"][0];
  ASSERT_TRUE(fs::remove(lake_ / "t" / live));
  auto t = Table();
  ASSERT_EQ(t["missing_files"].size(), 1u);
  EXPECT_EQ(t["missing_files"][0], live);
  EXPECT_FALSE(t["healthy"].get<bool>());

  // A backup refuses the table, names the file, and leaves the backup folder untouched.
  fs::path project = tmp_.path() / "project";
  fs::create_directories(project / "data");
  fs::rename(lake_, project / "data/lake");
  auto first = RunLakevault({"backup", "--path", "b"}, project.string());
  EXPECT_NE(first.exit_code, 0);
  EXPECT_NE(first.err.find(live), std::string::npos) << first.err;
  EXPECT_NE(first.err.find("table t version 5"), std::string::npos) << first.err;
  EXPECT_EQ(Lines(first.err).size(), 1u) << first.err;
  EXPECT_FALSE(fs::exists(project / "b") && !fs::is_empty(project / "b") &&
               fs::directory_iterator(project / "b")->path().extension() == ".gz");
  // --allow-missing takes what exists and marks the backup incomplete.
  auto second =
      RunLakevault({"backup", "--path", "b", "--allow-missing", "--json"}, project.string());
  ASSERT_EQ(second.exit_code, 0) << second.err;
  auto list = RunLakevault({"list", "--path", "b", "--json"}, project.string());
  ASSERT_EQ(list.exit_code, 0) << list.err;
  EXPECT_NE(list.out.find(live), std::string::npos) << list.out;
}

TEST_F(BrokenTableTest, TableWithNoCommits) {
  fs::create_directories(lake_ / "empty/_delta_log");
  auto doc = CheckJson(lake_.string(), "empty");
  auto t = doc["tables"][0];
  EXPECT_FALSE(t["healthy"].get<bool>());
  ASSERT_EQ(t["unreadable"].size(), 1u);
  EXPECT_NE(t["unreadable"][0].get<std::string>().find("no commits"), std::string::npos);
  // The healthy table next to it is reported healthy.
  EXPECT_TRUE(CheckJson(lake_.string(), "good")["healthy"].get<bool>());
}

TEST(DeltaBackup, PinnedVersionExcludesLaterLogEntries) {
  TempDir tmp;
  fs::path project = tmp.path();
  DeltaWriter w(project / "data/lake/trades");
  for (int i = 0; i < 5; ++i) w.Append();
  auto r = RunLakevault({"backup", "--json", "--no-prune"}, project.string());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto doc = nlohmann::json::parse(r.out);
  EXPECT_EQ(doc["tables"][0]["version"], w.version());
  // Adds at versions 1..5 with 2..6 rows; version 4 removed the first file.
  EXPECT_EQ(doc["tables"][0]["rows"], 3 + 4 + 5 + 6);
  // A commit written after the backup is not in it; the backup's log ends at its version.
  w.Append();
  fs::path out = tmp.path() / "x";
  fs::create_directories(out);
  ASSERT_EQ(
      RunShell("tar -xzf " + doc["archive"].get<std::string>() + " -C " + out.string()).exit_code,
      0);
  EXPECT_TRUE(fs::exists(out / "data/lake/trades/_delta_log" / CommitName(5)));
  EXPECT_FALSE(fs::exists(out / "data/lake/trades/_delta_log" / CommitName(6)));
  // --snapshot-only leaves out the removed file; the default keeps it for time travel.
  EXPECT_TRUE(fs::exists(out / "data/lake/trades/day=2026-11-11/part-1.parquet"));
  auto s = RunLakevault({"backup", "--json", "--no-prune", "--snapshot-only"}, project.string(),
                        {{"LAKEVAULT_NOW", "2030-01-01T00:00:00Z"}});
  ASSERT_EQ(s.exit_code, 0) << s.err;
  auto sdoc = nlohmann::json::parse(s.out);
  fs::path out2 = tmp.path() / "y";
  fs::create_directories(out2);
  ASSERT_EQ(
      RunShell("tar -xzf " + sdoc["archive"].get<std::string>() + " -C " + out2.string()).exit_code,
      0);
  EXPECT_FALSE(fs::exists(out2 / "data/lake/trades/day=2026-11-11/part-1.parquet"));
  EXPECT_TRUE(fs::exists(out2 / "data/lake/trades/day=2026-11-12/part-2.parquet"));
  EXPECT_TRUE(CheckJson((out2 / "data/lake").string())["healthy"].get<bool>());
}

TEST(DeltaBackup, BackupsWhileAWriterCommitsRestoreToCompleteVersions) {
  TempDir tmp;
  fs::path project = tmp.path() / "project";
  fs::path table = project / "data/lake/trades";
  DeltaWriter w(table);
  for (int i = 0; i < 3; ++i) w.Append();
  std::atomic<bool> stop{false};
  std::thread writer([&] {
    // Bounded: without checkpoints every backup replays the whole log, so an unbounded log
    // makes the test quadratic (and slow under the sanitizers).
    while (!stop && w.version() < 400) {
      w.Append();
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  });
  ThreadJoiner joiner{stop, writer};
  std::vector<std::string> archives;
  std::vector<int64_t> versions;
  for (int i = 0; i < 20; ++i) {
    // Distinct ids: one fake second per backup.
    std::string now =
        "2026-11-24T12:00:" + std::string(i < 10 ? "0" : "") + std::to_string(i) + "Z";
    auto r = RunLakevault({"backup", "--full", "--json", "--no-prune", "--no-verify"},
                          project.string(), {{"LAKEVAULT_NOW", now}});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    auto doc = nlohmann::json::parse(r.out);
    archives.push_back(doc["archive"]);
    versions.push_back(doc["tables"][0]["version"]);
  }
  stop = true;
  writer.join();
  EXPECT_GT(versions.back(), versions.front()) << "the writer did not commit during the backups";
  for (size_t i = 0; i < archives.size(); ++i) {
    SCOPED_TRACE(archives[i]);
    fs::path out = tmp.path() / ("restore" + std::to_string(i));
    fs::create_directories(out);
    ASSERT_EQ(RunShell("tar -xzf " + archives[i] + " -C " + out.string()).exit_code, 0);
    fs::path lake = out / "data/lake";
    auto doc = CheckJson(lake.string());
    ASSERT_EQ(doc["tables"].size(), 1u);
    auto t = doc["tables"][0];
    EXPECT_TRUE(t["healthy"].get<bool>()) << t.dump();
    EXPECT_EQ(t["version"].get<int64_t>(), versions[i]);
    // The log ends at the pinned version: nothing past it came along.
    EXPECT_FALSE(fs::exists(lake / "trades/_delta_log" / CommitName(versions[i] + 1)));
    EXPECT_TRUE(fs::exists(lake / "trades/_delta_log" / CommitName(versions[i])));
  }
  auto v = RunLakevault({"verify", "--all"}, project.string());
  EXPECT_EQ(v.exit_code, 0) << v.out << v.err;
}

}  // namespace lakevault::testing
