// The fast snapshot path (SnapshotOptions::keep_actions = false: simdjson for commit lines and
// stats, checkpoint rows streamed) must resolve exactly what the nlohmann path resolves, and a
// check of a table of a few thousand files must count its files, rows, missing files and size
// mismatches exactly. Speed is measured by bench/check_bench.sh, not here.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>

#include "check/check.h"
#include "delta/delta.h"
#include "parquet/parquet.h"
#include "support/test_util.h"

namespace fs = std::filesystem;
using namespace lakevault;
namespace lt = lakevault::testing;

namespace {

const delta::SnapshotOptions kFast{.keep_actions = false};

// Every field of two snapshots but what the fast path drops: raw actions, partition values and
// tombstones.
void ExpectSameSnapshot(const delta::Snapshot& fast, const delta::Snapshot& full) {
  EXPECT_EQ(fast.version, full.version);
  EXPECT_EQ(fast.checkpoint_version, full.checkpoint_version);
  EXPECT_EQ(fast.checkpoint_files, full.checkpoint_files);
  EXPECT_EQ(fast.protocol, full.protocol);
  EXPECT_EQ(fast.metadata, full.metadata);
  EXPECT_EQ(fast.partition_columns, full.partition_columns);
  EXPECT_EQ(fast.column_mapping_mode, full.column_mapping_mode);
  EXPECT_EQ(fast.cdc_files, full.cdc_files);
  EXPECT_EQ(fast.app_transactions, full.app_transactions);
  EXPECT_EQ(fast.unknown_actions, full.unknown_actions);
  EXPECT_EQ(fast.warnings, full.warnings);
  EXPECT_TRUE(fast.files.empty());  // a light snapshot's files are in light_files
  EXPECT_TRUE(full.light_files.empty());
  const auto& a = fast.light_files;
  const auto& b = full.files;
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    SCOPED_TRACE(b[i].path);
    EXPECT_EQ(a[i].path, b[i].path);
    EXPECT_EQ(a[i].absolute, b[i].absolute);
    EXPECT_EQ(a[i].size, b[i].size);
    EXPECT_EQ(a[i].num_records, b[i].num_records);
    ASSERT_EQ(a[i].dv != nullptr, b[i].dv != nullptr);
    if (a[i].dv) {
      EXPECT_EQ(a[i].dv->file, b[i].dv->file);
      EXPECT_EQ(a[i].dv->storage_type, b[i].dv->storage_type);
      EXPECT_EQ(a[i].dv->cardinality, b[i].dv->cardinality);
    }
    EXPECT_FALSE(b[i].action.is_null());
  }
  EXPECT_EQ(fast.RequiredFiles(), full.RequiredFiles());
  EXPECT_EQ(fast.AbsolutePaths(), full.AbsolutePaths());
  EXPECT_EQ(fast.RowsFromStats(), full.RowsFromStats());
  EXPECT_TRUE(fast.tombstones.empty());
}

std::string PartitionValue(const delta::FileAction& f, const std::string& column) {
  for (const auto& [k, v] : f.partition_values)
    if (k == column) return v;
  ADD_FAILURE() << f.path << " has no partition value for " << column;
  return "";
}

std::string Commit(const std::vector<nlohmann::json>& actions) {
  std::string text;
  for (const auto& a : actions) text += a.dump() + "\n";
  return text;
}

void WriteCommit(const fs::path& table, int64_t version, const std::string& text) {
  char name[32];
  std::snprintf(name, sizeof(name), "%020lld.json", static_cast<long long>(version));
  lt::WriteFile(table / "_delta_log" / name, text);
}

std::string SparkStats(int64_t rows, int i) {
  // Shaped like Spark's: numRecords first, then per-column min/max/null counts.
  return nlohmann::json{{"numRecords", rows},
                        {"minValues", {{"ts", "2024-01-02T13:00:00.123Z"}, {"q", -1.5 * i}}},
                        {"maxValues", {{"ts", "2024-01-02T20:59:59.987Z"}, {"q", 2.25 * i}}},
                        {"nullCount", {{"ts", 0}, {"q", i % 3}}}}
      .dump();
}

