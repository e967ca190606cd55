// The backup plan of one table: every file its pinned version needs taken once, in the order of
// their relative paths as strings, with the files it does not need beside them; and the compact
// list (PlannedFiles) that holds them.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "backup/backup.h"
#include "backup/plan.h"
#include "core/time.h"
#include "crypto/sha256.h"
#include "delta/delta.h"
#include "manifest/catalog.h"
#include "manifest/manifest.h"
#include "support/test_util.h"

namespace fs = std::filesystem;

namespace lakevault::testing {
namespace {

PlannedFile Planned(std::string path, int64_t size) {
  PlannedFile f;
  f.relative_path = std::move(path);
  f.size = size;
  f.mtime = 1000 + size;
  f.mode = 0640;
  return f;
}

std::vector<std::string> PathsOf(const PlannedFiles& files) {
  std::vector<std::string> out;
  for (const auto& f : files) out.push_back(f.relative_path);
  return out;
}

}  // namespace

TEST(PlannedFiles, GivesBackWhatWasAddedSortedAsStrings) {
  delta::FileList list;
  for (const char* path : {"x/y", "a//b"}) {
    delta::FileAction a;
    a.path = path;
    list.Append(a);
  }
  PlannedFiles files;
  files.KeepListedPaths(std::move(list), "lake/t");
  files.AddListed(0, Planned("lake/t/x/y", 5));
  // The stat'ed path is not the one the list composes ("lake/t/a//b"): it is stored itself.
  files.AddListed(1, Planned("lake/t/a/b", 7));
  PlannedFile hint = Planned("lake/t/_delta_log/_last_checkpoint", 3);
  hint.inline_content = "{}\n";
  files.Add(hint);
  PlannedFile link = Planned("lake/t/x-y", 0);
  link.link_target = "x/y";
  link.may_vanish = true;
  files.Add(link);
  PlannedFile config = Planned("lake/t/x/a", 11);
  config.mutable_content = true;
  files.Add(config);
  files.Sort();

  std::vector<std::string> expected = {"lake/t/_delta_log/_last_checkpoint", "lake/t/a/b",
                                       "lake/t/x-y", "lake/t/x/a", "lake/t/x/y"};
  ASSERT_TRUE(std::is_sorted(expected.begin(), expected.end()));
  EXPECT_EQ(PathsOf(files), expected);
  ASSERT_EQ(files.size(), 5u);
  EXPECT_EQ(files.Bytes(), 5 + 7 + 3 + 0 + 11);
  EXPECT_EQ(files[0].inline_content, std::optional<std::string>("{}\n"));
  EXPECT_EQ(files[1].size, 7);
  EXPECT_EQ(files[2].link_target, "x/y");
  EXPECT_TRUE(files[2].may_vanish);
  EXPECT_FALSE(files[2].mutable_content);
  EXPECT_TRUE(files[3].mutable_content);
  EXPECT_FALSE(files[3].may_vanish);
  EXPECT_EQ(files[4].size, 5);
  EXPECT_EQ(files[4].mtime, 1005);
  EXPECT_EQ(files[4].mode, 0640u);
  EXPECT_TRUE(files[4].link_target.empty());
  EXPECT_FALSE(files[4].inline_content);
}

// Everything a PlannedFile says, as one comparable line.
std::string Describe(const PlannedFile& f) {
  return f.relative_path + " " + std::to_string(f.size) + " " + std::to_string(f.mtime) + " " +
         std::to_string(f.mode) + " link=" + f.link_target +
         " inline=" + (f.inline_content ? "[" + *f.inline_content + "]" : "none") +
         (f.mutable_content ? " mutable" : "") + (f.may_vanish ? " may-vanish" : "");
}

std::vector<std::string> Visited(const PlannedFiles& files, Status* status) {
  std::vector<std::string> out;
  *status = files.ForEach(Env::Default(), [&](const PlannedFile& f) {
    out.push_back(Describe(f));
    return Status::Ok();
  });
  return out;
}

TEST(PlannedFiles, SpilledFilesAreReadBackInOrderWithEveryField) {
  TempDir tmp;
  delta::FileList list;
  for (int i = 0; i < 3000; ++i) {
    delta::FileAction a;
    a.path = "date=2026-01-0" + std::to_string(i % 7) + "/part-" + std::to_string(100000 + i);
    list.Append(a);
  }
  PlannedFiles files;
  files.KeepListedPaths(std::move(list), "data/lake/t");
  for (uint32_t i = 0; i < 3000; ++i)
    files.AddListed(i, Planned("data/lake/t/" + std::string(files.listed()[i].path), i));
  PlannedFile hint = Planned("data/lake/t/_delta_log/_last_checkpoint", 3);
  hint.inline_content = std::string("{\"version\":7}\n\0tail", 18);
  files.Add(hint);
  PlannedFile link = Planned("data/lake/t/link", 0);
  link.link_target = "date=2026-01-01/part-100001";
  link.may_vanish = true;
  files.Add(link);
  PlannedFile config = Planned("data/lake/t/z", 11);
  config.mutable_content = true;
  files.Add(config);
  files.Sort();
  Status status;
  const std::vector<std::string> before = Visited(files, &status);
  ASSERT_TRUE(status.ok()) << status.message();
  ASSERT_EQ(before.size(), 3003u);
  const size_t count = files.size();
  const int64_t bytes = files.Bytes();

  const std::string spill = (tmp.path() / ".backup_plan_0.tmp").string();
  const int64_t spill_bytes = files.SpillBytes();
  ASSERT_TRUE(files.Spill(Env::Default(), spill).ok());
  EXPECT_EQ(static_cast<int64_t>(fs::file_size(spill)), spill_bytes);
  EXPECT_TRUE(files.spilled());
  EXPECT_TRUE(files.listed().empty());  // the snapshot's paths were given back
  EXPECT_EQ(files.size(), count);
  EXPECT_EQ(files.Bytes(), bytes);
  // By index it would give nothing true: reading so is a programming error, and loud.
  EXPECT_DEATH(files[0], "a spilled plan was read by index");
  // Read twice (the free-space estimate and the write each read the list once).
  for (int pass = 0; pass < 2; ++pass) {
    EXPECT_EQ(Visited(files, &status), before);
    EXPECT_TRUE(status.ok()) << status.message();
  }
  // A visitor's error stops the read and is returned.
  int seen = 0;
  status = files.ForEach(Env::Default(), [&](const PlannedFile&) -> Status {
    return ++seen == 10 ? Status(Error("stop here")) : Status::Ok();
  });
  EXPECT_EQ(seen, 10);
  EXPECT_EQ(status.message(), "stop here");

  // A damaged scratch file is an error, never a shorter or longer list.
  const std::string whole = ReadFile(spill);
  WriteFile(spill, whole.substr(0, whole.size() - 5));
  Visited(files, &status);
  EXPECT_NE(status.message().find("ends in a record"), std::string::npos) << status.message();
  WriteFile(spill, whole + whole.substr(0, whole.size() / 2));
  Visited(files, &status);
  EXPECT_FALSE(status.ok());
  fs::remove(spill);
  Visited(files, &status);
  EXPECT_FALSE(status.ok());
}

class TablePlanTest : public ::testing::Test {
 protected:
  void SetUp() override {
    table_ = tmp_.path() / "data" / "lake" / "t";
    nlohmann::json dv1 = {{"storageType", "u"},
                          {"pathOrInlineDv", "ab^-aqEH.-t@S}K{vb[*k^"},
                          {"offset", 1},
                          {"sizeInBytes", 40},
                          {"cardinality", 1}};
    nlohmann::json dv2 = dv1;  // the same file as dv1, another offset
    dv2["offset"] = 43;
    nlohmann::json dv3 = dv1;
    dv3["pathOrInlineDv"] = "vb[*k^ab^-aqEH.-t@S}K{";
    auto add = [](const std::string& path, const nlohmann::json& dv = nullptr) {
      nlohmann::json a = {{"path", path}, {"size", 1}, {"modificationTime", 0}};
      a["dataChange"] = true;
      if (!dv.is_null()) a["deletionVector"] = dv;
      return nlohmann::json{{"add", a}}.dump() + "\n";
    };
    std::string commit =
        nlohmann::json{{"protocol", {{"minReaderVersion", 1}, {"minWriterVersion", 2}}}}.dump() +
        "\n" +
        nlohmann::json{{"metaData",
                        {{"id", "t"},
                         {"format", {{"provider", "parquet"}}},
                         {"schemaString", "{\"type\":\"struct\",\"fields\":[]}"},
                         {"partitionColumns", nlohmann::json::array()}}}}
            .dump() +
        "\n";
    // fs::path orders "a/b" before "a-b"; std::string the other way round.
    commit += add("a/b.parquet") + add("a-b.parquet") + add("b.parquet", dv1);
    // One path live with two deletion vectors; dv2 shares dv1's file.
    commit += add("d.parquet", dv2) + add("d.parquet", dv3);
    commit += add("link.parquet") + add("sp%20ace.parquet") + add("gone.parquet");
    commit += add("s3://bucket/abs.parquet");
    commit +=
        nlohmann::json{{"cdc", {{"path", "_change_data/c.parquet"}, {"size", 1}}}}.dump() + "\n";
    WriteFile(table_ / "_delta_log" / CommitName(0), commit);
    auto dv_file = [](const nlohmann::json& dv) {
      return *delta::DeletionVectorFile("u", dv["pathOrInlineDv"].get<std::string>());
    };
    dv1_file_ = dv_file(dv1);
    dv3_file_ = dv_file(dv3);
    for (const std::string& f :
         {std::string("a/b.parquet"), std::string("a-b.parquet"), std::string("b.parquet"),
          std::string("d.parquet"), std::string("sp ace.parquet"),
          std::string("_change_data/c.parquet"), dv1_file_, dv3_file_, std::string("old.parquet"),
          std::string("_delta_log/writer.tmp")})
      WriteFile(table_ / f, f);
    fs::create_symlink("b.parquet", table_ / "link.parquet");
    config_.root = tmp_.str();
    config_.files = {};
  }

