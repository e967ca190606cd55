// Incremental backups over simulated trading days, chains, retention and interrupted prunes.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <set>

#include "core/env.h"
#include "manifest/catalog.h"
#include "materialize/materialize.h"
#include "support/test_util.h"

namespace fs = std::filesystem;

namespace lakevault::testing {
namespace {

// A small V6-like project whose two Delta tables grow by one data file and one commit per
// trading day, as a Delta writer does it: data file first, then the commit.
class TradingLake {
 public:
  explicit TradingLake(fs::path root) : root_(std::move(root)) {
    for (const char* t : {"position_updates", "option_legs"}) {
      fs::path log = root_ / "data/lake" / t / "_delta_log";
      fs::create_directories(log);
      WriteFile(
          log / "00000000000000000000.json",
          R"({"protocol":{"minReaderVersion":1,"minWriterVersion":2}})"
          "\n"
          R"({"metaData":{"id":")" +
              std::string(t) +
              R"(","format":{"provider":"parquet","options":{}},"schemaString":"{\"type\":\"struct\",\"fields\":[]}","partitionColumns":["date"],"configuration":{},"createdTime":0}})"
              "\n");
      versions_[t] = 0;
    }
    WriteFile(root_ / "config/production.yaml", "max_positions: 10\n");
    WriteFile(root_ / ".env", "IB_ACCOUNT=DU000\n");
  }

  // Returns the bytes of new data written.
  int64_t AddDay(int day, size_t bytes_per_table) {
    int64_t added = 0;
    std::string date = Date(day);
    for (auto& [table, version] : versions_) {
      std::string rel = "date=" + date + "/part-" + std::to_string(day) + "-" + table + ".parquet";
      std::string data = Random(bytes_per_table, day * 7 + static_cast<int>(table.size()));
      WriteFile(root_ / "data/lake" / table / rel, data);
      added += static_cast<int64_t>(data.size());
      Commit(table,
             R"({"add":{"path":")" + rel + R"(","partitionValues":{"date":")" + date +
                 R"("},"size":)" + std::to_string(data.size()) +
                 R"(,"modificationTime":0,"dataChange":true,"stats":"{\"numRecords\":10}"}})");
      files_[table].push_back(rel);
    }
    return added;
  }

  // Removes the first `n` files of every table from the table and deletes them, as VACUUM does.
  void Vacuum(size_t n) {
    for (auto& [table, files] : files_) {
      std::string actions;
      for (size_t i = 0; i < n && i < files.size(); ++i)
        actions += R"({"remove":{"path":")" + files[i] +
                   R"(","deletionTimestamp":0,"dataChange":true}})"
                   "\n";
      Commit(table, actions);
      for (size_t i = 0; i < n && i < files.size(); ++i)
        fs::remove(root_ / "data/lake" / table / files[i]);
      files.erase(files.begin(), files.begin() + static_cast<long>(std::min(n, files.size())));
    }
  }

  static std::string Date(int day) {
    char buf[16];
    snprintf(buf, sizeof buf, "2026-01-%02d", day);
    return day <= 31 ? buf : "2026-02-" + std::to_string(day - 31);
  }
  static std::string Now(int day) {
    // Mon 2026-01-05 is day 1 of trading; every day counts here, at 17:00 UTC.
    int d = day + 4;
    int month = 1;
    if (d > 31) {
      d -= 31;
      month = 2;
    }
    if (month == 2 && d > 28) {
      d -= 28;
      month = 3;
    }
    char buf[32];
    snprintf(buf, sizeof buf, "2026-%02d-%02dT17:00:00Z", month, d);
    return buf;
  }

 private:
  void Commit(const std::string& table, const std::string& actions) {
    int64_t v = ++versions_[table];
    char name[32];
    snprintf(name, sizeof name, "%020lld.json", static_cast<long long>(v));
    fs::path log = root_ / "data/lake" / table / "_delta_log";
    WriteFile(log / (std::string(name) + ".tmp"), actions + "\n");
    fs::rename(log / (std::string(name) + ".tmp"), log / name);
  }
  static std::string Random(size_t n, int seed) {
    std::mt19937_64 rng(static_cast<uint64_t>(seed));
    std::string s(n, '\0');
    for (size_t i = 0; i < n; i += 8) {
      uint64_t v = rng();
      memcpy(&s[i], &v, std::min<size_t>(8, n - i));
    }
    return s;
  }

  fs::path root_;
  std::map<std::string, int64_t> versions_;
  std::map<std::string, std::vector<std::string>> files_;
};

