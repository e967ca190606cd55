#include "core/env.h"

#include <fcntl.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <mutex>

namespace lakevault {

Status CheckAccess(const std::string& requested, bool write, const std::string& role) {
  std::error_code ec;
  std::filesystem::path existing = std::filesystem::absolute(requested, ec);
  while (!std::filesystem::exists(existing, ec) && existing.has_parent_path() &&
         existing != existing.parent_path())
    existing = existing.parent_path();
  if (existing != std::filesystem::absolute(requested, ec))
    return CheckAccess(existing.string(), write, "folder for the " + role);
  const std::string path = existing.string();
  int mode = R_OK | X_OK | (write ? W_OK : 0);
  if (::access(path.c_str(), mode) == 0) return Status::Ok();
  int err = errno;
  if (err != EACCES && err != EPERM && err != EROFS) return Status::Ok();  // later steps report it
  if (err == EROFS)
    return Error("the " + role + " " + path +
                 " is on a read-only file system; nothing was written");
  struct stat st {};
  std::string owner = "?";
  std::string mode_text = "?";
  if (::stat(path.c_str(), &st) == 0) {
    if (const struct passwd* pw = ::getpwuid(st.st_uid))
      owner = pw->pw_name;
    else
      owner = std::to_string(st.st_uid);
    char buf[8];
    std::snprintf(buf, sizeof buf, "%04o", static_cast<unsigned>(st.st_mode & 07777));
    mode_text = buf;
  }
  std::string me = std::to_string(::geteuid());
  if (const struct passwd* pw = ::getpwuid(::geteuid())) me = pw->pw_name;
  return Error("permission denied: user " + me + " cannot " + (write ? "write to" : "read") +
               " the " + role + " " + path + " (owner " + owner + ", mode " + mode_text +
               "); run lakevault as " + owner + " (e.g. `sudo -u " + owner + " lakevault ...`)");
}

Error ErrnoError(const std::string& what, int err) {
  return Error(what + ": " + std::strerror(err));
}

namespace {

class PosixWritableFile final : public WritableFile {
 public:
  PosixWritableFile(std::string path, int fd) : path_(std::move(path)), fd_(fd) {}
  ~PosixWritableFile() override {
    if (fd_ >= 0) ::close(fd_);
  }
  Status Append(const void* data, size_t size) override {
    const char* p = static_cast<const char*>(data);
    while (size > 0) {
      ssize_t n = ::write(fd_, p, size);
      if (n < 0) {
        if (errno == EINTR) continue;
        return ErrnoError("writing " + path_, errno);
      }
      p += n;
      size -= static_cast<size_t>(n);
      written_ += n;
    }
    // Write-back of what is written so far starts now rather than at Sync: the final fsync of a
    // 900 MB archive then waits for its last pieces only (it took 0.8 s after the last write on
    // the benchmark's lake). A hint: a failure here shows in Sync.
    if (written_ - flushed_ >= kWriteBackStep) {
      ::sync_file_range(fd_, flushed_, written_ - flushed_, SYNC_FILE_RANGE_WRITE);
      flushed_ = written_;
    }
    return Status::Ok();
  }
  Status Sync() override {
    if (::fsync(fd_) != 0) return ErrnoError("fsync " + path_, errno);
    return Status::Ok();
  }
  Status Close() override {
    if (fd_ < 0) return Status::Ok();
    int fd = fd_;
    fd_ = -1;
    if (::close(fd) != 0) return ErrnoError("closing " + path_, errno);
    return Status::Ok();
  }
  const std::string& path() const override { return path_; }

 private:
  static constexpr off_t kWriteBackStep = 8 << 20;
  std::string path_;
  int fd_;
  off_t written_ = 0;
  off_t flushed_ = 0;
};

class PosixSequentialFile final : public SequentialFile {
 public:
  PosixSequentialFile(std::string path, int fd) : path_(std::move(path)), fd_(fd) {}
  ~PosixSequentialFile() override { ::close(fd_); }
  Result<size_t> Read(void* buffer, size_t size) override {
    while (true) {
      ssize_t n = ::read(fd_, buffer, size);
      if (n >= 0) return static_cast<size_t>(n);
      if (errno != EINTR) return ErrnoError("reading " + path_, errno);
    }
  }
  const std::string& path() const override { return path_; }

 private:
  std::string path_;
  int fd_;
};

class PosixRandomAccessFile final : public RandomAccessFile {
 public:
  PosixRandomAccessFile(std::string path, int fd, uint64_t size)
      : path_(std::move(path)), fd_(fd), size_(size) {}
  ~PosixRandomAccessFile() override { ::close(fd_); }
  Result<size_t> ReadAt(uint64_t offset, void* buffer, size_t size) override {
    size_t got = 0;
    while (got < size) {
      ssize_t n = ::pread(fd_, static_cast<char*>(buffer) + got, size - got,
                          static_cast<off_t>(offset + got));
      if (n == 0) break;
      if (n < 0) {
        if (errno == EINTR) continue;
        return ErrnoError("reading " + path_, errno);
      }
      got += static_cast<size_t>(n);
    }
    return got;
  }
  uint64_t size() const override { return size_; }
  const std::string& path() const override { return path_; }

