// Shared by the storage implementations; not part of the module's public interface.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "core/env.h"
#include "remote/storage.h"

namespace lakevault::remote_internal {

Result<std::unique_ptr<Storage>> OpenLocalStorage(const RemoteSpec& spec);
Result<std::unique_ptr<Storage>> OpenS3Storage(const RemoteSpec& spec);
Result<std::unique_ptr<Storage>> OpenRsyncStorage(const RemoteSpec& spec);

// A local file written under a temporary name beside `path` and renamed over it by Commit, so
// an interrupted download never leaves a partial file under the final name.
class AtomicLocalFile {
 public:
  explicit AtomicLocalFile(std::string path, Env& env = Env::Default());
  ~AtomicLocalFile();  // removes the temporary unless committed
  AtomicLocalFile(const AtomicLocalFile&) = delete;
  AtomicLocalFile& operator=(const AtomicLocalFile&) = delete;
  // (Re)creates the temporary empty: a retried download starts over.
  Status Open();
  Status Append(const void* data, size_t size);
  Status Commit();
  const std::string& temp_path() const { return temp_; }

 private:
  Env& env_;
  std::string path_;
  std::string temp_;
  std::unique_ptr<WritableFile> file_;
  bool committed_ = false;
};

std::string TempNameBeside(const std::string& path);
std::string ParentDir(const std::string& path);

struct ProcessResult {
  int exit_code = -1;  // 128 + signal when killed by a signal
  std::string out;
  std::string err;
};
// fork/exec of argv[0] (searched in PATH) without a shell; captures stdout and stderr, or
// sends them to /dev/null when `capture` is false (for a child that leaves a daemon behind
// holding its output, which would otherwise never reach end of file).
Result<ProcessResult> RunProcess(const std::vector<std::string>& argv, bool capture = true);

// 'text' quoted for a POSIX shell.
std::string ShellQuote(const std::string& text);
// The last non-empty line of `text`, for one-line error messages.
std::string LastLine(const std::string& text);

}  // namespace lakevault::remote_internal
