// Off-site copies end to end through the binary: backup --upload (encrypted), list --remote,
// and restore --from on a machine whose local backups are gone (the guide's server failure),
// against a folder remote and against a real S3 server (s3rver) on 127.0.0.1.
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "support/test_util.h"

namespace fs = std::filesystem;

namespace lakevault::testing {
namespace {

class OffsiteTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = tmp_.path() / "project";
    CopyTree(fs::path(CorpusDir()) / "table-with-dv-small", root_ / "data/lake/option_legs");
    CopyTree(fs::path(CorpusDir()) / "checkpoint-cdf-table",
             root_ / "data/lake/strategy_executions");
    WriteFile(root_ / ".env", "IB_ACCOUNT=DU1\n");
    ASSERT_EQ(Run({"key", "generate", "backup.key"}).exit_code, 0);
  }
  RunResult Run(std::vector<std::string> args, std::map<std::string, std::string> env = {}) {
    return RunLakevault(args, root_.string(), env);
  }
  // Full, then incremental after a change; both uploaded; local backups lost; restore --from.
  void RoundTrip(const std::string& remote, const std::map<std::string, std::string>& env) {
    auto a = Run({"backup", "--full", "--upload", remote, "--json"}, env);
    ASSERT_EQ(a.exit_code, 0) << a.err;
    EXPECT_TRUE(nlohmann::json::parse(a.out)["uploads"][0]["encrypted"].get<bool>());
    WriteFile(root_ / "data/lake/option_legs/extra.bin", "new data");
    auto b = Run({"backup", "--incremental", "--upload", remote, "--json"}, [&] {
      auto e = env;
      e["LAKEVAULT_NOW"] = "2030-01-02T17:00:00Z";
      return e;
    }());
    ASSERT_EQ(b.exit_code, 0) << b.err;
    auto lake = TreeDigest(root_ / "data/lake");
    auto list = Run({"list", "--remote", remote, "--json"}, env);
    ASSERT_EQ(list.exit_code, 0) << list.err;
    EXPECT_EQ(nlohmann::json::parse(list.out)["backups"].size(), 2u) << list.out;
    // The server is gone: no lake, no local backups; only the config and the key.
    fs::remove_all(root_ / "backups");
    fs::remove_all(root_ / "data/lake");
    fs::create_directories(root_ / "data/lake");
    auto r = Run({"restore", "--from", remote, "--yes"}, env);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(TreeDigest(root_ / "data/lake"), lake);
    EXPECT_EQ(Run({"verify", "--all"}).exit_code, 0);
  }
  TempDir tmp_;
  fs::path root_;
};

TEST_F(OffsiteTest, FolderRemoteEncryptedRoundTripAndTampering) {
  fs::path remote = tmp_.path() / "offsite";
  fs::create_directories(remote);
  WriteFile(root_ / "lakevault.yaml", "remotes:\n  dr: {type: local, path: " + remote.string() +
                                          "}\nencryption: {key_file: backup.key}\n");
  RoundTrip("dr", {});
  // Nothing on the remote is readable without the key: archives are .enc.
  for (const auto& e : fs::directory_iterator(remote)) {
    std::string n = e.path().filename().string();
    EXPECT_TRUE(n.ends_with(".enc") || n.ends_with(".sha256") || n.ends_with(".manifest.json"))
        << n;
    if (n.ends_with(".enc")) {
      EXPECT_EQ(ReadFile(e.path()).find("IB_ACCOUNT"), std::string::npos);
    }
  }
  // A wrong key: one clear error, nothing restored.
  fs::remove_all(root_ / "backups");
  fs::remove(root_ / "backup.key");
  ASSERT_EQ(Run({"key", "generate", "backup.key"}).exit_code, 0);
  auto wrong = Run({"restore", "--from", "dr", "--yes"});
  EXPECT_NE(wrong.exit_code, 0);
  EXPECT_NE(wrong.err.find("wrong key"), std::string::npos) << wrong.err;
  EXPECT_EQ(Lines(wrong.err).size(), 1u) << wrong.err;
  // A flipped byte in the remote copy is caught before anything is restored.
  for (const auto& e : fs::directory_iterator(remote))
    if (e.path().string().ends_with(".enc")) {
      std::string bytes = ReadFile(e.path());
      bytes[bytes.size() / 2] ^= 1;
      fs::permissions(e.path(), fs::perms::owner_read | fs::perms::owner_write);
      WriteFile(e.path(), bytes);
    }
  auto tampered = Run({"restore", "--from", "dr", "--yes"});
  EXPECT_NE(tampered.exit_code, 0);
  EXPECT_NE(tampered.err.find("does not match"), std::string::npos) << tampered.err;
  // An unknown remote name is one clear line.
  auto unknown = Run({"list", "--remote", "nowhere"});
  EXPECT_NE(unknown.exit_code, 0);
  EXPECT_NE(unknown.err.find("no remote named 'nowhere'"), std::string::npos) << unknown.err;
}

