// Corruption campaign: random single-byte flips and truncations across archives, checksum
// sidecars and manifest sidecars of full and incremental backups. verify must detect every one.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>

#include "core/env.h"
#include "manifest/catalog.h"
#include "support/test_util.h"
#include "verify/verify.h"

namespace fs = std::filesystem;

namespace lakevault::testing {
namespace {

int Scale() {
  const char* s = std::getenv("LAKEVAULT_CAMPAIGN_SCALE");
  return s ? std::max(1, std::atoi(s)) : 1;
}

TEST(CorruptionCampaign, VerifyDetectsEveryFlipAndTruncation) {
  TempDir tmp;
  fs::path root = tmp.path() / "v6";
  CopyTree(fs::path(CorpusDir()) / "delta-0.8.0-partitioned", root / "data/lake/positions");
  CopyTree(fs::path(CorpusDir()) / "table-with-dv-small", root / "data/lake/legs");
  WriteFile(root / ".env", "IB_ACCOUNT=DU42\n");
  ASSERT_EQ(RunLakevault({"backup", "--full"}, root.string()).exit_code, 0);
  WriteFile(root / "data/lake/legs/part-new.parquet", std::string(5000, 'n'));
  ASSERT_EQ(RunLakevault({"backup", "--incremental"}, root.string()).exit_code, 0);
  ASSERT_EQ(RunLakevault({"backup", "--full", "--compress", "zstd"}, root.string()).exit_code, 0);

  const fs::path backups = root / "backups";
  std::vector<fs::path> targets;
  for (const auto& e : fs::directory_iterator(backups)) {
    std::string n = e.path().filename().string();
    if (n.rfind("backup_", 0) == 0 && !n.ends_with(".verify.json")) targets.push_back(e.path());
  }
  std::sort(targets.begin(), targets.end());
  ASSERT_EQ(targets.size(), 9u);  // 3 archives, 3 .sha256, 3 .manifest.json

  std::map<fs::path, std::string> pristine;
  for (const auto& t : targets) pristine[t] = ReadFile(t);
  std::mt19937_64 rng(99);
  const int trials = 1000 * Scale();
  int detected = 0;
  std::map<std::string, int> by_kind;
  for (int i = 0; i < trials; ++i) {
    const fs::path& target = targets[rng() % targets.size()];
    std::string bytes = pristine[target];
    bool truncate = rng() % 5 == 0;
    if (truncate) {
      bytes.resize(rng() % bytes.size());
    } else {
      size_t at = rng() % bytes.size();
      bytes[at] = static_cast<char>(bytes[at] ^ static_cast<char>(1 + rng() % 255));
    }
    WriteFile(target, bytes);
    // Every backup whose chain includes the damaged file must fail; verify them all.
    auto catalog = Catalog::Load(backups.string());
    ASSERT_TRUE(catalog.ok());
    std::string damaged_id = target.filename().string().substr(0, 22);
    bool found = false;
    std::map<std::string, VerifyReport> cache;
    for (const auto& entry : catalog->entries()) {
      VerifyReport report = VerifyBackupWithChain(Env::Default(), *catalog, entry, &cache);
      if (entry.id == damaged_id && !report.ok) found = true;
    }
    // A damaged manifest sidecar can make the backup unlisted-as-valid: that is detection too.
    for (const auto& entry : catalog->entries())
      if (entry.id == damaged_id && !entry.manifest) found = true;
    detected += found;
    if (!found)
      ADD_FAILURE() << "undetected: " << (truncate ? "truncation of " : "flip in ") << target;
    by_kind[target.extension().string()]++;
    WriteFile(target, pristine[target]);
  }
  EXPECT_EQ(detected, trials);
  RecordProperty("trials", trials);
}

}  // namespace
}  // namespace lakevault::testing