  // The plan's paths below the table folder.
  std::vector<std::string> TablePaths(const PlannedTable& table) {
    std::vector<std::string> out;
    for (const auto& f : table.files) {
      EXPECT_EQ(f.relative_path.rfind("data/lake/t/", 0), 0u) << f.relative_path;
      out.push_back(f.relative_path.substr(12));
    }
    return out;
  }

  TempDir tmp_;
  fs::path table_;
  Config config_;
  std::string dv1_file_, dv3_file_;
};

TEST_F(TablePlanTest, TakesEveryNeededFileOnceInStringOrder) {
  auto plan = PlanBackup(config_, {.allow_missing = true, .snapshot_only = true});
  ASSERT_TRUE(plan.ok()) << plan.message();
  ASSERT_EQ(plan->tables.size(), 1u);
  const PlannedTable& t = plan->tables[0];
  std::vector<std::string> expected = {CommitName(0).insert(0, "_delta_log/"),
                                       "_change_data/c.parquet",
                                       "a-b.parquet",
                                       "a/b.parquet",
                                       dv1_file_,
                                       "b.parquet",
                                       "d.parquet",
                                       "link.parquet",
                                       "sp ace.parquet",
                                       dv3_file_};
  std::sort(expected.begin(), expected.end());
  EXPECT_EQ(TablePaths(t), expected);
  EXPECT_EQ(t.missing, std::vector<std::string>{"data/lake/t/gone.parquet"});
  EXPECT_EQ(t.absolute_paths, std::vector<std::string>{"s3://bucket/abs.parquet"});
  int64_t bytes = 0;
  for (const auto& f : t.files) {
    EXPECT_FALSE(f.may_vanish) << f.relative_path;
    EXPECT_FALSE(f.mutable_content) << f.relative_path;
    if (f.relative_path == "data/lake/t/link.parquet") {
      EXPECT_EQ(f.link_target, "b.parquet");
      continue;
    }
    EXPECT_TRUE(f.link_target.empty()) << f.relative_path;
    EXPECT_EQ(f.size, static_cast<int64_t>(fs::file_size(tmp_.path() / f.relative_path)));
    bytes += f.size;
  }
  EXPECT_EQ(t.Bytes(), bytes);
  for (const std::string d : {"data/lake/t/a", "data/lake/t/ab", "data/lake/t/vb",
                              "data/lake/t/_change_data", "data/lake/t/_delta_log"})
    EXPECT_NE(std::find(plan->directories.begin(), plan->directories.end(), d),
              plan->directories.end())
        << d;
}

TEST_F(TablePlanTest, FilesTheVersionDoesNotNeedMayVanish) {
  auto plan = PlanBackup(config_, {.allow_missing = true});
  ASSERT_TRUE(plan.ok()) << plan.message();
  const PlannedTable& t = plan->tables[0];
  std::vector<std::string> expected = {CommitName(0).insert(0, "_delta_log/"),
                                       "_delta_log/writer.tmp",
                                       "_change_data/c.parquet",
                                       "a-b.parquet",
                                       "a/b.parquet",
                                       dv1_file_,
                                       "b.parquet",
                                       "d.parquet",
                                       "link.parquet",
                                       "old.parquet",
                                       "sp ace.parquet",
                                       dv3_file_};
  std::sort(expected.begin(), expected.end());
  EXPECT_EQ(TablePaths(t), expected);
  for (const auto& f : t.files) {
    bool unneeded = f.relative_path == "data/lake/t/old.parquet" ||
                    f.relative_path == "data/lake/t/_delta_log/writer.tmp";
    EXPECT_EQ(f.may_vanish, unneeded) << f.relative_path;
  }
}

TEST_F(TablePlanTest, MissingFilesAreRefusedWithoutAllowMissing) {
  auto plan = PlanBackup(config_, {.snapshot_only = true});
  ASSERT_FALSE(plan.ok());
  EXPECT_NE(plan.message().find("references files that are missing: data/lake/t/gone.parquet"),
            std::string::npos)
      << plan.message();
}

// A table whose live files do not fit the replay bound is planned in shares of its files by
// path: the same files with the same flags, each once (a deletion vector file named by live
// files of two shares too), the log entries in `files` and every other file in the share its
// path falls in, each share sorted; what is missing is found the same.
TEST_F(TablePlanTest, ATablePlannedInSharesTakesTheSameFilesEachOnceInItsShare) {
  auto described = [](const PlannedTable& t) {
    std::vector<std::string> out;
    Status s = t.ForEachFile(Env::Default(), [&](const PlannedFile& f) {
      out.push_back(f.relative_path + " " + std::to_string(f.size) + " " + std::to_string(f.mtime) +
                    " " + f.link_target + (f.may_vanish ? " may vanish" : ""));
      return Status::Ok();
    });
    EXPECT_TRUE(s.ok()) << s.message();
    std::sort(out.begin(), out.end());
    return out;
  };
  for (bool snapshot_only : {true, false}) {
    SCOPED_TRACE(snapshot_only ? "snapshot only" : "whole folder");
    auto whole = PlanBackup(config_, {.allow_missing = true, .snapshot_only = snapshot_only});
    ASSERT_TRUE(whole.ok()) << whole.message();
    auto shared = PlanBackup(
        config_,
        {.allow_missing = true, .snapshot_only = snapshot_only, .max_table_replay_bytes = 600});
    ASSERT_TRUE(shared.ok()) << shared.message();
    const PlannedTable& w = whole->tables[0];
    const PlannedTable& s = shared->tables[0];
    EXPECT_TRUE(w.shares.empty());
    ASSERT_GE(s.shares.size(), 2u);
    EXPECT_EQ(described(s), described(w));
    EXPECT_EQ(s.FileCount(), w.FileCount());
    EXPECT_EQ(s.Bytes(), w.Bytes());
    EXPECT_EQ(s.missing, w.missing);
    EXPECT_EQ(s.absolute_paths, w.absolute_paths);
    EXPECT_EQ(s.rows, w.rows);
    EXPECT_EQ(shared->directories, whole->directories);
    ASSERT_EQ(s.files.size(), 1u);  // the one commit
    EXPECT_EQ(s.files[0].relative_path, "data/lake/t/_delta_log/" + CommitName(0));
    uint32_t covered = 0;  // the shares are disjoint and cover every path
    for (const auto& share : s.shares) {
      covered += (1u << 16) / share.parts;
      std::string previous;
      for (const auto& f : share.files) {
        std::string rel = f.relative_path.substr(12);
        EXPECT_EQ(delta::ShareOf(rel, share.parts), share.part) << rel;
        EXPECT_LT(previous, f.relative_path);
        previous = f.relative_path;
      }
    }
    EXPECT_EQ(covered, 1u << 16);
  }
  // dv1's file is named by b.parquet and d.parquet: planned once whichever shares they are in.
  auto shared = PlanBackup(config_, {.allow_missing = true, .max_table_replay_bytes = 600});
  ASSERT_TRUE(shared.ok()) << shared.message();
  size_t dv1_seen = 0;
  for (const auto& share : shared->tables[0].shares)
    for (const auto& f : share.files) dv1_seen += f.relative_path == "data/lake/t/" + dv1_file_;
  EXPECT_EQ(dv1_seen, 1u);

  auto refused = PlanBackup(config_, {.snapshot_only = true, .max_table_replay_bytes = 600});
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.message().find("references files that are missing: data/lake/t/gone.parquet "),
            std::string::npos)
      << refused.message();
}

}  // namespace lakevault::testing

