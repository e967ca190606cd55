// Standard tar archives (pax, readable by GNU tar) written and read through libarchive, with
// the compressed stream hashed as it passes so the .sha256 sidecar costs no second read.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "config/config.h"
#include "core/env.h"
#include "core/result.h"
#include "crypto/sha256.h"

namespace lakevault {

enum class EntryType { kFile, kDirectory, kSymlink, kOther };

struct ArchiveEntry {
  std::string path;  // relative, '/'-separated, as stored
  EntryType type = EntryType::kFile;
  int64_t size = 0;
  mode_t mode = 0644;
  int64_t mtime = 0;
  std::string link_target;  // for symlinks and hard links
  bool hardlink = false;
};

// libdeflate level for .tar.gz when the config sets none. Measured with libdeflate 1.14 against
// level 6 (gzip -6, the guide's tar -czf): on a lake of Delta JSON commits level 2 is 0.7%
// larger and level 1 12% larger; on the benchmark's 1 GiB lake (80% Parquet-like data) level 2
// is 0.4% larger and takes 2.7 s instead of 3.9 s. `compression_level` in the config overrides.
inline constexpr int kDefaultGzipLevel = 2;
// Level for Parquet files when the config sets none. Their pages are already encoded and
// usually compressed by the writer: what deflate finds in them, it finds at level 1 nearly as
// well as at 2 (on the benchmark's 1 GiB lake, whose Parquet-like files are 20% plain text,
// level 1 for everything was 0.7% larger), at about half the CPU time.
inline constexpr int kColumnarGzipLevel = 1;
// The level a file gets when the config sets none: kColumnarGzipLevel for *.parquet, else
// kDefaultGzipLevel.
int GzipLevelFor(const std::string& path);

class ArchiveWriter {
 public:
  // Creates `path` exclusively with mode 0600 and starts a pax tar stream compressed with `c`
  // at `level` (0: the default of the format).
  static Result<std::unique_ptr<ArchiveWriter>> Create(Env& env, const std::string& path,
                                                       Compression c, int level = 0);
  ~ArchiveWriter();

  // Streams exactly entry.size bytes from `source`; fails if the file is shorter or longer
  // (it changed while being read). `content_hash` receives the bytes as they pass.
  Status AddFile(const ArchiveEntry& entry, SequentialFile& source, Sha256* content_hash);
  Status AddBytes(const ArchiveEntry& entry, const std::string& data);
  Status AddDirectory(const ArchiveEntry& entry);
  Status AddSymlink(const ArchiveEntry& entry);
  // Ends the stream, fsyncs and closes the file. The archive is complete only after this.
  // `written`, when given, is called once every byte is in the file and before the fsync: a
  // reader of the file may take it as whole from then on.
  Status Finish(const std::function<void()>& written = nullptr);

  // SHA-256 of the archive file's bytes; valid after Finish.
  const std::string& archive_sha256() const { return archive_sha256_; }
  int64_t bytes_written() const { return bytes_written_; }
  int64_t bytes_in() const { return bytes_in_; }

  struct Impl;

 private:
  ArchiveWriter() = default;
  Status WriteHeader(const ArchiveEntry& entry);
  std::unique_ptr<Impl> impl_;
  std::string archive_sha256_;
  int64_t bytes_written_ = 0;
  int64_t bytes_in_ = 0;
};

class ArchiveReader {
 public:
  // Opens any tar (gzip, zstd or plain, detected from the bytes). `archive_hash`, if given,
  // receives every raw byte read from the file, so one pass checks the sidecar too.
  static Result<std::unique_ptr<ArchiveReader>> Open(Env& env, const std::string& path,
                                                     Sha256* archive_hash = nullptr);
  ~ArchiveReader();

  // Advances to the next entry; false at the clean end of the archive.
  Result<bool> Next(ArchiveEntry* entry);
  // Reads the current entry's data; 0 at its end.
  Result<size_t> Read(void* buffer, size_t size);
  // Reads the rest of the current entry, refusing more than `limit` bytes.
  Result<std::string> ReadAll(size_t limit);
  // Consumes any remaining raw bytes of the file (trailing padding after the end marker) so
  // the archive hash covers the whole file.
  Status Drain();

  struct Impl;

 private:
  ArchiveReader() = default;
  std::unique_ptr<Impl> impl_;
};

// A member path from an archive is acceptable for extraction: relative, no "..", no empty or
// "." components, no NUL. Used by verify and restore before anything touches the disk.
bool IsSafeMemberPath(const std::string& path);

}  // namespace lakevault