// The off-site copy retried later: a backup whose upload failed (remote down) goes up with
// `upload`, its parent first; --dry-run sends nothing.
TEST_F(OffsiteTest, UploadCommandCopiesABackupAndItsChainLater) {
  fs::path remote = tmp_.path() / "offsite";
  fs::create_directories(remote);
  WriteFile(root_ / "lakevault.yaml", "remotes:\n  dr: {type: local, path: " + remote.string() +
                                          "}\nencryption: {key_file: backup.key}\n");
  ASSERT_EQ(Run({"backup", "--full"}).exit_code, 0);
  WriteFile(root_ / "data/lake/option_legs/extra.bin", "new data");
  auto inc =
      Run({"backup", "--incremental", "--json"}, {{"LAKEVAULT_NOW", "2030-01-02T17:00:00Z"}});
  ASSERT_EQ(inc.exit_code, 0) << inc.err;
  const std::string id = nlohmann::json::parse(inc.out)["id"];
  auto dry = Run({"upload", "--remote", "dr", "--dry-run", "--json"});
  ASSERT_EQ(dry.exit_code, 0) << dry.err;
  EXPECT_EQ(nlohmann::json::parse(dry.out)["id"], id);
  EXPECT_TRUE(fs::is_empty(remote));
  auto up = Run({"upload", "latest", "--remote", "dr", "--json"});
  ASSERT_EQ(up.exit_code, 0) << up.err;
  auto doc = nlohmann::json::parse(up.out);
  EXPECT_TRUE(doc["uploads"][0]["encrypted"].get<bool>());
  EXPECT_EQ(doc["uploads"][0]["objects"].size(), 6u) << up.out;  // parent's three, then its own
  auto list = Run({"list", "--remote", "dr", "--json"});
  EXPECT_EQ(nlohmann::json::parse(list.out)["backups"].size(), 2u) << list.out;
  EXPECT_EQ(Run({"verify", "--remote", "dr", "--all"}).exit_code, 0);
  // Bad input: an unknown id, an unknown remote. One line each; nothing local changes.
  const auto backups = TreeDigest(root_ / "backups");
  const auto lake = TreeDigest(root_ / "data/lake");
  auto missing = Run({"upload", "backup_19990101_000000", "--remote", "dr"});
  EXPECT_NE(missing.exit_code, 0);
  EXPECT_EQ(Lines(missing.err).size(), 1u) << missing.err;
  auto nowhere = Run({"upload", "--remote", "nowhere"});
  EXPECT_NE(nowhere.exit_code, 0);
  EXPECT_EQ(Lines(nowhere.err).size(), 1u) << nowhere.err;
  EXPECT_EQ(TreeDigest(root_ / "backups"), backups);
  EXPECT_EQ(TreeDigest(root_ / "data/lake"), lake);
}

