// Reading an archive file ahead of its consumer (internal to the archive module). A thread of
// its own reads the file and hashes the raw bytes; when the file is a gzip stream made of
// members that carry their own size (what ParallelGzipSink writes: an "LV" FEXTRA subfield),
// the members are inflated by libdeflate on every core and handed on in order, so the
// consumer (libarchive's tar reader) sees plain tar. Any other file (tar -czf output, zstd,
// plain tar) is handed on raw for libarchive's own filters.
#pragma once

#include <condition_variable>
#include <deque>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>

#include "core/buffer.h"
#include "core/env.h"
#include "core/result.h"
#include "core/workers.h"
#include "crypto/sha256.h"

namespace lakevault {

class ReadPipeline {
 public:
  // Reading starts at once. `hash` (may be null) receives every raw byte of the file, in order;
  // it is complete once Next() has returned the end.
  ReadPipeline(std::unique_ptr<SequentialFile> file, Sha256* hash);
  ~ReadPipeline();

  // True when Next() gives inflated tar bytes; false when it gives the file's bytes as they are.
  bool inflating();
  // The next piece of the stream, valid until the next call; empty at the end of the file.
  Result<std::string_view> Next();

  // Bytes without the zero-fill of a std::string: every byte is written before it is read.
  struct Bytes {
    Buffer data;
    size_t size = 0;
    explicit Bytes(size_t n = 0) : data(n), size(n) {}
  };
  struct Piece {
    Bytes data;
    Status status;
    bool end = false;
  };

 private:
  void Feed();
  Status Push(std::future<Piece> piece);

  std::unique_ptr<SequentialFile> file_;
  Sha256* hash_;
  std::unique_ptr<WorkerPool> pool_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::future<Piece>> queue_;
  int mode_ = -1;  // -1 unknown yet, 0 raw, 1 inflating
  bool cancelled_ = false;
  bool finished_ = false;  // Next() has returned the end or an error
  Bytes current_;
  std::thread feeder_;
};

}  // namespace lakevault