// A table of `commits` commits of `per` adds each (size 100 + i bytes, i + 1 rows each), with
// the oddities the fast path must hand to the nlohmann path or read as it does.
struct GeneratedTable {
  int64_t live = 0;
  int64_t rows = 0;
  std::map<std::string, int64_t> sizes;  // live path -> logged size
};

GeneratedTable Generate(const fs::path& table, int commits, int per) {
  GeneratedTable g;
  WriteCommit(
      table, 0,
      Commit({{{"commitInfo", {{"operation", "CREATE TABLE"}}}},
              {{"protocol", {{"minReaderVersion", 1}, {"minWriterVersion", 2}}}},
              {{"metaData",
                {{"id", "t"},
                 {"format", {{"provider", "parquet"}, {"options", nlohmann::json::object()}}},
                 {"schemaString", "{}"},
                 {"partitionColumns", {"d"}},
                 {"configuration", nlohmann::json::object()}}}}}));
  int i = 0;
  for (int v = 1; v <= commits; ++v) {
    std::vector<nlohmann::json> actions = {{{"commitInfo", {{"operation", "WRITE"}}}}};
    for (int k = 0; k < per; ++k, ++i) {
      std::string dir = "d=" + std::to_string(v);
      std::string path = dir + "/part-" + std::to_string(i) + ".parquet";
      int64_t size = 100 + i;
      actions.push_back({{"add",
                          {{"path", path},
                           {"partitionValues", {{"d", std::to_string(v)}}},
                           {"size", size},
                           {"modificationTime", 1700000000000 + i},
                           {"dataChange", true},
                           {"stats", SparkStats(i + 1, i)}}}});
      g.sizes[path] = size;
      g.rows += i + 1;
    }
    // Every tenth commit removes the first file of the commit before it.
    if (v % 10 == 0) {
      std::string gone =
          "d=" + std::to_string(v - 1) + "/part-" + std::to_string(i - 2 * per) + ".parquet";
      actions.push_back({{"remove", {{"path", gone}, {"dataChange", true}}}});
      g.rows -= i - 2 * per + 1;
      g.sizes.erase(gone);
    }
    WriteCommit(table, v, Commit(actions));
  }
  // Lines the fast path leaves to nlohmann, or must read as nlohmann does.
  std::string odd;
  // A percent-encoded path, a null partition value, stats without numRecords.
  odd += R"({"add":{"path":"d=x/a%20b.parquet","partitionValues":{"d":null},"size":7,)"
         R"("stats":"{\"minValues\":{}}"}})"
         "\n";
  g.sizes["d=x/a b.parquet"] = 7;
  // numRecords written as a double: nlohmann reads it as no row count.
  odd += R"({"add":{"path":"d=x/double.parquet","size":8,"stats":"{\"numRecords\":3.0}"}})"
         "\n";
  g.sizes["d=x/double.parquet"] = 8;
  // A duplicated key: the last one wins, as in nlohmann.
  odd += R"({"add":{"path":"d=x/first.parquet","path":"d=x/dup.parquet","size":9,)"
         R"("stats":"{\"numRecords\":1,\"numRecords\":2}"}})"
         "\n";
  g.sizes["d=x/dup.parquet"] = 9;
  // An add and a txn on one line (nlohmann path), and a domainMetadata (nothing to resolve).
  odd += R"({"txn":{"appId":"app","version":4},"add":{"path":"d=x/txn.parquet","size":10,)"
         R"("stats":"{\"numRecords\":5}"}})"
         "\n";
  g.sizes["d=x/txn.parquet"] = 10;
  odd += R"({"domainMetadata":{"domain":"x","configuration":"{}","removed":false}})"
         "\n";
  WriteCommit(table, commits + 1, odd);
  g.live = static_cast<int64_t>(g.sizes.size());
  return g;
}

}  // namespace

TEST(SnapshotFastPath, EveryCorpusTableResolvesAsTheFullPath) {
  int tables = 0;
  for (auto& e : fs::directory_iterator(lt::CorpusDir())) {
    if (!delta::IsTable(e.path().string())) continue;
    SCOPED_TRACE(e.path().filename().string());
    auto full = delta::LoadSnapshot(Env::Default(), e.path().string());
    auto fast = delta::LoadSnapshot(Env::Default(), e.path().string(), std::nullopt, kFast);
    ASSERT_EQ(fast.ok(), full.ok());
    if (!full.ok()) {
      EXPECT_EQ(fast.message(), full.message());
      continue;
    }
    ExpectSameSnapshot(*fast, *full);
    ++tables;
  }
  EXPECT_GE(tables, 45);
}