namespace lakevault::testing {
namespace {

// A backup hands each table to on_table_planned before the next one is planned (where it spills
// the table's list to a scratch file): a lake of many big tables then holds one table's list at a
// time. A table that cannot be planned after others were leaves no scratch file behind.
class EachTablePlannedTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const char* name : {"a", "b"}) {
      writers_.push_back(std::make_unique<DeltaWriter>(tmp_.path() / "data/lake" / name));
      for (int i = 0; i < 3; ++i) writers_.back()->Append();
    }
    config_.root = tmp_.str();
    config_.lake = "data/lake";
    WriteFile(tmp_.path() / "lakevault.yaml",
              "backup_path: " + (tmp_.path() / "backups").string() + "\n");
  }
  // A third table whose log holds no commit: planning it fails.
  void BreakThirdTable() { fs::create_directories(tmp_.path() / "data/lake/c/_delta_log"); }
  // Table a grows to 7 live files; the options of a full backup into `backups` whose replay
  // bound makes it planned in shares.
  BackupOptions GrowTableAIntoShares(const fs::path& backups) {
    for (int i = 0; i < 6; ++i) writers_[0]->Append();
    BackupOptions options;
    options.kind = BackupKind::kFull;
    options.backup_dir = backups.string();
    options.now = *ParseTime("2026-12-01T00:00:00Z");
    options.max_table_replay_bytes = 200;
    return options;
  }
  auto DryRun(BackupOptions options) {
    options.dry_run = true;
    return RunBackup(config_, options, Env::Default());
  }

  TempDir tmp_;
  Config config_;
  std::vector<std::unique_ptr<DeltaWriter>> writers_;  // tables a and b
};

