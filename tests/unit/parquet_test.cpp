// The Parquet reader against every checkpoint in the corpus (Spark's parquet-mr and delta-rs's
// arrow-rs writers), plus malformed footers.
#include "parquet/parquet.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <iostream>

#include "support/test_util.h"

namespace fs = std::filesystem;
using namespace lakevault;

namespace {

std::vector<fs::path> CorpusCheckpoints() {
  std::vector<fs::path> out;
  for (auto& e : fs::recursive_directory_iterator(lakevault::testing::CorpusDir()))
    if (e.path().extension() == ".parquet" &&
        e.path().string().find("_delta_log") != std::string::npos)
      out.push_back(e.path());
  std::sort(out.begin(), out.end());
  return out;
}

const std::vector<std::string> kActions = {
    "add", "remove",  "metaData",           "protocol",
    "txn", "sidecar", "checkpointMetadata", "domainMetadata"};

}  // namespace

TEST(Parquet, ReadsEveryCorpusCheckpoint) {
  auto files = CorpusCheckpoints();
  ASSERT_GE(files.size(), 15u);
  Env& env = Env::Default();
  for (const auto& f : files) {
    SCOPED_TRACE(f.string());
    auto md = parquet::ReadFileMetadata(env, f.string());
    ASSERT_TRUE(md.ok()) << md.message();
    EXPECT_EQ(md->schema.name.empty(), false);
    auto rows = parquet::ReadRowsAsJson(env, f.string(), kActions);
    ASSERT_TRUE(rows.ok()) << rows.message();
    ASSERT_EQ(static_cast<int64_t>(rows->size()), md->num_rows);
    bool is_sidecar = f.string().find("_sidecars") != std::string::npos;
    size_t protocols = 0, adds = 0;
    for (const auto& r : *rows) {
      if (r.contains("protocol")) {
        ++protocols;
        EXPECT_TRUE(r["protocol"]["minReaderVersion"].is_number_integer()) << r.dump();
      }
      if (r.contains("add")) {
        ++adds;
        EXPECT_TRUE(r["add"]["path"].is_string()) << r.dump();
        EXPECT_TRUE(r["add"]["size"].is_number_integer()) << r.dump();
        EXPECT_TRUE(r["add"]["partitionValues"].is_object()) << r.dump();
      }
      if (r.contains("metaData")) {
        EXPECT_TRUE(r["metaData"]["partitionColumns"].is_array()) << r.dump();
        EXPECT_TRUE(r["metaData"]["schemaString"].is_string()) << r.dump();
      }
      if (std::getenv("PARQUET_DUMP")) {
        std::cerr << r.dump() << "\n";
      }
    }
    if (!is_sidecar) {
      EXPECT_EQ(protocols, 1u);
    }
    (void)adds;
  }
}

// Rows are decoded a batch at a time from pages read in pieces: every batch and piece boundary
// (one row a batch, one byte a read) gives the rows that the defaults give.
TEST(Parquet, RowsAreTheSameWhateverTheBatchAndReadSizes) {
  Env& env = Env::Default();
  for (const auto& f : CorpusCheckpoints()) {
    SCOPED_TRACE(f.string());
    auto whole = parquet::ReadRowsAsJson(env, f.string(), kActions);
    ASSERT_TRUE(whole.ok()) << whole.message();
    for (auto options : {parquet::StreamOptions{1, 1, {}}, parquet::StreamOptions{3, 7, {}},
                         parquet::StreamOptions{1000000, 64, {}}}) {
      std::vector<nlohmann::json> rows;
      Status st = parquet::ForEachRowAsJson(
          env, f.string(), kActions,
          [&](nlohmann::json& row) {
            rows.push_back(std::move(row));
            return Status::Ok();
          },
          options);
      ASSERT_TRUE(st.ok()) << st.message();
      ASSERT_EQ(rows.size(), whole->size());
      for (size_t i = 0; i < rows.size(); ++i) ASSERT_EQ(rows[i], (*whole)[i]) << "row " << i;
    }
  }
}

// A checkpoint cut or damaged anywhere gives rows or an error, never a crash, and a file cut
// short never reads as complete.
TEST(Parquet, TruncatedAndDamagedCheckpointsAreErrors) {
  auto f = CorpusCheckpoints().front();
  std::string file = lakevault::testing::ReadFile(f);
  for (size_t cut = 0; cut + 1 < file.size(); cut += 1 + cut / 8)
    EXPECT_FALSE(parquet::ParseRowsAsJson(file.substr(0, cut), kActions, "cut").ok()) << cut;
  for (size_t i = 0; i < file.size(); ++i) {
    std::string copy = file;
    copy[i] = static_cast<char>(copy[i] ^ 0x5a);
    (void)parquet::ParseRowsAsJson(copy, kActions, "flipped");
  }
}

