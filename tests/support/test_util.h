// Shared helpers for tests: temporary folders, running the real binary, comparing trees.
#pragma once

#include <atomic>
#include <chrono>
#include <filesystem>
#include <map>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "core/env.h"
#include "manifest/manifest.h"

namespace lakevault::testing {

std::string CorpusDir();   // ../shared/delta-corpus (LAKEVAULT_CORPUS overrides)
std::string BinaryPath();  // build/lakevault
std::string SourceDir();

class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }
  std::string str() const { return path_.string(); }

 private:
  std::filesystem::path path_;
};

struct RunResult {
  int exit_code = -1;
  std::string out;
  std::string err;
};

// Runs build/lakevault with `args` in `cwd` with extra environment variables.
RunResult RunLakevault(const std::vector<std::string>& args, const std::string& cwd,
                       const std::map<std::string, std::string>& env = {});
// Runs a shell command line, capturing output.
RunResult RunShell(const std::string& command, const std::string& cwd = "");

// path -> sha256 of every regular file (and "-> target" of symlinks) below `root`.
std::map<std::string, std::string> TreeDigest(const std::filesystem::path& root);
// Listing of every file in `dir` with size and mtime, to prove a folder was left untouched.
std::map<std::string, std::string> FolderState(const std::filesystem::path& dir);

void CopyTree(const std::filesystem::path& from, const std::filesystem::path& to);
std::string ReadFile(const std::filesystem::path& path);
void WriteFile(const std::filesystem::path& path, const std::string& content);
// `size` bytes of a pseudo-random stream (mt19937 from `seed`): incompressible, reproducible.
std::string RandomBytes(size_t size, uint32_t seed);
// Non-empty lines of `text`.
std::vector<std::string> Lines(const std::string& text);

// A backup in `dir` as lakevault lays one out, from given parts: the archive
// `manifest.archive` holding `members` (path, content: regular files, in that order) and then
// `manifest` as its last member, its manifest sidecar and its .sha256 sidecar. Lets a test give
// verify or restore an archive lakevault would not write (out of order, damaged, mislabelled).
void WriteBackupForTest(const std::filesystem::path& dir, const Manifest& manifest,
                        const std::vector<std::pair<std::string, std::string>>& members);

// LAKEVAULT_CAMPAIGN_SCALE (at least 1): campaigns multiply their trial counts by it.
int CampaignScale();

// "%020d.json", the name of commit `v` in a Delta log.
std::string CommitName(int64_t v);

// A Delta table appended to the way Delta writers do: the data file first, then the commit
// under a temporary name renamed into place, so a reader never sees a half-written commit.
// Sets `stop` and joins `thread` however the test ends, so a failed assertion reports instead
// of aborting on a joinable std::thread.
struct ThreadJoiner {
  std::atomic<bool>& stop;
  std::thread& thread;
  ~ThreadJoiner() {
    stop = true;
    if (thread.joinable()) thread.join();
  }
};

class DeltaWriter {
 public:
  explicit DeltaWriter(std::filesystem::path dir);
  // One commit adding a data file (every 4th also removes the oldest live one); the add's
  // stats say numRecords = version + 1.
  void Append();
  int64_t version() const { return version_ - 1; }

 private:
  void Commit(const std::vector<std::string>& actions);
  std::filesystem::path dir_;
  int64_t version_ = 0;
  std::vector<std::string> live_;
};

// A real S3-compatible server (s3rver from tests/s3, installed with `npm ci` on first use) on
// 127.0.0.1 with bucket `bucket`, its data in `data_dir`; stopped when this goes. port == 0
// when it could not start (`error` says why).
class S3Server {
 public:
  S3Server(const std::filesystem::path& data_dir, const std::string& bucket);
  ~S3Server();
  // Waits (at most `limit`) until no TCP connection to the server holds unread or unsent bytes
  // and then until its data folder stops changing: a request a killed client had wholly sent is
  // still stored, as S3 would, once the server has read it from loopback and written it.
  // Returns false on timeout.
  bool WaitUntilIdle(std::chrono::milliseconds limit) const;
  int port = 0;
  std::string error;

 private:
  std::string pattern_;
  std::filesystem::path data_dir_;
};

// The real file system, every call forwarded: a test overrides the calls it records.
using lakevault::ForwardingEnv;

}  // namespace lakevault::testing