 private:
  std::string path_;
  int fd_;
  uint64_t size_;
};

class MemoryFile final : public RandomAccessFile {
 public:
  MemoryFile(const std::string& data, std::string name) : data_(data), name_(std::move(name)) {}
  Result<size_t> ReadAt(uint64_t offset, void* buffer, size_t size) override {
    if (offset >= data_.size()) return size_t{0};
    size_t n = std::min<uint64_t>(size, data_.size() - offset);
    std::memcpy(buffer, data_.data() + offset, n);
    return n;
  }
  uint64_t size() const override { return data_.size(); }
  const std::string& path() const override { return name_; }

 private:
  const std::string& data_;
  std::string name_;
};

class PosixEnv final : public Env {
 public:
  Result<std::unique_ptr<WritableFile>> NewWritableFile(const std::string& path,
                                                        mode_t mode) override {
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
    if (fd < 0) return ErrnoError("creating " + path, errno);
    // The umask must not widen or narrow what we asked for: archives hold .env secrets.
    ::fchmod(fd, mode);
    return std::unique_ptr<WritableFile>(new PosixWritableFile(path, fd));
  }
  Result<std::unique_ptr<SequentialFile>> NewSequentialFile(const std::string& path) override {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return ErrnoError("opening " + path, errno);
    ::posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
    return std::unique_ptr<SequentialFile>(new PosixSequentialFile(path, fd));
  }
  Result<std::unique_ptr<RandomAccessFile>> NewRandomAccessFile(const std::string& path) override {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return ErrnoError("opening " + path, errno);
    struct stat st;
    if (::fstat(fd, &st) != 0) {
      int err = errno;
      ::close(fd);
      return ErrnoError("reading " + path, err);
    }
    return std::unique_ptr<RandomAccessFile>(
        new PosixRandomAccessFile(path, fd, static_cast<uint64_t>(st.st_size)));
  }
  Status Rename(const std::string& from, const std::string& to, bool no_replace) override {
    int rc = no_replace
                 ? ::renameat2(AT_FDCWD, from.c_str(), AT_FDCWD, to.c_str(), RENAME_NOREPLACE)
                 : ::rename(from.c_str(), to.c_str());
    if (rc != 0) return ErrnoError("renaming " + from + " to " + to, errno);
    return Status::Ok();
  }
  Status Exchange(const std::string& a, const std::string& b) override {
    if (::renameat2(AT_FDCWD, a.c_str(), AT_FDCWD, b.c_str(), RENAME_EXCHANGE) != 0)
      return ErrnoError("exchanging " + a + " and " + b, errno);
    return Status::Ok();
  }
  Status SyncFile(const std::string& path) override {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) return ErrnoError("opening " + path, errno);
    int rc = ::fsync(fd);
    int err = errno;
    ::close(fd);
    if (rc != 0) return ErrnoError("fsync " + path, err);
    return Status::Ok();
  }
  Status SyncDir(const std::string& dir) override {
    int fd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return ErrnoError("opening folder " + dir, errno);
    int rc = ::fsync(fd);
    int err = errno;
    ::close(fd);
    if (rc != 0) return ErrnoError("fsync folder " + dir, err);
    return Status::Ok();
  }
  Status SyncFileSystem(const std::string& path) override {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return ErrnoError("opening " + path, errno);
    int rc = ::syncfs(fd);
    int err = errno;
    ::close(fd);
    if (rc != 0) return ErrnoError("syncfs (fsync of the file system holding " + path + ")", err);
    return Status::Ok();
  }
  Status RemoveFile(const std::string& path) override {
    if (::unlink(path.c_str()) != 0 && errno != ENOENT)
      return ErrnoError("removing " + path, errno);
    return Status::Ok();
  }
};

// Shared counters so every file opened through the env counts toward the same Nth call.
class FaultInjectingEnv;

class FaultCounter {
 public:
  explicit FaultCounter(FaultSpec spec) : spec_(std::move(spec)) {}
  // Returns true when this call of `kind` is the one to fail.
  bool Hit(const char* kind) {
    if (!spec_.active() || spec_.kind != kind) return false;
    std::lock_guard<std::mutex> lock(mu_);
    return ++count_ == spec_.nth;
  }