// Unreturned sub-fields are missing from the rows and nothing else is; they are still read, so
// damage to any byte is refused exactly as when they are returned.
TEST(Parquet, UnreturnedFieldsAreLeftOutButStillChecked) {
  const std::vector<std::string> unreturned = {"add.partitionValues", "add.modificationTime",
                                               "add.tags", "remove.deletionTimestamp",
                                               "metaData.configuration"};
  auto read = [&](const std::string& file, bool leave_out, std::vector<nlohmann::json>* rows) {
    parquet::StreamOptions options;
    if (leave_out) options.unreturned = unreturned;
    auto source = NewMemoryFile(file, "checkpoint");
    return parquet::ForEachRowAsJson(
        *source, kActions,
        [&](nlohmann::json& row) {
          if (rows) rows->push_back(std::move(row));
          return Status::Ok();
        },
        options);
  };
  size_t left_out = 0;
  for (const auto& f : CorpusCheckpoints()) {
    SCOPED_TRACE(f.string());
    std::string file = lakevault::testing::ReadFile(f);
    std::vector<nlohmann::json> full, light;
    ASSERT_TRUE(read(file, false, &full).ok());
    ASSERT_TRUE(read(file, true, &light).ok());
    ASSERT_EQ(full.size(), light.size());
    for (size_t i = 0; i < full.size(); ++i) {
      for (const auto& u : unreturned) {
        std::string top = u.substr(0, u.find('.')), sub = u.substr(u.find('.') + 1);
        if (full[i].contains(top) && full[i][top].contains(sub)) {
          full[i][top].erase(sub);
          ++left_out;
        }
      }
      ASSERT_EQ(light[i], full[i]) << "row " << i;
    }
  }
  EXPECT_GT(left_out, 20u);
  std::string file = lakevault::testing::ReadFile(CorpusCheckpoints().front());
  for (size_t i = 4; i < file.size(); i += 3) {
    std::string copy = file;
    copy[i] = static_cast<char>(copy[i] ^ 0x21);
    ASSERT_EQ(read(copy, false, nullptr).ok(), read(copy, true, nullptr).ok()) << "byte " << i;
  }
}

TEST(Parquet, PartitionValuesMapDecoded) {
  // checkpoint_with_partitions is partitioned; its adds carry the partition values map.
  Env& env = Env::Default();
  auto f = fs::path(lakevault::testing::CorpusDir()) / "checkpoint_with_partitions/_delta_log" /
           "00000000000000000002.checkpoint.parquet";
  auto rows = parquet::ReadRowsAsJson(env, f.string(), {"add", "metaData"});
  ASSERT_TRUE(rows.ok()) << rows.message();
  std::vector<std::string> part_cols;
  size_t with_values = 0;
  for (const auto& r : *rows) {
    if (r.contains("metaData"))
      for (auto& c : r["metaData"]["partitionColumns"]) part_cols.push_back(c);
    if (r.contains("add") && !r["add"]["partitionValues"].empty()) ++with_values;
  }
  ASSERT_FALSE(part_cols.empty());
  EXPECT_GT(with_values, 0u);
}

TEST(Parquet, MalformedFootersAreErrors) {
  EXPECT_FALSE(parquet::ParseFooter("").ok());
  EXPECT_FALSE(parquet::ParseFooter("PAR1").ok());
  std::string bad = std::string("\x15\x00\x15", 3) + std::string("\xff\xff\xff\x7f", 4) + "PAR1";
  EXPECT_FALSE(parquet::ParseFooter(bad).ok());
  // A real footer with every byte position flipped must never crash.
  auto f = CorpusCheckpoints().front();
  std::string file = lakevault::testing::ReadFile(f);
  for (size_t i = file.size() > 600 ? file.size() - 600 : 0; i < file.size() - 8; ++i) {
    std::string copy = file;
    copy[i] = static_cast<char>(copy[i] ^ 0x5a);
    (void)parquet::ParseFooter(copy);
  }
  // Truncations are refused.
  for (size_t cut = 1; cut < 64; ++cut) {
    auto r = parquet::ParseFooter(file.substr(0, file.size() - cut));
    EXPECT_FALSE(r.ok());
  }
}
