// Corruption campaign: random single-byte flips and truncations across archives, checksum
// sidecars and manifest sidecars of full and incremental backups, and across the encrypted
// copies a remote holds. verify (or the fetch from the remote) must detect every one, and a
// restore of a damaged backup must refuse with one error line before touching the lake.
#include <gtest/gtest.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <random>

#include "core/env.h"
#include "crypto/encrypt.h"
#include "crypto/sha256.h"
#include "manifest/catalog.h"
#include "offsite/offsite.h"
#include "remote/storage.h"
#include "support/test_util.h"
#include "verify/verify.h"

namespace fs = std::filesystem;

namespace lakevault::testing {
namespace {

// Content, mode, inode and mtime of everything below the lake: a refused restore must leave
// every one of them as it was (a swap-and-swap-back would change inodes; a rewrite, mtimes).
std::map<std::string, std::string> LakeState(const fs::path& lake) {
  std::map<std::string, std::string> state;
  for (auto it = fs::recursive_directory_iterator(lake); it != fs::recursive_directory_iterator();
       ++it) {
    std::string rel = it->path().lexically_relative(lake).generic_string();
    std::string name = it->path().filename().string();
    if (name == ".lakevault-restore" || name == "backups") {
      it.disable_recursion_pending();
      continue;
    }
    struct stat st;
    ::lstat(it->path().c_str(), &st);
    std::string& s = state[rel];
    s = "mode=" + std::to_string(st.st_mode) + " ino=" + std::to_string(st.st_ino) +
        " size=" + std::to_string(st.st_size) + " mtime=" + std::to_string(st.st_mtim.tv_sec) +
        "." + std::to_string(st.st_mtim.tv_nsec);
    if (S_ISREG(st.st_mode))
      s += " sha256=" + Sha256OfFile(Env::Default(), it->path().string()).value();
    else if (S_ISLNK(st.st_mode))
      s += " -> " + fs::read_symlink(it->path()).string();
  }
  return state;
}

// The damage of one trial: a byte xor-ed with a non-zero value, or the file cut short.
struct Damage {
  bool truncate = false;
  std::string Apply(std::mt19937_64& rng, std::string bytes) {
    truncate = rng() % 5 == 0;
    if (truncate) {
      bytes.resize(rng() % bytes.size());
    } else {
      size_t at = rng() % bytes.size();
      bytes[at] = static_cast<char>(bytes[at] ^ static_cast<char>(1 + rng() % 255));
    }
    return bytes;
  }
  std::string Describe(const fs::path& target) const {
    return (truncate ? "truncation of " : "flip in ") + target.filename().string();
  }
};

// A project with two real Delta tables and three backups: a gzip full, an incremental on it and
// a zstd full; each uploaded, encrypted, to a folder remote.
class CorruptionCampaign : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = tmp_.path() / "v6";
    remote_ = tmp_.path() / "offsite";
    fs::create_directories(remote_);
    CopyTree(fs::path(CorpusDir()) / "delta-0.8.0-partitioned", root_ / "data/lake/positions");
    CopyTree(fs::path(CorpusDir()) / "table-with-dv-small", root_ / "data/lake/legs");
    WriteFile(root_ / ".env", "IB_ACCOUNT=DU42\n");
    ASSERT_EQ(Run({"key", "generate", "backup.key"}).exit_code, 0);
    WriteFile(root_ / "lakevault.yaml", "remotes:\n  usb: {type: local, path: " + remote_.string() +
                                            "}\nencryption: {key_file: backup.key}\n");
    // Distinct fake seconds: no waiting for the next second between backups.
    auto full = Run({"backup", "--full", "--upload", "usb"}, "2026-11-20T10:00:00Z");
    ASSERT_EQ(full.exit_code, 0) << full.err;
    WriteFile(root_ / "data/lake/legs/part-new.parquet", std::string(5000, 'n'));
    auto inc = Run({"backup", "--incremental", "--upload", "usb"}, "2026-11-20T11:00:00Z");
    ASSERT_EQ(inc.exit_code, 0) << inc.err;
    auto zstd =
        Run({"backup", "--full", "--compress", "zstd", "--upload", "usb"}, "2026-11-20T12:00:00Z");
    ASSERT_EQ(zstd.exit_code, 0) << zstd.err;
    // The lake moves on after the last backup, so a restore that got through would show.
    WriteFile(root_ / "data/lake/legs/part-newer.parquet", std::string(3000, 'm'));
    lake_before_ = LakeState(root_ / "data/lake");
  }

  RunResult Run(const std::vector<std::string>& args, const std::string& now = "") {
    std::map<std::string, std::string> env;
    if (!now.empty()) env["LAKEVAULT_NOW"] = now;
    return RunLakevault(args, root_.string(), env);
  }