 private:
  FaultSpec spec_;
  std::mutex mu_;
  int64_t count_ = 0;
};

class FaultWritableFile final : public WritableFile {
 public:
  FaultWritableFile(std::unique_ptr<WritableFile> base, FaultCounter& faults)
      : base_(std::move(base)), faults_(faults) {}
  Status Append(const void* data, size_t size) override {
    if (faults_.Hit("write")) return ErrnoError("writing " + path(), ENOSPC);
    return base_->Append(data, size);
  }
  Status Sync() override {
    if (faults_.Hit("fsync")) return ErrnoError("fsync " + path(), EIO);
    return base_->Sync();
  }
  Status Close() override { return base_->Close(); }
  const std::string& path() const override { return base_->path(); }

 private:
  std::unique_ptr<WritableFile> base_;
  FaultCounter& faults_;
};

class FaultSequentialFile final : public SequentialFile {
 public:
  FaultSequentialFile(std::unique_ptr<SequentialFile> base, FaultCounter& faults)
      : base_(std::move(base)), faults_(faults) {}
  Result<size_t> Read(void* buffer, size_t size) override {
    if (faults_.Hit("read")) return ErrnoError("reading " + path(), EIO);
    return base_->Read(buffer, size);
  }
  const std::string& path() const override { return base_->path(); }

 private:
  std::unique_ptr<SequentialFile> base_;
  FaultCounter& faults_;
};

class FaultRandomAccessFile final : public RandomAccessFile {
 public:
  FaultRandomAccessFile(std::unique_ptr<RandomAccessFile> base, FaultCounter& faults)
      : base_(std::move(base)), faults_(faults) {}
  Result<size_t> ReadAt(uint64_t offset, void* buffer, size_t size) override {
    if (faults_.Hit("read")) return ErrnoError("reading " + path(), EIO);
    return base_->ReadAt(offset, buffer, size);
  }
  uint64_t size() const override { return base_->size(); }
  const std::string& path() const override { return base_->path(); }

 private:
  std::unique_ptr<RandomAccessFile> base_;
  FaultCounter& faults_;
};

class FaultInjectingEnv final : public Env {
 public:
  FaultInjectingEnv(Env& base, FaultSpec spec) : base_(base), faults_(std::move(spec)) {}
  Result<std::unique_ptr<WritableFile>> NewWritableFile(const std::string& path,
                                                        mode_t mode) override {
    if (faults_.Hit("create")) return ErrnoError("creating " + path, ENOSPC);
    LV_ASSIGN_OR_RETURN(auto file, base_.NewWritableFile(path, mode));
    return std::unique_ptr<WritableFile>(new FaultWritableFile(std::move(file), faults_));
  }
  Result<std::unique_ptr<SequentialFile>> NewSequentialFile(const std::string& path) override {
    LV_ASSIGN_OR_RETURN(auto file, base_.NewSequentialFile(path));
    return std::unique_ptr<SequentialFile>(new FaultSequentialFile(std::move(file), faults_));
  }
  Result<std::unique_ptr<RandomAccessFile>> NewRandomAccessFile(const std::string& path) override {
    LV_ASSIGN_OR_RETURN(auto file, base_.NewRandomAccessFile(path));
    return std::unique_ptr<RandomAccessFile>(new FaultRandomAccessFile(std::move(file), faults_));
  }
  Status Rename(const std::string& from, const std::string& to, bool no_replace) override {
    if (faults_.Hit("rename")) return ErrnoError("renaming " + from + " to " + to, EIO);
    return base_.Rename(from, to, no_replace);
  }
  Status Exchange(const std::string& a, const std::string& b) override {
    if (faults_.Hit("rename")) return ErrnoError("exchanging " + a + " and " + b, EIO);
    return base_.Exchange(a, b);
  }
  Status SyncDir(const std::string& dir) override {
    if (faults_.Hit("fsync")) return ErrnoError("fsync folder " + dir, EIO);
    return base_.SyncDir(dir);
  }
  Status SyncFile(const std::string& path) override {
    if (faults_.Hit("fsync")) return ErrnoError("fsync " + path, EIO);
    return base_.SyncFile(path);
  }
  Status SyncFileSystem(const std::string& path) override {
    if (faults_.Hit("fsync"))
      return ErrnoError("syncfs (fsync of the file system holding " + path + ")", EIO);
    return base_.SyncFileSystem(path);
  }
  Status RemoveFile(const std::string& path) override { return base_.RemoveFile(path); }

 private:
  Env& base_;
  FaultCounter faults_;
};

}  // namespace

std::unique_ptr<RandomAccessFile> NewMemoryFile(const std::string& data, const std::string& name) {
  return std::make_unique<MemoryFile>(data, name);
}

Env& Env::Default() {
  static PosixEnv env;
  return env;
}