TEST_F(EachTablePlannedTest, EachTableIsHandedOverBeforeTheNextIsPlanned) {
  std::vector<std::string> seen;
  std::vector<size_t> counts;
  PlanOptions options;
  options.on_table_planned = [&](size_t index, PlannedTable& table) {
    seen.push_back(std::to_string(index) + " " + table.name);
    EXPECT_FALSE(table.files.spilled());
    counts.push_back(table.files.size());
    table.files.KeepTotalsOnly();
    return Status::Ok();
  };
  auto plan = PlanBackup(config_, options);
  ASSERT_TRUE(plan.ok()) << plan.message();
  EXPECT_EQ(seen, (std::vector<std::string>{"0 a", "1 b"}));
  ASSERT_EQ(plan->tables.size(), 2u);
  for (size_t i = 0; i < 2; ++i) {
    EXPECT_TRUE(plan->tables[i].files.spilled());
    // The counts outlive the list: a dry run prints them.
    EXPECT_EQ(plan->tables[i].files.size(), counts[i]);
    EXPECT_GT(plan->tables[i].files.Bytes(), 0);
    EXPECT_FALSE(plan->tables[i]
                     .files.ForEach(Env::Default(), [](const PlannedFile&) { return Status::Ok(); })
                     .ok());
  }

  // The hook's error stops the plan there: table c, which cannot be planned, is never reached.
  BreakThirdTable();
  options.on_table_planned = [&](size_t index, PlannedTable&) -> Status {
    if (index == 0) return Error("stopped after table a");
    return Status::Ok();
  };
  auto stopped = PlanBackup(config_, options);
  ASSERT_FALSE(stopped.ok());
  EXPECT_EQ(stopped.message(), "stopped after table a");
  options.on_table_planned = nullptr;
  auto broken = PlanBackup(config_, options);
  ASSERT_FALSE(broken.ok());
  EXPECT_NE(broken.message().find("table c has no commits"), std::string::npos) << broken.message();
}