TEST(SnapshotFastPath, GeneratedTableIsResolvedAndCheckedExactly) {
  lt::TempDir tmp;
  fs::path table = tmp.path() / "big";
  // 5,000 files: enough for the check's stat to run on more than one thread.
  GeneratedTable g = Generate(table, 50, 100);
  auto full = delta::LoadSnapshot(Env::Default(), table.string());
  auto fast = delta::LoadSnapshot(Env::Default(), table.string(), std::nullopt, kFast);
  ASSERT_TRUE(full.ok()) << full.message();
  ASSERT_TRUE(fast.ok()) << fast.message();
  ExpectSameSnapshot(*fast, *full);
  ASSERT_EQ(static_cast<int64_t>(fast->light_files.size()), g.live);
  EXPECT_EQ(full->tombstones.size(), 5u);
  EXPECT_EQ(fast->app_transactions.at("app"), 4);
  std::map<std::string, std::optional<delta::LiveFile>> by_path;
  std::map<std::string, const delta::FileAction*> full_by_path;
  for (const delta::LiveFile f : fast->light_files) by_path[std::string(f.path)] = f;
  for (const auto& f : full->files) full_by_path[f.path] = &f;
  for (const auto& [path, size] : g.sizes) {
    ASSERT_TRUE(by_path.count(path)) << path;
    EXPECT_EQ(by_path[path]->size, size) << path;
  }
  EXPECT_EQ(PartitionValue(*full_by_path["d=x/a b.parquet"], "d"), "");
  EXPECT_FALSE(by_path["d=x/a b.parquet"]->num_records.has_value());
  EXPECT_FALSE(by_path["d=x/double.parquet"]->num_records.has_value());
  EXPECT_EQ(by_path["d=x/dup.parquet"]->num_records, 2);
  EXPECT_EQ(PartitionValue(*full_by_path["d=7/part-650.parquet"], "d"), "7");
  EXPECT_FALSE(by_path.count("d=x/first.parquet"));
  EXPECT_FALSE(fast->RowsFromStats().has_value());  // two files have no row count

  // Data files of the logged size, but one missing and one a byte short.
  for (const auto& [path, size] : g.sizes) {
    if (path == "d=3/part-250.parquet") continue;
    fs::create_directories((table / path).parent_path());
    std::ofstream(table / path).close();
    fs::resize_file(table / path, path == "d=40/part-3999.parquet" ? size - 1 : size);
  }
  TableHealth h = CheckTable(Env::Default(), table.string(), "big");
  EXPECT_EQ(h.live_files, g.live);
  EXPECT_EQ(h.missing_files, std::vector<std::string>{"d=3/part-250.parquet"});
  EXPECT_EQ(h.size_mismatches,
            std::vector<std::string>{"d=40/part-3999.parquet: log says 4099 bytes, file has 4098"});
  int64_t bytes = 0;
  for (const auto& [path, size] : g.sizes) bytes += size;
  EXPECT_EQ(h.bytes, bytes);
  // The two files without a row count are not Parquet: their footers are unreadable.
  EXPECT_EQ(h.unreadable.size(), 2u);
  EXPECT_FALSE(h.rows.has_value());
  EXPECT_FALSE(h.healthy);
}

TEST(SnapshotFastPath, CheckCountsRowsFromStatsExactly) {
  lt::TempDir tmp;
  fs::path table = tmp.path() / "t";
  GeneratedTable g = Generate(table, 12, 400);
  // Drop the odd commit: every remaining file has stats.
  fs::remove(table / "_delta_log" / "00000000000000000013.json");
  int64_t live = 0;
  for (const auto& [path, size] : g.sizes) {
    if (path.rfind("d=x/", 0) == 0) continue;
    fs::create_directories((table / path).parent_path());
    std::ofstream(table / path).close();
    fs::resize_file(table / path, size);
    ++live;
  }
  TableHealth h = CheckTable(Env::Default(), table.string(), "t");
  EXPECT_TRUE(h.healthy);
  EXPECT_EQ(h.live_files, live);
  EXPECT_EQ(h.rows, g.rows);
  EXPECT_EQ(h.rows_source, "stats");
}

