// Shared helpers for tests: temporary folders, running the real binary, comparing trees.
#pragma once

#include <filesystem>
#include <map>
#include <string>
#include <vector>

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
// Non-empty lines of `text`.
std::vector<std::string> Lines(const std::string& text);

// A real S3-compatible server (s3rver from tests/s3, installed with `npm ci` on first use) on
// 127.0.0.1 with bucket `bucket`, its data in `data_dir`; stopped when this goes. port == 0
// when it could not start (`error` says why).
class S3Server {
 public:
  S3Server(const std::filesystem::path& data_dir, const std::string& bucket);
  ~S3Server();
  int port = 0;
  std::string error;

 private:
  std::string pattern_;
};

}  // namespace lakevault::testing