TEST_F(EachTablePlannedTest, ABackupThatFailsOnALaterTableLeavesNoScratchFile) {
  BreakThirdTable();
  RunResult failed = RunLakevault({"backup", "--full", "--no-prune"}, tmp_.str());
  EXPECT_NE(failed.exit_code, 0);
  EXPECT_NE(failed.err.find("table c has no commits"), std::string::npos) << failed.err;
  // Tables a and b were spilled to the backup folder before c was planned: all removed.
  ASSERT_TRUE(fs::is_directory(tmp_.path() / "backups")) << failed.err;
  for (const auto& e : fs::directory_iterator(tmp_.path() / "backups"))
    EXPECT_EQ(e.path().filename().string().rfind(".backup_plan_", 0), std::string::npos)
        << e.path();

  fs::remove_all(tmp_.path() / "data/lake/c");
  RunResult dry = RunLakevault({"backup", "--dry-run", "--json"}, tmp_.str());
  ASSERT_EQ(dry.exit_code, 0) << dry.err;
  auto doc = nlohmann::json::parse(dry.out);
  ASSERT_EQ(doc["tables"].size(), 2u) << dry.out;
  RunResult done = RunLakevault({"backup", "--full", "--no-prune", "--json"}, tmp_.str());
  ASSERT_EQ(done.exit_code, 0) << done.err;
  auto made = nlohmann::json::parse(done.out);
  // The dry run counted what the backup then took.
  EXPECT_EQ(made["files"], doc["files"]) << dry.out << done.out;
  EXPECT_EQ(made["bytes"], doc["bytes"]) << dry.out << done.out;
  EXPECT_EQ(made["tables"][1]["files"], doc["tables"][1]["files"]);
  RunResult verified = RunLakevault({"verify", "latest"}, tmp_.str());
  EXPECT_EQ(verified.exit_code, 0) << verified.out << verified.err;
}

