// The I/O seam. Every file-system call that can lose data (writes, fsyncs, renames, reads of
// source files) goes through an Env, so tests can swap in a FaultInjectingEnv that fails the
// Nth call of a kind without root or special mounts (the way LevelDB's Env is used in its tests).
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/result.h"

namespace lakevault {

class WritableFile {
 public:
  virtual ~WritableFile() = default;
  virtual Status Append(const void* data, size_t size) = 0;
  virtual Status Sync() = 0;
  virtual Status Close() = 0;
  virtual const std::string& path() const = 0;
};

class SequentialFile {
 public:
  virtual ~SequentialFile() = default;
  // Reads up to `size` bytes; returns 0 at end of file.
  virtual Result<size_t> Read(void* buffer, size_t size) = 0;
  virtual const std::string& path() const = 0;
};

// Reads at any offset: a Parquet checkpoint is read a page at a time, never held whole.
class RandomAccessFile {
 public:
  virtual ~RandomAccessFile() = default;
  // Reads up to `size` bytes at `offset`; fewer only at the end of the file.
  virtual Result<size_t> ReadAt(uint64_t offset, void* buffer, size_t size) = 0;
  virtual uint64_t size() const = 0;
  virtual const std::string& path() const = 0;
};

// A RandomAccessFile over bytes already in memory (`name` is used in errors), for tests and
// fuzzing. `data` must outlive it.
std::unique_ptr<RandomAccessFile> NewMemoryFile(const std::string& data, const std::string& name);

class Env {
 public:
  virtual ~Env() = default;
  // Creates `path` exclusively (fails if it exists) with `mode`.
  virtual Result<std::unique_ptr<WritableFile>> NewWritableFile(const std::string& path,
                                                                mode_t mode) = 0;
  virtual Result<std::unique_ptr<SequentialFile>> NewSequentialFile(const std::string& path) = 0;
  virtual Result<std::unique_ptr<RandomAccessFile>> NewRandomAccessFile(
      const std::string& path) = 0;
  // With no_replace, fails with "exists" instead of overwriting `to` (renameat2 RENAME_NOREPLACE).
  virtual Status Rename(const std::string& from, const std::string& to, bool no_replace) = 0;
  // Swaps two existing paths in one step (renameat2 RENAME_EXCHANGE): a reader sees one or the
  // other, never neither. Fails with EINVAL where the file system cannot.
  virtual Status Exchange(const std::string& a, const std::string& b) = 0;
  virtual Status SyncDir(const std::string& dir) = 0;
  // fsync of a file already written and closed (a descriptor opened read-only flushes the same
  // dirty pages), so durability can be awaited later without holding descriptors open.
  virtual Status SyncFile(const std::string& path) = 0;
  // Makes everything written to the file system holding `path` durable (syncfs(2): since Linux
  // 5.8 it reports write-back errors of any file on it). One call for a tree of many small files,
  // where an fsync each costs a journal commit each.
  virtual Status SyncFileSystem(const std::string& path) = 0;
  virtual Status RemoveFile(const std::string& path) = 0;

  // The process-wide real file system. Stateless, so sharing it is safe.
  static Env& Default();
};

// Fails one chosen call: the Nth (1-based) call of `kind` ("write", "fsync", "rename", "read",
// "create") returns an error as the kernel would report it (ENOSPC for writes, EIO otherwise).
struct FaultSpec {
  std::string kind;
  int64_t nth = 0;
  // Parses "write:3" or "" (no fault). Used by tests through LAKEVAULT_FAULT.
  static Result<FaultSpec> Parse(const std::string& text);
  bool active() const { return nth > 0; }
};

std::unique_ptr<Env> NewFaultInjectingEnv(Env& base, FaultSpec spec);

// Every call forwarded to `base`: a wrapper overrides only the calls it changes or records.
class ForwardingEnv : public Env {
 public:
  explicit ForwardingEnv(Env& base = Env::Default()) : base_(base) {}
  Result<std::unique_ptr<WritableFile>> NewWritableFile(const std::string& path,
                                                        mode_t mode) override {
    return base_.NewWritableFile(path, mode);
  }
  Result<std::unique_ptr<SequentialFile>> NewSequentialFile(const std::string& path) override {
    return base_.NewSequentialFile(path);
  }
  Result<std::unique_ptr<RandomAccessFile>> NewRandomAccessFile(const std::string& path) override {
    return base_.NewRandomAccessFile(path);
  }
  Status Rename(const std::string& from, const std::string& to, bool no_replace) override {
    return base_.Rename(from, to, no_replace);
  }
  Status Exchange(const std::string& a, const std::string& b) override {
    return base_.Exchange(a, b);
  }
  Status SyncDir(const std::string& dir) override { return base_.SyncDir(dir); }
  Status SyncFile(const std::string& path) override { return base_.SyncFile(path); }
  Status SyncFileSystem(const std::string& path) override { return base_.SyncFileSystem(path); }
  Status RemoveFile(const std::string& path) override { return base_.RemoveFile(path); }

 private:
  Env& base_;
};

// Reads files that another thread of this process is still appending to (a backup's archive and
// manifest, verified while they are written). A read at a watched file's current end waits for
// more instead of returning 0, until Complete() (from then on the end is the end) or Abort()
// (from then on reads fail). Everything else goes to `base` unchanged.
class GrowingFilesEnv final : public ForwardingEnv {
 public:
  GrowingFilesEnv(Env& base, std::vector<std::string> growing);
  ~GrowingFilesEnv() override;
  // The writers are done: every watched file has all its bytes.
  void Complete();
  // The writers failed: readers waiting, or reading later, get an error.
  void Abort();

  Result<std::unique_ptr<SequentialFile>> NewSequentialFile(const std::string& path) override;

  struct State;

 private:
  std::vector<std::string> growing_;
  std::shared_ptr<State> state_;
};

// Whole-file helpers built on an Env.
Result<std::string> ReadWholeFile(Env& env, const std::string& path);
// Writes to a temporary name beside `path`, fsyncs, renames over `path`, fsyncs the folder.
Status WriteFileAtomically(Env& env, const std::string& path, const std::string& content,
                           mode_t mode = 0600);

// The guide's "permission denied" as a pre-flight: fails with one line naming the folder, its
// owner and mode, and the user to run as, when the process may not read (or, with `write`,
// create files in) `path`. `role` names the folder in the message ("backup folder", "lake").
// A `path` that does not exist yet is judged by the nearest folder above it that does, since
// that is where it would be created.
Status CheckAccess(const std::string& path, bool write, const std::string& role);

// "strerror(errno)" with the operation and path, e.g. "writing x: No space left on device".
Error ErrnoError(const std::string& what, int err);

}  // namespace lakevault
