// Fault campaign: the Nth write, fsync, rename, read or file creation of a backup and of a
// restore fails (LAKEVAULT_FAULT=kind:N, through the Env seam). Each must end in one clear
// error line and a non-zero exit with nothing lost: no new backup under a final name, earlier
// backups untouched, and for a restore the lake exactly as before (rolled back if it had been
// swapped).
#include <gtest/gtest.h>

#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>

#include "support/test_util.h"

namespace fs = std::filesystem;

namespace lakevault::testing {
namespace {

// Failure points to try per kind: every one up to 12, then spread out, until a run no longer
// reaches the Nth call.
const std::vector<int> kPoints = {1,  2,  3,  4,  5,  6,   7,   8,   9,   10,  11,
                                  12, 16, 24, 40, 64, 100, 160, 250, 400, 640, 1000};
const std::vector<std::string> kKinds = {"write", "fsync", "rename", "read", "create"};

class FaultCampaign : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = tmp_.path() / "v6";
    for (const char* t : {"delta-0.8.0-partitioned", "table-with-dv-small", "checkpoint-cdf-table"})
      CopyTree(fs::path(CorpusDir()) / t, root_ / "data/lake" / t);
    WriteFile(root_ / ".env", "IB_ACCOUNT=DU777\n");
    WriteFile(root_ / "config/production.yaml", "broker: ib\n");
  }
  std::map<std::string, std::string> Backups() {
    auto s = FolderState(root_ / "backups");
    s.erase(".lakevault.lock");
    return s;
  }
  TempDir tmp_;
  fs::path root_;
};

TEST_F(FaultCampaign, EveryBackupFailurePointLosesNothing) {
  ASSERT_EQ(RunLakevault({"backup", "--full", "--no-prune"}, root_.string()).exit_code, 0);
  WriteFile(root_ / "data/lake/table-with-dv-small/new.bin", std::string(100000, 'n'));
  const auto lake = TreeDigest(root_ / "data/lake");
  int failures = 0;
  int second = 1;
  for (const auto& kind : kKinds) {
    for (int n : kPoints) {
      SCOPED_TRACE(kind + ":" + std::to_string(n));
      const auto before = Backups();
      // A distinct time per run so a success cannot collide with an earlier id.
      std::string now = "2026-12-01T10:" + std::to_string(10 + second / 60) + ":" +
                        (second % 60 < 10 ? "0" : "") + std::to_string(second % 60) + "Z";
      ++second;
      auto r = RunLakevault(
          {"backup", "--no-prune"}, root_.string(),
          {{"LAKEVAULT_FAULT", kind + ":" + std::to_string(n)}, {"LAKEVAULT_NOW", now}});
      ASSERT_EQ(TreeDigest(root_ / "data/lake"), lake);
      if (r.exit_code == 0) break;  // the run made fewer than n such calls
      ++failures;
      auto lines = Lines(r.err);
      ASSERT_EQ(lines.size(), 1u) << r.err;
      EXPECT_EQ(lines[0].rfind("lakevault: error: ", 0), 0u) << r.err;
      // Only a failure after the final rename (syncing the folder) leaves the new backup, and
      // then the error says so.
      if (r.err.find("is written and verified") == std::string::npos)
        ASSERT_EQ(Backups(), before) << r.err;
      else
        ASSERT_NE(r.err.find("fsync"), std::string::npos) << r.err;
    }
  }
  auto v = RunLakevault({"verify", "--all"}, root_.string());
  EXPECT_EQ(v.exit_code, 0) << v.out << v.err;
  RecordProperty("backup_fault_points", failures);
  std::cout << "backup fault points that failed cleanly: " << failures << "\n";
  EXPECT_GE(failures, 15);
}

TEST_F(FaultCampaign, EveryRestoreFailurePointLeavesTheOldLake) {
  ASSERT_EQ(RunLakevault({"backup", "--full", "--no-prune"}, root_.string()).exit_code, 0);
  const auto backed_up = TreeDigest(root_ / "data/lake");
  WriteFile(root_ / "data/lake/table-with-dv-small/junk.bin", "junk");
  WriteFile(root_ / "config/production.yaml", "broker: changed\n");
  const auto drifted = TreeDigest(root_ / "data/lake");
  int failures = 0;
  for (const auto& kind : kKinds) {
    for (int n : kPoints) {
      SCOPED_TRACE(kind + ":" + std::to_string(n));
      auto r = RunLakevault({"restore", "--yes", "--with-config"}, root_.string(),
                            {{"LAKEVAULT_FAULT", kind + ":" + std::to_string(n)}});
      if (r.exit_code == 0) {
        ASSERT_EQ(TreeDigest(root_ / "data/lake"), backed_up);
        ASSERT_EQ(RunLakevault({"rollback"}, root_.string()).exit_code, 0);
        ASSERT_EQ(TreeDigest(root_ / "data/lake"), drifted);
        break;
      }
      ++failures;
      EXPECT_EQ(Lines(r.err).size(), 1u) << r.err;
      // A failed restore leaves the old lake and config; if a rollback could not finish, the
      // next run does it.
      if (TreeDigest(root_ / "data/lake") != drifted) {
        auto rb = RunLakevault({"rollback"}, root_.string());
        ASSERT_EQ(rb.exit_code, 0) << r.err << " / " << rb.err;
      }
      ASSERT_EQ(TreeDigest(root_ / "data/lake"), drifted) << r.err;
      ASSERT_EQ(ReadFile(root_ / "config/production.yaml"), "broker: changed\n") << r.err;
      // Nothing kept to roll back to from a failed restore.
      auto rb = RunLakevault({"rollback"}, root_.string());
      ASSERT_NE(rb.exit_code, 0) << "a failed restore left a rollback copy: " << r.err;
    }
  }
  RecordProperty("restore_fault_points", failures);
  std::cout << "restore fault points that failed cleanly: " << failures << "\n";
  EXPECT_GE(failures, 15);
}

}  // namespace
}  // namespace lakevault::testing