std::map<std::string, std::string> ProjectDigest(const fs::path& root) {
  std::map<std::string, std::string> d;
  for (const auto& [k, v] : TreeDigest(root / "data/lake")) d["data/lake/" + k] = v;
  for (const auto& [k, v] : TreeDigest(root / "config")) d["config/" + k] = v;
  d[".env"] = ReadFile(root / ".env");
  return d;
}

std::map<std::string, std::string> RestoredDigest(const fs::path& root) {
  auto d = ProjectDigest(root);
  return d;
}

class IncrementalTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = tmp_.path() / "v6";
    fs::create_directories(root_);
    lake_ = std::make_unique<TradingLake>(root_);
  }
  RunResult Backup(int day, std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {"backup", "--json"};
    args.insert(args.end(), extra.begin(), extra.end());
    return RunLakevault(args, root_.string(), {{"LAKEVAULT_NOW", TradingLake::Now(day)}});
  }
  TempDir tmp_;
  fs::path root_;
  std::unique_ptr<TradingLake> lake_;
};

TEST_F(IncrementalTest, ThirtyTradingDaysRestoreExactlyAndCostWhatTheDayAdded) {
  // Days 1..30: new data every day, a VACUUM on day 15, a config change on day 20. The
  // configured cadence (a full every 7 days) decides the kind.
  std::map<std::string, std::map<std::string, std::string>> expected;  // id -> digest
  int fulls = 0, incrementals = 0;
  for (int day = 1; day <= 30; ++day) {
    int64_t added = lake_->AddDay(day, 200 * 1024);
    if (day == 15) lake_->Vacuum(3);
    if (day == 20) WriteFile(root_ / "config/production.yaml", "max_positions: 12\n");
    auto r = Backup(day);
    ASSERT_EQ(r.exit_code, 0) << "day " << day << ": " << r.err;
    auto doc = nlohmann::json::parse(r.out);
    std::string id = doc["id"];
    expected[id] = ProjectDigest(root_);
    if (doc["kind"] == "full") {
      ++fulls;
      continue;
    }
    ++incrementals;
    EXPECT_FALSE(doc["parent"].is_null());
    // Only what the day wrote is stored: two data files, two commits (and the config on day 20).
    int64_t archive = doc["archive_bytes"];
    EXPECT_GE(archive, added) << "day " << day;
    EXPECT_LE(archive, added + added / 33 + 12 * 1024) << "day " << day;  // ~3% + manifest
    EXPECT_EQ(doc["files_stored"].get<int>(), day == 20 ? 5 : day == 15 ? 6 : 4) << "day " << day;
  }
  EXPECT_EQ(fulls, 5);  // days 1, 8, 15, 22, 29
  EXPECT_EQ(incrementals, 25);

  auto list = nlohmann::json::parse(RunLakevault({"list", "--json"}, root_.string()).out);
  ASSERT_EQ(list["backups"].size(), 30u);
  for (const auto& b : list["backups"]) {
    if (b["kind"] == "incremental") {
      EXPECT_FALSE(b["parent"].is_null());
    }
  }

  auto verify = RunLakevault({"verify", "--all"}, root_.string());
  EXPECT_EQ(verify.exit_code, 0) << verify.err;

  auto catalog = Catalog::Load((root_ / "backups").string());
  ASSERT_TRUE(catalog.ok());
  // The catalogue holds headers only; the lists are read from the sidecars when asked for.
  for (const auto& e : catalog->entries()) {
    ASSERT_TRUE(e.manifest) << e.id;
    EXPECT_TRUE(e.manifest->files.empty()) << e.id;
    auto with_files = LoadManifestFiles(*catalog, e);
    ASSERT_TRUE(with_files.ok()) << with_files.message();
    EXPECT_GT(with_files->listed_files, 0) << e.id;
    EXPECT_EQ(static_cast<int64_t>(with_files->files.size()), e.manifest->listed_files) << e.id;
    EXPECT_EQ(with_files->TotalBytes(), e.manifest->TotalBytes()) << e.id;
    EXPECT_EQ(ManifestToJson(*with_files), ReadFile(root_ / "backups" / (e.id + ".manifest.json")))
        << e.id;
  }
  for (const auto& [id, digest] : expected) {
    TempDir out;
    auto m = MaterializeBackup(Env::Default(), *catalog, id, out.str());
    ASSERT_TRUE(m.ok()) << id << ": " << m.message();
    EXPECT_EQ(RestoredDigest(out.path()), digest) << id;
  }
}