TEST(SnapshotFastPath, ErrorsAreThoseOfTheFullPath) {
  lt::TempDir tmp;
  auto load_both = [&](const std::string& name, const std::string& commit1) {
    fs::path table = tmp.path() / name;
    Generate(table, 1, 3);
    fs::remove(table / "_delta_log" / "00000000000000000002.json");
    WriteCommit(table, 1, commit1);
    auto full = delta::LoadSnapshot(Env::Default(), table.string());
    auto fast = delta::LoadSnapshot(Env::Default(), table.string(), std::nullopt, kFast);
    EXPECT_EQ(fast.ok(), full.ok()) << name;
    return std::make_pair(full.ok() ? std::string() : full.message(),
                          fast.ok() ? std::string() : fast.message());
  };
  // A bad path on line 1, a malformed line 2: the malformed line is reported, as when every
  // line was parsed before any was applied.
  auto [full1, fast1] =
      load_both("a", "{\"add\":{\"path\":\"../x\"}}\n{\"add\":{\"path\":\"y\"}} tru\n");
  EXPECT_NE(full1.find("line 2: malformed JSON"), std::string::npos) << full1;
  EXPECT_EQ(fast1, full1);
  auto [full2, fast2] = load_both("b", "{\"add\":{\"path\":\"../x\"}}\n");
  EXPECT_NE(full2.find("path escapes the table"), std::string::npos) << full2;
  EXPECT_EQ(fast2, full2);
  // 65 levels are refused, 64 are not (ParseActions' limit).
  std::string deep65 = "{\"commitInfo\":" + std::string(64, '[') + std::string(64, ']') + "}\n";
  std::string deep64 = "{\"commitInfo\":" + std::string(63, '[') + std::string(63, ']') + "}\n";
  auto [full3, fast3] = load_both("c", deep65);
  EXPECT_NE(full3.find("nested too deeply"), std::string::npos) << full3;
  EXPECT_EQ(fast3, full3);
  auto [full4, fast4] = load_both("d", deep64);
  EXPECT_EQ(full4, "");
  EXPECT_EQ(fast4, "");
}

TEST(SnapshotFastPath, StreamedCheckpointRowsEqualTheRowsReadWhole) {
  int checkpoints = 0;
  for (auto& e : fs::recursive_directory_iterator(lt::CorpusDir())) {
    std::string name = e.path().filename().string();
    if (name.find(".checkpoint") == std::string::npos || e.path().extension() != ".parquet")
      continue;
    SCOPED_TRACE(e.path().string());
    const std::vector<std::string> fields = {"add",      "remove", "metaData",
                                             "protocol", "txn",    "sidecar"};
    auto whole = parquet::ReadRowsAsJson(Env::Default(), e.path().string(), fields);
    std::vector<nlohmann::json> streamed;
    Status st = parquet::ForEachRowAsJson(Env::Default(), e.path().string(), fields,
                                          [&](nlohmann::json& row) {
                                            streamed.push_back(row);
                                            return Status::Ok();
                                          });
    ASSERT_EQ(st.ok(), whole.ok());
    if (whole.ok()) {
      EXPECT_EQ(streamed, *whole);
    }
    ++checkpoints;
  }
  EXPECT_GE(checkpoints, 10);
}