// prune, verify and drill against a remote, with the local backup folder out of the picture.
TEST_F(OffsiteTest, PruneVerifyAndDrillWorkOnTheRemote) {
  fs::path remote = tmp_.path() / "offsite";
  fs::create_directories(remote);
  WriteFile(root_ / "lakevault.yaml", "remotes:\n  dr: {type: local, path: " + remote.string() +
                                          "}\nencryption: {key_file: backup.key}\n"
                                          "retention: {days: 5}\n");
  // F1 <- I1 in January, F2 <- I2 in February, each uploaded when taken.
  std::vector<std::pair<std::string, std::string>> plan = {
      {"--full", "2030-01-01T17:00:00Z"},
      {"--incremental", "2030-01-02T17:00:00Z"},
      {"--full", "2030-02-10T17:00:00Z"},
      {"--incremental", "2030-02-11T17:00:00Z"}};
  std::vector<std::string> ids;
  for (size_t i = 0; i < plan.size(); ++i) {
    WriteFile(root_ / "data/lake/option_legs" / ("extra" + std::to_string(i) + ".bin"),
              std::string(1000 + i, 'x'));
    auto r = Run({"backup", plan[i].first, "--no-prune", "--upload", "dr", "--json"},
                 {{"LAKEVAULT_NOW", plan[i].second}});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    ids.push_back(nlohmann::json::parse(r.out)["id"]);
  }
  const auto local_before = FolderState(root_ / "backups");
  const auto remote_before = FolderState(remote);
  const std::map<std::string, std::string> feb20 = {{"LAKEVAULT_NOW", "2030-02-20T12:00:00Z"}};

  // Dry run: the decisions, nothing deleted.
  auto dry = Run({"prune", "--remote", "dr", "--dry-run", "--json"}, feb20);
  ASSERT_EQ(dry.exit_code, 0) << dry.err;
  auto decisions = nlohmann::json::parse(dry.out)["remotes"][0]["backups"];
  ASSERT_EQ(decisions.size(), 4u) << dry.out;
  std::vector<bool> keep;
  for (const auto& d : decisions) keep.push_back(d["keep"].get<bool>());
  // I2 is the newest; F2 is kept because I2 needs it; January's chain goes.
  EXPECT_EQ(keep, (std::vector<bool>{false, false, true, true})) << dry.out;
  EXPECT_EQ(FolderState(remote), remote_before);

  auto pruned = Run({"prune", "--remote", "dr", "--json"}, feb20);
  ASSERT_EQ(pruned.exit_code, 0) << pruned.err;
  auto listed = nlohmann::json::parse(Run({"list", "--remote", "dr", "--json"}).out)["backups"];
  ASSERT_EQ(listed.size(), 2u);
  EXPECT_EQ(listed[0]["id"], ids[2]);
  EXPECT_EQ(listed[1]["id"], ids[3]);
  for (const auto& e : fs::directory_iterator(remote))
    EXPECT_EQ(e.path().filename().string().find(ids[0]), std::string::npos) << e.path();
  EXPECT_EQ(FolderState(root_ / "backups"), local_before) << "prune --remote touched local";

  // Plain `prune` applies the policy to every configured remote too, except one whose expiry is
  // left to an S3 lifecycle rule (`prune: lifecycle`).
  fs::path second = tmp_.path() / "second";
  fs::create_directories(second);
  for (const auto& e : fs::directory_iterator(remote))
    fs::copy(e.path(), second / e.path().filename());
  WriteFile(root_ / "data/lake/option_legs/extra-late.bin", "late");
  WriteFile(root_ / "lakevault.yaml",
            "remotes:\n  dr: {type: local, path: " + remote.string() +
                "}\n  cold: {type: local, path: " + second.string() +
                ", prune: lifecycle}\nencryption: {key_file: backup.key}\nretention: {days: 5}\n");
  ASSERT_EQ(Run({"backup", "--full", "--no-prune", "--upload", "dr"},
                {{"LAKEVAULT_NOW", "2030-03-20T17:00:00Z"}})
                .exit_code,
            0);
  const auto cold_before = FolderState(second);
  auto all = Run({"prune", "--json"}, {{"LAKEVAULT_NOW", "2030-03-21T12:00:00Z"}});
  ASSERT_EQ(all.exit_code, 0) << all.err;
  auto remotes = nlohmann::json::parse(all.out)["remotes"];
  ASSERT_EQ(remotes.size(), 1u) << all.out;
  EXPECT_EQ(remotes[0]["remote"], "dr");
  EXPECT_EQ(remotes[0]["deleted"].size(), 2u) << all.out;  // February's chain
  EXPECT_EQ(FolderState(second), cold_before);
  auto now_listed = nlohmann::json::parse(Run({"list", "--remote", "dr", "--json"}).out);
  ASSERT_EQ(now_listed["backups"].size(), 1u);
  WriteFile(root_ / "lakevault.yaml", "remotes:\n  dr: {type: local, path: " + remote.string() +
                                          "}\nencryption: {key_file: backup.key}\n"
                                          "retention: {days: 5}\n");
  ids[3] = now_listed["backups"][0]["id"];
  const auto local_after = FolderState(root_ / "backups");

  // verify --remote: downloaded, decrypted, verified, scratch removed.
  auto verified = Run({"verify", "--remote", "dr", "--all", "--json"});
  ASSERT_EQ(verified.exit_code, 0) << verified.err << verified.out;
  EXPECT_EQ(nlohmann::json::parse(verified.out)["backups"].size(), 1u);
  EXPECT_EQ(FolderState(root_ / "backups"), local_after) << "scratch left behind";

  // drill --remote on a machine that has lost its backups: fetched, drilled, download timed.
  fs::remove_all(root_ / "backups");
  auto drill = Run({"drill", "--remote", "dr", "--json"});
  ASSERT_EQ(drill.exit_code, 0) << drill.err << drill.out;
  auto report = nlohmann::json::parse(drill.out);
  EXPECT_EQ(report["id"], ids[3]);
  EXPECT_TRUE(report["ok"].get<bool>());
  EXPECT_EQ(report["steps"][0]["name"], "download from dr");

  // Damage on the remote: verify --remote names it; nothing local changes.
  for (const auto& e : fs::directory_iterator(remote))
    if (e.path().string().ends_with(".enc") &&
        e.path().filename().string().find(ids[3]) != std::string::npos) {
      std::string bytes = ReadFile(e.path());
      bytes[bytes.size() / 3] ^= 4;
      WriteFile(e.path(), bytes);
    }
  auto damaged = Run({"verify", "--remote", "dr", "latest"});
  EXPECT_NE(damaged.exit_code, 0);
  EXPECT_NE(damaged.err.find("does not match"), std::string::npos) << damaged.err;
  EXPECT_EQ(Lines(damaged.err).size(), 1u) << damaged.err;
}

