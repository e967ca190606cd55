// Replay of random add/remove sequences against a model computed here: the live set the snapshot
// resolves (in both modes) must be exactly what applying the actions in order to a map keyed by
// path and deletion vector yields, in the snapshot's order (path, then deletion vector key).
#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <random>

#include "delta/delta.h"
#include "support/test_util.h"

namespace fs = std::filesystem;
using namespace lakevault;
namespace lt = lakevault::testing;

namespace {

struct Dv {
  std::string storage_type, path_or_inline;
  int64_t offset = 0;
};

// No deletion vector, two offsets into one 'u' file, another 'u' file (with a prefix), an
// absolute 'p' file and an inline one.
const std::vector<std::optional<Dv>> kDvs = {
    std::nullopt,
    Dv{"u", "ab^-aqEH.-t@S}K{vb[*k^", 1},
    Dv{"u", "ab^-aqEH.-t@S}K{vb[*k^", 43},
    Dv{"u", "vb[*k^ab^-aqEH.-t@S}K{", 1},
    Dv{"p", "s3://bucket/dv%20x.bin", 1},
    Dv{"i", "wi5b=000010000siXQKl0rr91000f55c8Xg0@@D72lkbi5=-{L", 0},
};

struct Live {
  int64_t size = 0;
  std::optional<int64_t> num_records;
  int64_t version = 0;
  int dv = 0;  // index into kDvs
  int64_t cardinality = 0;
};

// The snapshot's order: path, then "" for no deletion vector or "\n" + type + id + "@" + offset.
using ModelKey = std::pair<std::string, std::string>;

ModelKey KeyOf(const std::string& path, int dv) {
  if (!kDvs[dv]) return {path, ""};
  return {path, "\n" + kDvs[dv]->storage_type + kDvs[dv]->path_or_inline + "@" +
                    std::to_string(kDvs[dv]->offset)};
}

nlohmann::json DvJson(int dv, int64_t cardinality) {
  return {{"storageType", kDvs[dv]->storage_type},
          {"pathOrInlineDv", kDvs[dv]->path_or_inline},
          {"offset", kDvs[dv]->offset},
          {"sizeInBytes", 40},
          {"cardinality", cardinality}};
}

struct Model {
  std::map<ModelKey, Live> live;
  std::map<ModelKey, int64_t> tombstones;  // key -> version of the last remove
};

// Writes commit 0 (protocol, metadata) and `commits` commits of up to `max_actions` random
// actions each over a pool of `pool` paths: with a small pool, paths come back, are removed when
// never added, or live with several DVs.
Model WriteRandomTable(const fs::path& table, uint32_t seed, int commits, int pool = 24,
                       int max_actions = 10) {
  std::mt19937 rng(seed);
  auto pick = [&](int n) { return static_cast<int>(rng() % static_cast<uint32_t>(n)); };
  // Encoded as in the log -> decoded, as the snapshot reports it.
  std::vector<std::pair<std::string, std::string>> paths;
  for (int i = 0; i < pool; ++i) {
    std::string p = "d=" + std::to_string(i % 3) + "/part-" + std::to_string(i) + ".parquet";
    paths.emplace_back(p, p);
  }
  paths.emplace_back("d=x/a%20b.parquet", "d=x/a b.parquet");
  paths.emplace_back("part-top.parquet", "part-top.parquet");

  Model m;
  lt::WriteFile(
      table / "_delta_log" / "00000000000000000000.json",
      nlohmann::json{{"protocol", {{"minReaderVersion", 3}, {"minWriterVersion", 7}}}}.dump() +
          "\n" +
          nlohmann::json{{"metaData",
                          {{"id", "t"},
                           {"format", {{"provider", "parquet"}}},
                           {"schemaString", "{}"},
                           {"partitionColumns", {"d"}},
                           {"configuration", nlohmann::json::object()}}}}
              .dump() +
          "\n");
  for (int v = 1; v <= commits; ++v) {
    std::string text = nlohmann::json{{"commitInfo", {{"operation", "WRITE"}}}}.dump() + "\n";
    int actions = 1 + pick(max_actions);
    for (int k = 0; k < actions; ++k) {
      auto& [encoded, decoded] = paths[pick(static_cast<int>(paths.size()))];
      // Mostly no deletion vector, so that most lines take the fast path.
      int dv = pick(3) == 0 ? 1 + pick(static_cast<int>(kDvs.size()) - 1) : 0;
      ModelKey key = KeyOf(decoded, dv);
      if (pick(5) < 3) {
        Live l;
        l.size = 100 + pick(1000);
        l.version = v;
        l.dv = dv;
        l.cardinality = dv ? pick(5) : 0;
        nlohmann::json add = {{"path", encoded},
                              {"partitionValues", {{"d", decoded.substr(2, 1)}}},
                              {"size", l.size},
                              {"modificationTime", 1700000000000 + v},
                              {"dataChange", true}};
        if (pick(4) != 0) {
          l.num_records = 10 + pick(100);
          add["stats"] = nlohmann::json{{"numRecords", *l.num_records}}.dump();
        }
        if (dv) add["deletionVector"] = DvJson(dv, l.cardinality);
        text += nlohmann::json{{"add", add}}.dump() + "\n";
        m.live[key] = l;
        m.tombstones.erase(key);
      } else {
        // Often a key that is not live: never added, already removed, or another DV's.
        nlohmann::json remove = {{"path", encoded}, {"dataChange", true}};
        if (dv) remove["deletionVector"] = DvJson(dv, 0);
        text += nlohmann::json{{"remove", remove}}.dump() + "\n";
        m.live.erase(key);
        m.tombstones[key] = v;
      }
    }
    char name[32];
    std::snprintf(name, sizeof(name), "%020d.json", v);
    lt::WriteFile(table / "_delta_log" / name, text);
  }
  return m;
}

std::string ExpectedDvFile(int dv) {
  auto file = delta::DeletionVectorFile(kDvs[dv]->storage_type, kDvs[dv]->path_or_inline);
  EXPECT_TRUE(file.ok()) << file.message();
  return file.ok() ? *file : "";
}

// A full snapshot's FileAction or a light one's LiveFile: their fields are named alike.
template <typename File>
void ExpectFile(const File& f, const std::pair<std::string, std::string>& key, const Live& l) {
  EXPECT_EQ(f.path, key.first);
  EXPECT_FALSE(f.absolute);
  EXPECT_EQ(f.size, l.size);
  EXPECT_EQ(f.num_records, l.num_records);
  if constexpr (requires { f.version; }) {  // FileAction only
    EXPECT_EQ(f.version, l.version);
  }
  ASSERT_EQ(f.dv != nullptr, l.dv != 0);
  if (f.dv) {
    EXPECT_EQ(f.dv->storage_type, kDvs[l.dv]->storage_type);
    EXPECT_EQ(f.dv->offset, kDvs[l.dv]->offset);
    EXPECT_EQ(f.dv->cardinality, l.cardinality);
    EXPECT_EQ(f.dv->file, ExpectedDvFile(l.dv));
  }
}

void ExpectModel(const delta::Snapshot& snap, const Model& m, bool full) {
  ASSERT_EQ(full ? snap.files.size() : snap.light_files.size(), m.live.size());
  EXPECT_TRUE(full ? snap.light_files.empty() : snap.files.empty());
  size_t i = 0;
  int64_t rows = 0;
  bool all_stats = true;
  for (const auto& [key, l] : m.live) {
    SCOPED_TRACE(key.first + " " + key.second);
    if (!full) {
      ExpectFile(snap.light_files[i++], key, l);
      if (l.num_records)
        rows += *l.num_records - l.cardinality;
      else
        all_stats = false;
      continue;
    }
    const delta::FileAction& f = snap.files[i++];
    ExpectFile(f, key, l);
    ASSERT_EQ(f.partition_values.size(), 1u);
    EXPECT_EQ(f.partition_values[0].first, "d");
    EXPECT_EQ(f.partition_values[0].second, key.first.substr(2, 1));
    EXPECT_EQ(f.action.value("size", int64_t{-1}), l.size);
    if (l.num_records)
      rows += *l.num_records - l.cardinality;
    else
      all_stats = false;
  }
  EXPECT_EQ(snap.RowsFromStats(), all_stats ? std::optional<int64_t>(rows) : std::nullopt);
  if (!full) {
    EXPECT_TRUE(snap.tombstones.empty());
    return;
  }
  ASSERT_EQ(snap.tombstones.size(), m.tombstones.size());
  // Tombstones are ordered by their key string, path + DV key.
  std::map<std::string, std::pair<ModelKey, int64_t>> by_key;
  for (const auto& [key, v] : m.tombstones) by_key[key.first + key.second] = {key, v};
  i = 0;
  for (const auto& [k, t] : by_key) {
    const delta::FileAction& f = snap.tombstones[i++];
    EXPECT_EQ(f.path, t.first.first);
    EXPECT_EQ(f.version, t.second);
  }
}

}  // namespace