  // The backup files of `dir` this campaign damages (not the .verify.json records).
  static std::vector<fs::path> Targets(const fs::path& dir) {
    std::vector<fs::path> targets;
    for (const auto& e : fs::directory_iterator(dir)) {
      std::string n = e.path().filename().string();
      if (n.rfind("backup_", 0) == 0 && !n.ends_with(".verify.json")) targets.push_back(e.path());
    }
    std::sort(targets.begin(), targets.end());
    return targets;
  }

  // A restore of a damaged backup: refused, one error line, the lake untouched.
  void ExpectRestoreRefused(const std::vector<std::string>& args, const std::string& what) {
    ++restores_;
    auto r = Run(args);
    std::vector<std::string> err = Lines(r.err);
    EXPECT_NE(r.exit_code, 0) << what << ": restore accepted it: " << r.out;
    EXPECT_EQ(err.size(), 1u) << what << ": " << r.err;
    // The texts an operator would read, for reviewing them by hand.
    if (std::getenv("LAKEVAULT_SHOW_ERRORS")) std::cout << what << " => " << r.err;
    if (!err.empty()) {
      EXPECT_EQ(err[0].rfind("lakevault: error: ", 0), 0u) << what << ": " << err[0];
    }
    if (r.exit_code == 0) {
      // Put the lake back so the next trials still start from the same state.
      auto back = Run({"rollback"});
      EXPECT_EQ(back.exit_code, 0) << back.err;
    }
    auto after = LakeState(root_ / "data/lake");
    if (after != lake_before_) {
      ADD_FAILURE() << what << ": the lake changed";
      lake_before_ = after;
    }
  }

  TempDir tmp_;
  fs::path root_;
  fs::path remote_;
  std::map<std::string, std::string> lake_before_;
  int restores_ = 0;
};

// The ids whose chain holds backup `damaged` (itself, and the incremental on a full).
std::vector<std::string> Dependents(const Catalog& catalog, const std::string& damaged) {
  std::vector<std::string> out = {damaged};
  for (const auto& e : catalog.entries())
    if (e.manifest && e.manifest->parent == damaged) out.push_back(e.id);
  return out;
}