// libcurl and its 25 libraries are loaded by the first remote or webhook call, not at start: a
// local backup never maps them (the loader's own log, LD_DEBUG=files, names each library it
// opens), and a command that talks to S3 loads it and works.
// A remote prune reads each backup's manifest header as a stream, whatever the length of the
// list after it: a read of the first 64 MiB left a manifest of some 200,000 files unreadable, and
// its backup was never pruned ("kept: its manifest on the remote is unreadable").
TEST_F(OffsiteTest, PruneRemoteReadsAManifestOfAnySize) {
  fs::path remote = tmp_.path() / "offsite";
  fs::create_directories(remote);
  WriteFile(root_ / "lakevault.yaml",
            "remotes:\n  dr: {type: local, path: " + remote.string() + "}\nretention: {days: 5}\n");
  std::vector<std::string> ids;
  for (const char* when : {"2030-01-01T17:00:00Z", "2030-02-10T17:00:00Z"}) {
    auto r = Run({"backup", "--full", "--no-prune", "--upload", "dr", "--json"},
                 {{"LAKEVAULT_NOW", when}});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    ids.push_back(nlohmann::json::parse(r.out)["id"]);
  }
  // January's manifest on the remote grows a list of 70,000 entries of long paths: 75 MB.
  const fs::path object = remote / (ids[0] + ".manifest.json");
  auto manifest = LoadManifest(Env::Default(), object.string());
  ASSERT_TRUE(manifest.ok()) << manifest.message();
  for (int i = 0; i < 70000; ++i) {
    ManifestFile f;
    f.path = "data/lake/option_legs/" + std::string(960, 'p') + std::to_string(i);
    f.size = 1;
    f.sha256 = std::string(64, 'a');
    f.backup = ids[0];
    manifest->files.push_back(std::move(f));
  }
  WriteFile(object, ManifestToJson(*manifest));
  ASSERT_GT(fs::file_size(object), uintmax_t{64} << 20);

  auto pruned =
      Run({"prune", "--remote", "dr", "--json"}, {{"LAKEVAULT_NOW", "2030-02-20T12:00:00Z"}});
  ASSERT_EQ(pruned.exit_code, 0) << pruned.err;
  auto decisions = nlohmann::json::parse(pruned.out)["remotes"][0]["backups"];
  ASSERT_EQ(decisions.size(), 2u) << pruned.out;
  EXPECT_FALSE(decisions[0]["keep"].get<bool>()) << decisions[0];
  auto listed = nlohmann::json::parse(Run({"list", "--remote", "dr", "--json"}).out)["backups"];
  ASSERT_EQ(listed.size(), 1u);
  EXPECT_EQ(listed[0]["id"], ids[1]);
  EXPECT_FALSE(fs::exists(object));
}