TEST(SnapshotReplay, RandomAddsAndRemovesResolveAsTheModel) {
  lt::TempDir tmp;
  for (uint32_t seed = 1; seed <= 25; ++seed) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    fs::path table = tmp.path() / ("t" + std::to_string(seed));
    Model m = WriteRandomTable(table, seed, 40);
    auto full = delta::LoadSnapshot(Env::Default(), table.string());
    ASSERT_TRUE(full.ok()) << full.message();
    ExpectModel(*full, m, true);
    auto light =
        delta::LoadSnapshot(Env::Default(), table.string(), std::nullopt, {.keep_actions = false});
    ASSERT_TRUE(light.ok()) << light.message();
    ExpectModel(*light, m, false);
  }
}

// Every version of one random table: earlier versions replay fewer commits, so removes outnumber
// later adds at some of them and the free slots of the live set are left over.
TEST(SnapshotReplay, EveryVersionOfARandomTable) {
  lt::TempDir tmp;
  fs::path table = tmp.path() / "t";
  const int commits = 30;
  WriteRandomTable(table, 99, commits);
  for (int v = 1; v <= commits; ++v) {
    SCOPED_TRACE("version " + std::to_string(v));
    // The model of version v: the same seed, written up to v into a second table.
    fs::path upto = tmp.path() / ("upto" + std::to_string(v));
    Model m = WriteRandomTable(upto, 99, v);
    auto light =
        delta::LoadSnapshot(Env::Default(), table.string(), int64_t{v}, {.keep_actions = false});
    ASSERT_TRUE(light.ok()) << light.message();
    ExpectModel(*light, m, false);
  }
}

// Enough live files for the final sort to run on two threads (from 32,768 on).
TEST(SnapshotReplay, LargeRandomTable) {
  lt::TempDir tmp;
  fs::path table = tmp.path() / "t";
  Model m = WriteRandomTable(table, 7, 80, 100000, 2000);
  ASSERT_GE(m.live.size(), 35000u);
  auto light =
      delta::LoadSnapshot(Env::Default(), table.string(), std::nullopt, {.keep_actions = false});
  ASSERT_TRUE(light.ok()) << light.message();
  ExpectModel(*light, m, false);
  auto full = delta::LoadSnapshot(Env::Default(), table.string());
  ASSERT_TRUE(full.ok()) << full.message();
  ExpectModel(*full, m, true);
}