TEST_F(CorruptionCampaign, VerifyDetectsEveryFlipAndTruncationAndRestoreRefusesIt) {
  const fs::path backups = root_ / "backups";
  std::vector<fs::path> targets = Targets(backups);
  ASSERT_EQ(targets.size(), 9u);  // 3 archives, 3 .sha256, 3 .manifest.json
  auto pristine_catalog = Catalog::Load(backups.string());
  ASSERT_TRUE(pristine_catalog.ok());
  ASSERT_EQ(pristine_catalog->entries().size(), 3u);
  // The control: every undamaged backup restores, so a refusal below is the damage's doing.
  for (const auto& e : pristine_catalog->entries()) {
    auto r = Run({"restore", e.id, "--to", (tmp_.path() / ("control-" + e.id)).string()});
    ASSERT_EQ(r.exit_code, 0) << e.id << ": " << r.err;
  }

  std::map<fs::path, std::string> pristine;
  for (const auto& t : targets) pristine[t] = ReadFile(t);
  std::mt19937_64 rng(99);
  const int trials = 1000 * CampaignScale();
  int detected = 0;
  std::map<std::string, int> by_kind;
  auto started = std::chrono::steady_clock::now();
  for (int i = 0; i < trials; ++i) {
    const fs::path& target = targets[rng() % targets.size()];
    Damage damage;
    WriteFile(target, damage.Apply(rng, pristine[target]));
    const std::string what = "trial " + std::to_string(i) + ": " + damage.Describe(target);
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
    if (!found) ADD_FAILURE() << "undetected: " << what;
    by_kind[target.extension().string()]++;
    if (i % 10 == 0) {
      // Restore the damaged backup, or a backup whose chain needs it.
      auto ids = Dependents(*pristine_catalog, damaged_id);
      ExpectRestoreRefused({"restore", ids[(i / 10) % ids.size()], "--yes"}, what);
    }
    WriteFile(target, pristine[target]);
    if (HasFatalFailure()) return;
  }
  EXPECT_EQ(detected, trials);
  // Undamaged again, the same command restores into the lake: the refusals were the damage's
  // doing, and they left no lock or journal behind.
  auto r = Run({"restore", pristine_catalog->entries().front().id, "--yes"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(LakeState(root_ / "data/lake"), lake_before_) << "the control restore changed nothing";
  double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  std::cout << "corruption campaign: " << trials << " trials (" << by_kind[".gz"] << " .gz, "
            << by_kind[".zst"] << " .zst, " << by_kind[".sha256"] << " .sha256, "
            << by_kind[".json"] << " .manifest.json), " << restores_
            << " refused restores, lake unchanged, " << seconds << " s\n";
  RecordProperty("trials", trials);
  RecordProperty("restores_refused", restores_);
}

// Damage the random trials may or may not hit, made on purpose: manifest sidecars that still
// parse (a tab for a space, a file's mode, the creation time). The sidecar is what restore
// reads the file list from, so restore must hold it against the manifest sealed in the archive.
TEST_F(CorruptionCampaign, RestoreRefusesAManifestSidecarThatStillParses) {
  auto catalog = Catalog::Load((root_ / "backups").string());
  ASSERT_TRUE(catalog.ok());
  const CatalogEntry& full = catalog->entries().front();
  const fs::path sidecar = ManifestSidecarPath(catalog->dir(), full.id);
  const std::string pristine = ReadFile(sidecar);
  auto edit = [&](const std::string& from, const std::string& to) {
    std::string text = pristine;
    size_t at = text.find(from);
    EXPECT_NE(at, std::string::npos) << from;
    if (at != std::string::npos) text.replace(at, from.size(), to);
    return text;
  };
  const std::vector<std::pair<std::string, std::string>> damages = {
      {"whitespace", edit("\n \"", "\n\t\"")},
      {"mode", edit("\"mode\": ", "\"mode\": 1")},
      {"created", edit("\"created\": \"2026", "\"created\": \"2025")}};
  for (const auto& [what, text] : damages) {
    SCOPED_TRACE(what);
    ASSERT_NE(text, pristine);
    WriteFile(sidecar, text);
    // Still a manifest: the damage is not caught by parsing.
    auto reloaded = Catalog::Load(catalog->dir());
    ASSERT_TRUE(reloaded.ok());
    ASSERT_TRUE(reloaded->entries().front().manifest) << reloaded->entries().front().manifest_error;
    auto v = Run({"verify", full.id});
    EXPECT_EQ(v.exit_code, 1) << v.out << v.err;
    // verify records the failure, and restore would refuse a backup that failed its last
    // verification: without the record, restore must find the damage by itself.
    fs::remove(VerifySidecarPath(catalog->dir(), full.id));
    ExpectRestoreRefused({"restore", full.id, "--yes"}, what);
    ExpectRestoreRefused({"restore", catalog->entries()[1].id, "--yes"}, what + " (its child)");
    WriteFile(sidecar, pristine);
  }
}

// Damage that turns a sidecar's file name into bytes that are not UTF-8 ends up in error texts,
// which the job history and the verify record store as JSON: it must be reported, not abort.
TEST_F(CorruptionCampaign, NonUtf8DamageIsReportedNotACrash) {
  auto catalog = Catalog::Load((root_ / "backups").string());
  ASSERT_TRUE(catalog.ok());
  const CatalogEntry& full = catalog->entries().front();
  const fs::path sidecar = Sha256SidecarPath(full.archive_path);
  std::string text = ReadFile(sidecar);
  text[66 + 3] = static_cast<char>(0xB5);  // inside the name after "<hex>  "
  WriteFile(sidecar, text);
  for (const std::vector<std::string>& args :
       {std::vector<std::string>{"verify", full.id},
        std::vector<std::string>{"verify", "--all", "--json"},
        std::vector<std::string>{"restore", full.id, "--yes"}}) {
    auto r = Run(args);
    EXPECT_EQ(r.exit_code, 1) << args[0] << ": " << r.err;  // 134 was an abort
    EXPECT_EQ(Lines(r.err).size(), 1u) << args[0] << ": " << r.err;
  }
  EXPECT_EQ(LakeState(root_ / "data/lake"), lake_before_);
  for (const fs::path& record : {root_ / "backups/.lakevault-state.json",
                                 fs::path(VerifySidecarPath(catalog->dir(), full.id))}) {
    auto doc = nlohmann::json::parse(ReadFile(record), nullptr, false);
    EXPECT_FALSE(doc.is_discarded()) << record;
  }
}

// The encrypted copies on a remote: a damaged .enc archive, .sha256 or manifest must make the
// fetch fail or leave a fetched backup that fails verification, and `restore --from` refuses.
TEST_F(CorruptionCampaign, EncryptedRemoteCopiesDetectEveryFlipAndTruncation) {
  std::vector<fs::path> targets = Targets(remote_);
  ASSERT_EQ(targets.size(), 9u);  // 3 .tar.*.enc, 3 .enc.sha256, 3 .manifest.json
  int encrypted = 0;
  for (const auto& t : targets) encrypted += t.extension() == ".enc";
  ASSERT_EQ(encrypted, 3);
  for (const auto& t : targets) {
    if (t.extension() == ".enc") {
      ASSERT_EQ(ReadFile(t).find("IB_ACCOUNT"), std::string::npos) << t;
    }
  }
  // The in-process fetches would log a line each.
  spdlog::set_level(spdlog::level::warn);
  auto storage = OpenStorage(RemoteSpec{"local", {{"path", remote_.string()}}});
  ASSERT_TRUE(storage.ok()) << storage.message();
  auto key = LoadKeyFile((root_ / "backup.key").string());
  ASSERT_TRUE(key.ok()) << key.message();
  auto listed = ListRemoteBackups(**storage);
  ASSERT_TRUE(listed.ok());
  ASSERT_EQ(listed->size(), 3u);
  auto pristine_catalog = Catalog::Load((root_ / "backups").string());
  ASSERT_TRUE(pristine_catalog.ok());

  // Fetches `id` (and its chain) into a new folder and verifies it there: detection is either.
  auto fetch_and_verify = [&](const std::string& id, std::string* why) -> bool {
    TempDir local;
    auto got = FetchBackup(Env::Default(), **storage, id, local.str(), *key);
    if (!got.ok()) {
      *why = got.message();
      return false;
    }
    auto catalog = Catalog::Load(local.str());
    if (!catalog.ok()) {
      *why = catalog.message();
      return false;
    }
    auto entry = catalog->Find(id);
    if (!entry.ok()) {
      *why = entry.message();
      return false;
    }
    if (!(*entry)->manifest) {
      *why = (*entry)->manifest_error;
      return false;
    }
    VerifyReport report = VerifyBackupWithChain(Env::Default(), *catalog, **entry, nullptr);
    if (!report.ok) *why = report.problems.front();
    return report.ok;
  };
  // The control: every undamaged remote backup fetches, decrypts and verifies.
  for (const auto& b : *listed) {
    std::string why;
    ASSERT_TRUE(fetch_and_verify(b.id, &why)) << b.id << ": " << why;
  }

  std::map<fs::path, std::string> pristine;
  for (const auto& t : targets) pristine[t] = ReadFile(t);
  std::mt19937_64 rng(4242);
  const int trials = 400 * CampaignScale();
  int detected = 0, resealed = 0, by_decryption = 0;
  std::map<std::string, int> by_kind;
  auto started = std::chrono::steady_clock::now();
  for (int i = 0; i < trials; ++i) {
    const fs::path& target = targets[rng() % targets.size()];
    Damage damage;
    std::string bytes = damage.Apply(rng, pristine[target]);
    WriteFile(target, bytes);
    std::string what = "trial " + std::to_string(i) + ": " + damage.Describe(target);
    // Damage that happened before the checksum was taken (a bad disk under the uploader) is
    // invisible to the .sha256: then the cipher's authentication alone must catch it.
    const fs::path sidecar = target.string() + ".sha256";
    const bool reseal = target.extension() == ".enc" && i % 2 == 0;
    if (reseal) {
      ++resealed;
      what += " (sidecar recomputed)";
      auto hex = Sha256OfFile(Env::Default(), target.string());
      ASSERT_TRUE(hex.ok());
      WriteFile(sidecar, Sha256SidecarContent(*hex, target.filename().string()));
    }
    by_kind[target.extension().string()]++;
    std::string damaged_id = target.filename().string().substr(0, 22);
    auto ids = Dependents(*pristine_catalog, damaged_id);
    const std::string& id = ids[i % ids.size()];
    std::string why;
    bool passed = fetch_and_verify(id, &why);
    detected += !passed;
    if (passed) ADD_FAILURE() << "undetected: " << what << " (fetching " << id << ")";
    if (reseal && why.find("decrypt") != std::string::npos) ++by_decryption;
    if (i % 10 == 0) {
      TempDir fetched;
      ExpectRestoreRefused(
          {"restore", id, "--from", "usb", "--path", (fetched.path() / "b").string(), "--yes"},
          what + " (restore --from)");
    }
    WriteFile(target, pristine[target]);
    if (reseal) WriteFile(sidecar, pristine[sidecar]);
    if (HasFatalFailure()) return;
  }
  EXPECT_EQ(detected, trials);
  EXPECT_EQ(by_decryption, resealed) << "the cipher did not catch every resealed damage";
  // Undamaged again, the same command restores into the lake.
  TempDir fetched;
  auto r = Run({"restore", listed->front().id, "--from", "usb", "--path",
                (fetched.path() / "b").string(), "--yes"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(LakeState(root_ / "data/lake"), lake_before_) << "the control restore changed nothing";
  double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  std::cout << "encrypted remote campaign: " << trials << " trials (" << by_kind[".enc"]
            << " .enc, of which " << resealed << " with the sidecar recomputed, "
            << by_kind[".sha256"] << " .sha256, " << by_kind[".json"] << " .manifest.json), "
            << restores_ << " refused restore --from, lake unchanged, " << seconds << " s\n";
  RecordProperty("trials", trials);
  RecordProperty("restores_refused", restores_);
}

}  // namespace
}  // namespace lakevault::testing