namespace {

// A light snapshot's files by path, with what a reader of one takes from each.
struct Seen {
  int64_t size;
  std::optional<int64_t> rows;
  std::string dv_file;
};
std::map<std::string, Seen> FilesOf(const delta::FileList& files) {
  std::map<std::string, Seen> out;
  for (const delta::LiveFile f : files)
    out[std::string(f.path) + (f.dv ? "#" + f.dv->path_or_inline : "")] = {f.size, f.num_records,
                                                                           f.dv ? f.dv->file : ""};
  return out;
}

bool operator==(const Seen& a, const Seen& b) {
  return a.size == b.size && a.rows == b.rows && a.dv_file == b.dv_file;
}

// Reads `table` in shares of at most `max_bytes` and checks them against one light replay: the
// shares are disjoint, together the whole list, each sorted and within its bound, and each
// carries the table's version. Returns how many shares there were.
int ExpectSharesMakeTheSnapshot(const fs::path& table, size_t max_bytes) {
  auto whole = delta::LoadSnapshot(Env::Default(), table.string(), std::nullopt, kFast);
  std::map<std::string, Seen> joined;
  int shares = 0;
  Status st = delta::ForEachSnapshotShare(
      Env::Default(), table.string(), std::nullopt, max_bytes,
      [&](delta::Snapshot& share, uint32_t part, uint32_t parts) -> Status {
        ++shares;
        if (!whole.ok()) {
          ADD_FAILURE() << "a share of a table that does not load: " << whole.message();
          return Status::Ok();
        }
        EXPECT_LT(part, parts);
        EXPECT_EQ(share.version, whole->version);
        EXPECT_EQ(share.checkpoint_version, whole->checkpoint_version);
        EXPECT_EQ(share.warnings, whole->warnings);
        const auto& files = share.light_files;
        // A share is bounded unless it is one that could not be split further (a single file).
        if (files.size() > 1) {
          EXPECT_LE(files.MemoryBytes(), max_bytes);
        }
        for (size_t i = 1; i < files.size(); ++i) EXPECT_LE(files[i - 1].path, files[i].path);
        for (auto& [key, seen] : FilesOf(files))
          EXPECT_TRUE(joined.emplace(key, seen).second) << key << " is in two shares";
        return Status::Ok();
      });
  if (!whole.ok()) {
    EXPECT_FALSE(st.ok());
    if (!st.ok()) {
      EXPECT_EQ(st.message(), whole.message());
    }
    return shares;
  }
  EXPECT_TRUE(st.ok()) << st.message();
  EXPECT_EQ(joined, FilesOf(whole->light_files));
  return shares;
}

}  // namespace

// A table too big for a replay's bound is read in shares of its files, one replay each.
TEST(SnapshotShares, TogetherTheSharesAreTheSnapshotEachWithinItsBound) {
  lt::TempDir tmp;
  fs::path table = tmp.path() / "t";
  GeneratedTable g = Generate(table, 50, 100);  // 5,000 files; about 60 bytes each held
  auto whole = delta::LoadSnapshot(Env::Default(), table.string(), std::nullopt, kFast);
  ASSERT_TRUE(whole.ok()) << whole.message();
  size_t bytes = whole->light_files.MemoryBytes();
  EXPECT_EQ(ExpectSharesMakeTheSnapshot(table, bytes * 2), 1);
  int quarters = ExpectSharesMakeTheSnapshot(table, bytes / 4);
  EXPECT_GE(quarters, 5);
  EXPECT_LE(quarters, 16);
  EXPECT_GE(ExpectSharesMakeTheSnapshot(table, bytes / 50), 64);
  // A bound below one file's: every share splits down to single files, and still all are there.
  lt::TempDir tiny;
  Generate(tiny.path() / "t", 1, 3);
  EXPECT_GE(ExpectSharesMakeTheSnapshot(tiny.path() / "t", 1), 4);
  (void)g;
}