// An incremental looks each file up in its parent's list, indexed a batch of tables at a time
// when the list is bigger than the bound: with room for one entry, each table (and the extra
// files) is its own batch, and the files taken again are still only those that changed.
TEST_F(EachTablePlannedTest, AnIncrementalFindsItsParentsFilesABatchOfTablesAtATime) {
  WriteFile(tmp_.path() / "config/app.yaml", "x: 1\n");
  config_.files = {"config/app.yaml"};
  BackupOptions options;
  options.kind = BackupKind::kFull;
  options.backup_dir = (tmp_.path() / "one").string();
  options.now = *ParseTime("2026-12-01T00:00:00Z");
  auto full = RunBackup(config_, options, Env::Default());
  ASSERT_TRUE(full.ok()) << full.message();
  CopyTree(tmp_.path() / "one", tmp_.path() / "two");
  writers_[1]->Append();  // table b

  options.kind = BackupKind::kIncremental;
  options.now = *ParseTime("2026-12-02T00:00:00Z");
  auto batched_options = options;
  batched_options.backup_dir = (tmp_.path() / "two").string();
  batched_options.max_parent_index_records = 1;
  auto whole = RunBackup(config_, options, Env::Default());
  ASSERT_TRUE(whole.ok()) << whole.message();
  auto batched = RunBackup(config_, batched_options, Env::Default());
  ASSERT_TRUE(batched.ok()) << batched.message();
  EXPECT_EQ(whole->parent_index_batches, 1u);
  EXPECT_EQ(batched->parent_index_batches, 3u);  // a, b, the config file
  // The new commit and its data file, nothing else.
  EXPECT_EQ(whole->files_stored, 2);
  EXPECT_EQ(batched->files_stored, 2);

  auto lines = [&](const std::string& dir, const std::string& id) {
    auto m = LoadManifest(Env::Default(), ManifestSidecarPath(dir, id));
    EXPECT_TRUE(m.ok()) << m.message();
    std::vector<std::string> out;
    for (const auto& f : m->files)
      out.push_back(f.path + " " + f.sha256 + " " + (f.backup == id ? "own" : f.backup));
    return out;
  };
  auto listed = lines((tmp_.path() / "two").string(), batched->manifest.id);
  EXPECT_EQ(listed, lines((tmp_.path() / "one").string(), whole->manifest.id));
  EXPECT_EQ(std::count_if(listed.begin(), listed.end(),
                          [&](const std::string& l) { return l.ends_with(" own"); }),
            2);
  EXPECT_NE(std::find(listed.begin(), listed.end(),
                      "config/app.yaml " + Sha256Hex("x: 1\n") + " " + full->manifest.id),
            listed.end());
}