TEST_F(IncrementalTest, IncrementalWithMissingParentIsRefusedUnlessFullIfNeeded) {
  lake_->AddDay(1, 4096);
  ASSERT_EQ(Backup(1, {"--full"}).exit_code, 0);
  lake_->AddDay(2, 4096);
  auto first = nlohmann::json::parse(Backup(2, {"--incremental"}).out);
  ASSERT_EQ(first["kind"], "incremental");
  // The full backup's archive is deleted by hand.
  for (const auto& e : fs::directory_iterator(root_ / "backups"))
    if (e.path().filename().string() == "backup_20260105_170000.tar.gz") fs::remove(e.path());
  lake_->AddDay(3, 4096);
  auto before = FolderState(root_ / "backups");
  auto r = Backup(3, {"--incremental"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("parent"), std::string::npos) << r.err;
  EXPECT_EQ(Lines(r.err).size(), 1u) << r.err;
  before.erase(".lakevault.lock");
  auto after = FolderState(root_ / "backups");
  after.erase(".lakevault.lock");
  EXPECT_EQ(after, before);
  // verify of the orphaned incremental names the missing parent.
  auto v = RunLakevault({"verify", first["id"]}, root_.string());
  EXPECT_NE(v.exit_code, 0);
  EXPECT_NE(v.err.find("backup_20260105_170000"), std::string::npos) << v.err;

  auto full =
      nlohmann::json::parse(Backup(3, {"--incremental", "--full-if-needed", "--no-prune"}).out);
  EXPECT_EQ(full["kind"], "full");
}

TEST_F(IncrementalTest, CorruptedParentIsRefused) {
  lake_->AddDay(1, 4096);
  ASSERT_EQ(Backup(1, {"--full"}).exit_code, 0);
  fs::path archive = root_ / "backups/backup_20260105_170000.tar.gz";
  ASSERT_TRUE(fs::exists(archive));
  {
    // Flipped, not overwritten: the compressed byte there varies with the files' mtimes and
    // was sometimes the very value written.
    std::fstream f(archive, std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(100);
    char was = 0;
    f.get(was);
    f.seekp(100);
    f.put(static_cast<char>(was ^ 0x5a));
  }
  EXPECT_NE(RunLakevault({"verify"}, root_.string()).exit_code, 0);  // records the failure
  lake_->AddDay(2, 4096);
  auto r = Backup(2, {"--incremental"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("failed its last verification"), std::string::npos) << r.err;
}

TEST_F(IncrementalTest, PruneKilledMidwayLosesNoKeptBackupAndLeavesNoTrap) {
  // 20 daily backups (fulls on days 1, 8, 15), then a policy that keeps only the last 3.
  for (int day = 1; day <= 20; ++day) {
    lake_->AddDay(day, 2048);
    ASSERT_EQ(Backup(day, {"--no-prune"}).exit_code, 0);
  }
  WriteFile(root_ / "lakevault.yaml", "retention: {days: 0, keep_last: 3}\n");
  auto plan = nlohmann::json::parse(RunLakevault({"prune", "--dry-run", "--json"}, root_.string(),
                                                 {{"LAKEVAULT_NOW", TradingLake::Now(21)}})
                                        .out);
  std::set<std::string> keep;
  for (const auto& b : plan["backups"])
    if (b["keep"]) keep.insert(b["id"]);
  // The last three (days 18-20) and their chain back to the full of day 15.
  EXPECT_EQ(keep.size(), 6u);
  EXPECT_TRUE(keep.count("backup_20260119_170000"));  // day 15, full

  auto killed = RunLakevault(
      {"prune"}, root_.string(),
      {{"LAKEVAULT_NOW", TradingLake::Now(21)}, {"LAKEVAULT_TEST_KILL_AFTER_DELETES", "5"}});
  EXPECT_EQ(killed.exit_code, 128 + 9);
  auto list = RunLakevault({"list", "--json"}, root_.string());
  ASSERT_EQ(list.exit_code, 0) << list.err;
  std::set<std::string> present;
  auto listed = nlohmann::json::parse(list.out);
  for (const auto& b : listed["backups"]) {
    present.insert(b["id"]);
    EXPECT_FALSE(b["kind"].is_null()) << b.dump();
  }
  for (const auto& id : keep) EXPECT_TRUE(present.count(id)) << id;
  auto verify = RunLakevault({"verify", "--all"}, root_.string());
  EXPECT_EQ(verify.exit_code, 0) << verify.err;

  auto again = RunLakevault({"prune"}, root_.string(), {{"LAKEVAULT_NOW", TradingLake::Now(21)}});
  ASSERT_EQ(again.exit_code, 0) << again.err;
  present.clear();
  auto relisted = nlohmann::json::parse(RunLakevault({"list", "--json"}, root_.string()).out);
  for (const auto& b : relisted["backups"]) present.insert(b["id"]);
  EXPECT_EQ(present, keep);
  // Nothing but the kept backups' files, the lock and the job history remain.
  for (const auto& e : fs::directory_iterator(root_ / "backups")) {
    std::string name = e.path().filename().string();
    if (name == ".lakevault.lock" || name == ".lakevault-state.json") continue;
    EXPECT_TRUE(keep.count(name.substr(0, 22))) << name;
  }
}

TEST_F(IncrementalTest, ConsolidateWritesAnEqualFullWithoutTheLakeAndLetsTheChainExpire) {
  for (int day = 1; day <= 5; ++day) {
    lake_->AddDay(day, 8192);
    if (day == 3) lake_->Vacuum(1);
    ASSERT_EQ(Backup(day, {"--no-prune"}).exit_code, 0);
  }
  auto tip = Catalog::Load((root_ / "backups").string())->entries().back().id;
  auto expected = ProjectDigest(root_);
  fs::remove_all(root_ / "data");  // consolidation must not need the lake
  auto r = RunLakevault({"consolidate", tip, "--json"}, root_.string(),
                        {{"LAKEVAULT_NOW", TradingLake::Now(6)}});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto doc = nlohmann::json::parse(r.out);
  EXPECT_EQ(doc["consolidated_from"], tip);
  std::string full = doc["id"];

  auto catalog = Catalog::Load((root_ / "backups").string());
  ASSERT_TRUE(catalog.ok());
  const CatalogEntry* entry = catalog->Find(full).value();
  EXPECT_EQ(entry->manifest->kind, "full");
  EXPECT_TRUE(entry->manifest->parent.empty());
  auto with_files = LoadManifestFiles(*catalog, *entry);
  ASSERT_TRUE(with_files.ok()) << with_files.message();
  ASSERT_FALSE(with_files->files.empty());
  for (const auto& f : with_files->files) EXPECT_EQ(f.backup, full) << f.path;
  TempDir out;
  ASSERT_TRUE(MaterializeBackup(Env::Default(), *catalog, full, out.str()).ok());
  EXPECT_EQ(ProjectDigest(out.path()), expected);
  EXPECT_EQ(RunLakevault({"verify", full}, root_.string()).exit_code, 0);

  // With the synthetic full in place, the old chain can go.
  WriteFile(root_ / "lakevault.yaml", "retention: {days: 0, keep_last: 1}\n");
  auto prune =
      RunLakevault({"prune", "--json"}, root_.string(), {{"LAKEVAULT_NOW", TradingLake::Now(6)}});
  ASSERT_EQ(prune.exit_code, 0) << prune.err;
  auto listed = nlohmann::json::parse(RunLakevault({"list", "--json"}, root_.string()).out);
  ASSERT_EQ(listed["backups"].size(), 1u);
  EXPECT_EQ(listed["backups"][0]["id"], full);
}

}  // namespace
}  // namespace lakevault::testing