// A split guesses the number of shares from how far the stopped replay got: on a table that only
// grows, one replay stops and every share after it is read once, instead of halving again at
// each stop (a replay stopped at a quarter of the log split into halves that stopped at half
// of it, and so on down).
TEST(SnapshotShares, OneStoppedReplayThenEachShareReadOnce) {
  lt::TempDir tmp;
  fs::path table = tmp.path() / "t";
  WriteCommit(table, 0,
              Commit({{{"protocol", {{"minReaderVersion", 1}, {"minWriterVersion", 2}}}},
                      {{"metaData",
                        {{"id", "t"},
                         {"format", {{"provider", "parquet"}}},
                         {"schemaString", "{}"},
                         {"partitionColumns", nlohmann::json::array()}}}}}));
  for (int v = 1; v <= 200; ++v) {
    std::vector<nlohmann::json> adds;
    for (int k = 0; k < 100; ++k)
      adds.push_back({{"add",
                       {{"path", "part-" + std::to_string(v * 100 + k) + ".parquet"},
                        {"size", 1000},
                        {"modificationTime", 1700000000000},
                        {"dataChange", true}}}});
    WriteCommit(table, v, Commit(adds));
  }
  // Counts the replays: each reads commit 1 once.
  struct ReplayCountingEnv final : lt::ForwardingEnv {
    int replays = 0;
    Result<std::unique_ptr<SequentialFile>> NewSequentialFile(const std::string& path) override {
      if (path.ends_with("/00000000000000000001.json")) ++replays;
      return ForwardingEnv::NewSequentialFile(path);
    }
    Result<std::unique_ptr<RandomAccessFile>> NewRandomAccessFile(
        const std::string& path) override {
      if (path.ends_with("/00000000000000000001.json")) ++replays;
      return ForwardingEnv::NewRandomAccessFile(path);
    }
  };
  auto whole = delta::LoadSnapshot(Env::Default(), table.string(), std::nullopt, kFast);
  ASSERT_TRUE(whole.ok()) << whole.message();
  const size_t bytes = whole->light_files.MemoryBytes();
  for (size_t over : {3, 5, 12}) {
    SCOPED_TRACE("table " + std::to_string(over) + " times the bound");
    ReplayCountingEnv env;
    int shares = 0;
    size_t files = 0;
    Status st = delta::ForEachSnapshotShare(
        env, table.string(), std::nullopt, bytes / over,
        [&](delta::Snapshot& share, uint32_t part, uint32_t parts) -> Status {
          ++shares;
          files += share.light_files.size();
          return Status::Ok();
        });
    ASSERT_TRUE(st.ok()) << st.message();
    EXPECT_EQ(files, 20000u);
    EXPECT_GE(shares, static_cast<int>(over));
    EXPECT_LE(shares, static_cast<int>(4 * over));
    EXPECT_EQ(env.replays, shares + 1);
  }
}

// Checkpoints (classic, multi-part, v2 with sidecars), deletion vectors and unreadable tables:
// shares of a few files each give what one replay gives, and its error when it fails.
TEST(SnapshotShares, EveryCorpusTableReadInSharesIsTheWholeTable) {
  int split = 0;
  for (auto& e : fs::directory_iterator(lt::CorpusDir())) {
    if (!delta::IsTable(e.path().string())) continue;
    SCOPED_TRACE(e.path().filename().string());
    if (ExpectSharesMakeTheSnapshot(e.path(), 400) > 1) ++split;
  }
  EXPECT_GE(split, 20);
}

// A check in shares reports what a check in one replay reports, in the same order.
TEST(SnapshotShares, ACheckInSharesFindsWhatOneReplayFinds) {
  lt::TempDir tmp;
  fs::path table = tmp.path() / "t";
  GeneratedTable g = Generate(table, 20, 100);
  fs::remove(table / "_delta_log" / "00000000000000000021.json");  // the odd commit
  int n = 0;
  for (const auto& [path, size] : g.sizes) {
    if (path.rfind("d=x/", 0) == 0) continue;
    // Every 97th file missing, every 89th a byte short.
    if (++n % 97 == 0) continue;
    fs::create_directories((table / path).parent_path());
    std::ofstream(table / path).close();
    fs::resize_file(table / path, n % 89 == 0 ? size - 1 : size);
  }
  TableHealth one = CheckTable(Env::Default(), table.string(), "t");
  TableHealth shares = CheckTable(Env::Default(), table.string(), "t", 8 << 10);
  EXPECT_EQ(one.live_files, 2000 - 2);  // two removes
  EXPECT_EQ(shares.live_files, one.live_files);
  EXPECT_EQ(shares.version, one.version);
  EXPECT_EQ(shares.bytes, one.bytes);
  EXPECT_EQ(shares.rows, one.rows);
  EXPECT_EQ(shares.rows_source, "stats");
  EXPECT_GE(one.missing_files.size(), 20u);
  EXPECT_EQ(shares.missing_files, one.missing_files);
  EXPECT_GE(one.size_mismatches.size(), 20u);
  EXPECT_EQ(shares.size_mismatches, one.size_mismatches);
  EXPECT_EQ(shares.unreadable, one.unreadable);
  EXPECT_FALSE(shares.healthy);
}