// A backup of a table in shares that fails in a later share (a data file of the last share
// missing, or the archive's write failing late) leaves the backup folder as it was: no archive,
// no sidecar, no spilled share list (.backup_plan_*), nothing temporary.
TEST_F(EachTablePlannedTest, AFailureInALaterShareLeavesNoScratchFile) {
  const fs::path backups = tmp_.path() / "backups";
  BackupOptions options = GrowTableAIntoShares(backups);
  auto dry = DryRun(options);
  ASSERT_TRUE(dry.ok()) << dry.message();
  const auto& shares = dry->plan.tables[0].shares;
  ASSERT_GE(shares.size(), 2u);
  fs::create_directories(backups);
  const auto before = FolderState(backups);
  auto left_as_it_was = [&](const std::string& context) {
    auto after = FolderState(backups);
    after.erase(".lakevault.lock");
    EXPECT_EQ(after, before) << context;
  };

  // Each write of a full backup in shares failed in turn (share lists spilled, archive, manifest,
  // sidecars): each leaves nothing.
  int failures = 0;
  for (int nth = 1; nth <= 24; ++nth) {
    auto env =
        NewFaultInjectingEnv(Env::Default(), *FaultSpec::Parse("write:" + std::to_string(nth)));
    auto failed = RunBackup(config_, options, *env);
    if (failed.ok()) {
      // Fewer writes than that: the backup went through; it is removed for the next try.
      for (const auto& name : BackupFileNames(backups.string(), failed->manifest.id))
        fs::remove(backups / name);
      continue;
    }
    ++failures;
    left_as_it_was("write " + std::to_string(nth) + ": " + failed.message());
  }
  EXPECT_GE(failures, 8);

  // A data file of the last share gone: found only when that share is planned, after the
  // earlier ones were spilled.
  const auto [part, parts] = std::pair(shares.back().part, shares.back().parts);
  const fs::path table = tmp_.path() / "data/lake/a";
  std::string victim;
  for (const auto& e : fs::recursive_directory_iterator(table)) {
    std::string rel = e.path().lexically_relative(table).generic_string();
    if (e.is_regular_file() && rel.ends_with(".parquet") && delta::ShareOf(rel, parts) == part)
      victim = rel;
  }
  ASSERT_FALSE(victim.empty());
  fs::remove(table / victim);
  auto missing = RunBackup(config_, options, Env::Default());
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.message().find(victim), std::string::npos) << missing.message();
  left_as_it_was("missing " + victim);
}