TEST_F(OffsiteTest, LibcurlIsLoadedOnlyWhenARemoteNeedsIt) {
  const std::map<std::string, std::string> trace = {{"LD_DEBUG", "files"}};
  auto local = Run({"backup", "--full"}, trace);
  ASSERT_EQ(local.exit_code, 0) << local.err;
  EXPECT_NE(local.err.find("libarchive.so"), std::string::npos) << "no loader trace";
  EXPECT_EQ(local.err.find("libcurl"), std::string::npos) << local.err;
  WriteFile(root_ / "lakevault.yaml",
            "remotes:\n  offsite: {type: s3, url: \"s3://b/x\", endpoint: "
            "\"http://127.0.0.1:1\", region: us-east-1, path_style: \"true\", retries: 0}\n");
  auto remote =
      Run({"list", "--remote", "offsite"},
          {{"LD_DEBUG", "files"}, {"AWS_ACCESS_KEY_ID", "k"}, {"AWS_SECRET_ACCESS_KEY", "s"}});
  EXPECT_NE(remote.exit_code, 0);  // nothing listens on port 1
  EXPECT_NE(remote.err.find("libcurl.so.4"), std::string::npos) << remote.err;
  EXPECT_NE(remote.err.find("127.0.0.1:1"), std::string::npos) << remote.err;
}

TEST_F(OffsiteTest, S3RemoteThroughS3rver) {
  S3Server s3(tmp_.path() / "s3data", "lakevault-test");
  if (s3.port == 0) {
    if (std::getenv("CI")) FAIL() << s3.error;
    GTEST_SKIP() << s3.error;
  }
  const int port = s3.port;
  WriteFile(
      root_ / "lakevault.yaml",
      "remotes:\n  offsite: {type: s3, url: \"s3://lakevault-test/v6-trading\", endpoint: "
      "\"http://127.0.0.1:" +
          std::to_string(port) +
          "\", region: us-east-1, path_style: \"true\"}\nencryption: {key_file: backup.key}\n");
  std::map<std::string, std::string> env = {
      {"AWS_ACCESS_KEY_ID", "S3RVER"}, {"AWS_SECRET_ACCESS_KEY", "S3RVER"}, {"HOME", tmp_.str()}};
  RoundTrip("offsite", env);
  // The guide's --upload-s3 path: UPLOAD_S3=true uploads to the first s3 remote.
  auto g = Run({"backup", "--full", "--json"}, [&] {
    auto e = env;
    e["UPLOAD_S3"] = "true";
    e["LAKEVAULT_NOW"] = "2030-02-01T17:00:00Z";
    return e;
  }());
  ASSERT_EQ(g.exit_code, 0) << g.err;
  EXPECT_EQ(nlohmann::json::parse(g.out)["uploads"].size(), 1u);
  // Unreachable endpoint: one clear line, the local backup kept.
  WriteFile(root_ / "lakevault.yaml",
            "remotes:\n  offsite: {type: s3, url: \"s3://lakevault-test/x\", endpoint: "
            "\"http://127.0.0.1:1\", region: us-east-1, path_style: \"true\"}\n");
  auto down = Run({"backup", "--full", "--upload", "offsite"}, [&] {
    auto e = env;
    e["LAKEVAULT_NOW"] = "2030-03-01T17:00:00Z";
    return e;
  }());
  EXPECT_NE(down.exit_code, 0);
  EXPECT_NE(down.err.find("written and verified locally"), std::string::npos) << down.err;
  // Retries are announced as warnings; the verdict is one error line, the last.
  auto lines = Lines(down.err);
  ASSERT_FALSE(lines.empty());
  EXPECT_EQ(lines.back().rfind("lakevault: error: ", 0), 0u) << down.err;
  size_t errors = 0;
  for (const auto& l : lines) errors += l.rfind("lakevault: error: ", 0) == 0;
  EXPECT_EQ(errors, 1u) << down.err;
  EXPECT_TRUE(fs::exists(root_ / "backups/backup_20300301_170000.tar.gz"));
}

}  // namespace
}  // namespace lakevault::testing
