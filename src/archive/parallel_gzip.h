// Gzip output compressed on every core: the stream is cut into blocks, each compressed by
// libdeflate into its own gzip member, and the members are written in order. Concatenated
// members are one valid gzip file (RFC 1952 section 2.2): `gzip -d`, `tar -xzf` and libarchive
// read it as usual. This is what makes a .tar.gz backup several times faster than `tar -czf`.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "core/buffer.h"
#include "core/env.h"
#include "core/result.h"
#include "core/workers.h"
#include "crypto/sha256.h"

namespace lakevault {

// One block's gzip members: the first `size` bytes of `data` (none if compression failed).
struct CompressedBlock {
  Buffer data;
  size_t size = 0;
};

class ParallelGzipSink {
 public:
  // Compressed bytes go to `out`, and through `out_hash` when given.
  ParallelGzipSink(WritableFile& out, Sha256* out_hash, int level, int threads, size_t block_size);
  ~ParallelGzipSink();
  // The level for the bytes written from now on (a file's contents may deserve another level
  // than its neighbours'). Blocks that span a change are cut into members at it.
  void SetLevel(int level);
  Status Write(const void* data, size_t size);
  // Compresses what is buffered and waits for every block to be written.
  Status Finish();
  int64_t bytes_out() const { return bytes_out_; }

 private:
  Status Dispatch();
  void WriterLoop();

  WritableFile& out_;
  Sha256* out_hash_;
  int level_;                                         // for the next bytes written
  int block_start_level_;                             // in force at the start of block_
  std::vector<std::pair<size_t, int>> block_levels_;  // changes within block_: offset -> level
  size_t max_in_flight_;
  size_t block_size_;
  Buffer block_;  // the block being filled, taken at its first byte
  size_t block_fill_ = 0;
  std::unique_ptr<WorkerPool> pool_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::future<CompressedBlock>> in_flight_;  // oldest first; the writer pops them
  Status status_;                                       // the first write error
  bool closing_ = false;
  int64_t bytes_out_ = 0;  // read after Finish()
  bool wrote_any_block_ = false;
  std::thread writer_;
};

}  // namespace lakevault