// A table too big for one replay is planned, written and looked up in its parent share by share:
// the backup verifies and restores byte for byte, an incremental on it takes only what changed,
// and its list is the one a backup in one piece makes (in another order).
TEST_F(EachTablePlannedTest, ATableInSharesIsBackedUpRestoredAndBuiltOnShareByShare) {
  const fs::path backups = tmp_.path() / "backups";
  BackupOptions options = GrowTableAIntoShares(backups);
  auto dry = DryRun(options);
  ASSERT_TRUE(dry.ok()) << dry.message();
  EXPECT_FALSE(fs::exists(backups));  // nothing written, not even a scratch file
  auto full = RunBackup(config_, options, Env::Default());
  ASSERT_TRUE(full.ok()) << full.message();
  ASSERT_EQ(full->plan.tables.size(), 2u);
  // The dry run counted share by share what the backup then took.
  EXPECT_GE(dry->plan.tables[0].shares.size(), 2u);
  EXPECT_EQ(dry->plan.TotalFiles(), full->plan.TotalFiles());
  EXPECT_EQ(dry->plan.TotalBytes(), full->plan.TotalBytes());
  EXPECT_EQ(static_cast<int64_t>(dry->plan.tables[0].FileCount()), full->manifest.tables[0].files);
  EXPECT_GE(full->plan.tables[0].shares.size(), 2u);
  for (const auto& e : fs::directory_iterator(backups))
    EXPECT_EQ(e.path().filename().string().rfind(".backup_plan_", 0), std::string::npos)
        << e.path();
  RunResult verified = RunLakevault({"verify", "latest"}, tmp_.str());
  EXPECT_EQ(verified.exit_code, 0) << verified.out << verified.err;
  const fs::path restored = tmp_.path() / "restored";
  RunResult restore =
      RunLakevault({"restore", full->manifest.id, "--to", restored.string()}, tmp_.str());
  ASSERT_EQ(restore.exit_code, 0) << restore.out << restore.err;
  EXPECT_EQ(TreeDigest(restored / "data/lake"), TreeDigest(tmp_.path() / "data/lake"));

  // The same lake in one piece, beside it.
  auto whole_options = options;
  whole_options.backup_dir = (tmp_.path() / "whole").string();
  whole_options.max_table_replay_bytes = 0;
  auto whole = RunBackup(config_, whole_options, Env::Default());
  ASSERT_TRUE(whole.ok()) << whole.message();
  EXPECT_TRUE(whole->plan.tables[0].shares.empty());
  EXPECT_EQ(full->manifest.tables[0].files, whole->manifest.tables[0].files);
  EXPECT_EQ(full->manifest.tables[0].bytes, whole->manifest.tables[0].bytes);

  writers_[0]->Append();
  options.kind = BackupKind::kIncremental;
  options.now = *ParseTime("2026-12-02T00:00:00Z");
  options.max_parent_index_records = 1;  // each share its own batch
  auto incremental = RunBackup(config_, options, Env::Default());
  ASSERT_TRUE(incremental.ok()) << incremental.message();
  EXPECT_GE(incremental->parent_index_batches, 4u);
  // The new commit and its data file; every other file is found in the parent.
  EXPECT_EQ(incremental->files_stored, 2);
  verified = RunLakevault({"verify", "latest"}, tmp_.str());
  EXPECT_EQ(verified.exit_code, 0) << verified.out << verified.err;
  fs::remove_all(restored);
  restore = RunLakevault({"restore", "latest", "--to", restored.string()}, tmp_.str());
  ASSERT_EQ(restore.exit_code, 0) << restore.out << restore.err;
  EXPECT_EQ(TreeDigest(restored / "data/lake"), TreeDigest(tmp_.path() / "data/lake"));

  auto lines = [&](const fs::path& dir, const std::string& id) {
    auto m = LoadManifest(Env::Default(), ManifestSidecarPath(dir.string(), id));
    EXPECT_TRUE(m.ok()) << m.message();
    std::vector<std::string> out;
    for (const auto& f : m->files) out.push_back(f.path + " " + f.sha256);
    std::sort(out.begin(), out.end());
    return out;
  };
  EXPECT_EQ(lines(backups, full->manifest.id), lines(tmp_.path() / "whole", whole->manifest.id));

  // An incremental in shares on a parent written in one piece: its list names the parent's
  // members in share order, the parent's archive holds them in path order; restored exactly.
  auto mixed_options = options;
  mixed_options.backup_dir = (tmp_.path() / "whole").string();
  auto mixed = RunBackup(config_, mixed_options, Env::Default());
  ASSERT_TRUE(mixed.ok()) << mixed.message();
  EXPECT_EQ(mixed->files_stored, 2);
  const fs::path mixed_restored = tmp_.path() / "mixed";
  restore = RunLakevault({"restore", "latest", "--path", (tmp_.path() / "whole").string(), "--to",
                          mixed_restored.string()},
                         tmp_.str());
  ASSERT_EQ(restore.exit_code, 0) << restore.out << restore.err;
  EXPECT_EQ(TreeDigest(mixed_restored / "data/lake"), TreeDigest(tmp_.path() / "data/lake"));
}

}  // namespace
}  // namespace lakevault::testing