Result<FaultSpec> FaultSpec::Parse(const std::string& text) {
  FaultSpec spec;
  if (text.empty()) return spec;
  auto colon = text.find(':');
  if (colon == std::string::npos) return Error("bad fault spec '" + text + "' (want kind:N)");
  spec.kind = text.substr(0, colon);
  if (spec.kind != "write" && spec.kind != "fsync" && spec.kind != "rename" &&
      spec.kind != "read" && spec.kind != "create")
    return Error("bad fault kind '" + spec.kind + "'");
  try {
    spec.nth = std::stoll(text.substr(colon + 1));
  } catch (...) {
    return Error("bad fault count in '" + text + "'");
  }
  return spec;
}

std::unique_ptr<Env> NewFaultInjectingEnv(Env& base, FaultSpec spec) {
  return std::make_unique<FaultInjectingEnv>(base, std::move(spec));
}

struct GrowingFilesEnv::State {
  std::mutex mu;
  std::condition_variable changed;
  bool complete = false;
  bool aborted = false;
};

namespace {

class GrowingFile final : public SequentialFile {
 public:
  GrowingFile(std::unique_ptr<SequentialFile> base, std::shared_ptr<GrowingFilesEnv::State> state)
      : base_(std::move(base)), state_(std::move(state)) {}

  Result<size_t> Read(void* buffer, size_t size) override {
    for (;;) {
      bool complete;
      {
        std::unique_lock<std::mutex> lock(state_->mu);
        if (state_->aborted) return Error("reading " + path() + ": its writer failed");
        complete = state_->complete;
      }
      // Through the base file only when there is something to read (or nothing more will come):
      // a read per look would count against a fault-injecting base as much as the data reads.
      struct stat st;
      if (complete || ::stat(path().c_str(), &st) != 0 || st.st_size > offset_) {
        LV_ASSIGN_OR_RETURN(size_t n, base_->Read(buffer, size));
        offset_ += static_cast<int64_t>(n);
        if (n > 0 || complete) return n;
      }
      std::unique_lock<std::mutex> lock(state_->mu);
      // Writers append in large pieces: a few milliseconds late costs little, and nothing has
      // to tell this reader about each piece.
      state_->changed.wait_for(lock, std::chrono::milliseconds(5),
                               [&] { return state_->complete || state_->aborted; });
    }
  }
  const std::string& path() const override { return base_->path(); }

 private:
  std::unique_ptr<SequentialFile> base_;
  std::shared_ptr<GrowingFilesEnv::State> state_;
  int64_t offset_ = 0;
};

}  // namespace

GrowingFilesEnv::GrowingFilesEnv(Env& base, std::vector<std::string> growing)
    : ForwardingEnv(base), growing_(std::move(growing)), state_(std::make_shared<State>()) {}

GrowingFilesEnv::~GrowingFilesEnv() = default;

void GrowingFilesEnv::Complete() {
  {
    std::lock_guard<std::mutex> lock(state_->mu);
    state_->complete = true;
  }
  state_->changed.notify_all();
}

void GrowingFilesEnv::Abort() {
  {
    std::lock_guard<std::mutex> lock(state_->mu);
    state_->aborted = true;
  }
  state_->changed.notify_all();
}

Result<std::unique_ptr<SequentialFile>> GrowingFilesEnv::NewSequentialFile(
    const std::string& path) {
  LV_ASSIGN_OR_RETURN(auto file, ForwardingEnv::NewSequentialFile(path));
  if (std::find(growing_.begin(), growing_.end(), path) == growing_.end()) return file;
  return std::unique_ptr<SequentialFile>(new GrowingFile(std::move(file), state_));
}

Result<std::string> ReadWholeFile(Env& env, const std::string& path) {
  LV_ASSIGN_OR_RETURN(auto file, env.NewSequentialFile(path));
  std::string content;
  char buffer[65536];
  while (true) {
    LV_ASSIGN_OR_RETURN(size_t n, file->Read(buffer, sizeof buffer));
    if (n == 0) break;
    content.append(buffer, n);
  }
  return content;
}

Status WriteFileAtomically(Env& env, const std::string& path, const std::string& content,
                           mode_t mode) {
  std::filesystem::path target(path);
  std::string dir = target.parent_path().string();
  std::string tmp = (target.parent_path() / ("." + target.filename().string() + ".tmp")).string();
  env.RemoveFile(tmp);  // a leftover of an interrupted earlier write
  LV_ASSIGN_OR_RETURN(auto file, env.NewWritableFile(tmp, mode));
  Status status = file->Append(content.data(), content.size());
  if (status.ok()) status = file->Sync();
  if (status.ok()) status = file->Close();
  if (status.ok()) status = env.Rename(tmp, path, /*no_replace=*/false);
  if (!status.ok()) {
    env.RemoveFile(tmp);
    return status;
  }
  return env.SyncDir(dir);
}

}  // namespace lakevault
