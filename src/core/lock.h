// An exclusive, non-blocking lock on a file (flock), released when the object dies or the
// process is killed, so a crashed run never leaves a stale lock behind.
#pragma once

#include <string>

#include "core/result.h"

namespace lakevault {

class FileLock {
 public:
  // Fails with a message naming the holder's pid when another process holds the lock.
  static Result<FileLock> Acquire(const std::string& path, const std::string& purpose);
  FileLock(FileLock&& other) noexcept;
  FileLock& operator=(FileLock&& other) noexcept;
  FileLock(const FileLock&) = delete;
  FileLock& operator=(const FileLock&) = delete;
  ~FileLock();

 private:
  explicit FileLock(int fd) : fd_(fd) {}
  int fd_ = -1;
};

}  // namespace lakevault
