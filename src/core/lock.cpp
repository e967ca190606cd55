#include "core/lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <string>

#include "core/env.h"

namespace lakevault {

Result<FileLock> FileLock::Acquire(const std::string& path, const std::string& purpose) {
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) {
    int err = errno;
    // Most often the guide's "permission denied" (or a folder that could not be created for
    // the same reason): say whose folder it is and who to run as.
    if (err == EACCES || err == ENOENT || err == EROFS)
      LV_RETURN_IF_ERROR(
          CheckAccess(std::filesystem::path(path).parent_path().string(), true, "lock folder"));
    return ErrnoError("opening lock file " + path, err);
  }
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    int err = errno;
    char buf[64] = {0};
    ssize_t n = ::pread(fd, buf, sizeof buf - 1, 0);
    ::close(fd);
    if (err == EWOULDBLOCK) {
      std::string holder = n > 0 ? std::string(buf, static_cast<size_t>(n)) : "";
      while (!holder.empty() && (holder.back() == '\n' || holder.back() == ' ')) holder.pop_back();
      return Error("another lakevault " + purpose + " is running" +
                   (holder.empty() ? "" : " (" + holder + ")") + "; wait for it to finish (lock " +
                   path + ")");
    }
    return ErrnoError("locking " + path, err);
  }
  std::string me = "pid " + std::to_string(::getpid()) + "\n";
  if (::ftruncate(fd, 0) == 0) {
    ssize_t ignored = ::pwrite(fd, me.data(), me.size(), 0);
    (void)ignored;
  }
  return FileLock(fd);
}

FileLock::FileLock(FileLock&& other) noexcept : fd_(other.fd_) { other.fd_ = -1; }

FileLock& FileLock::operator=(FileLock&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = other.fd_;
    other.fd_ = -1;
  }
  return *this;
}

FileLock::~FileLock() {
  if (fd_ >= 0) ::close(fd_);
}

}  // namespace lakevault
