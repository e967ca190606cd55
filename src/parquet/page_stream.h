// The body of one Parquet page, read from its file and decompressed as its bytes are taken, so a
// page is never held whole: DuckDB writes a checkpoint's stats column as one page of about 60 MB
// per row group, where Spark and delta-rs write pages of 1 MB. Internal to the parquet module.
#pragma once

#include <zlib.h>
#include <zstd.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "core/env.h"
#include "core/result.h"

namespace lakevault::parquet {

// A byte range of a file, read in pieces of `piece` bytes.
class RangeReader {
 public:
  RangeReader(RandomAccessFile& file, uint64_t offset, uint64_t size, size_t piece);
  // Makes at least `n` bytes available at data() (fewer only at the end of the range).
  Status Fill(size_t n);
  const uint8_t* data() const { return reinterpret_cast<const uint8_t*>(buf_.data()) + pos_; }
  size_t available() const { return buf_.size() - pos_; }
  void Skip(size_t n) { pos_ += n; }
  bool AtEnd() const { return pos_ == buf_.size() && left_ == 0; }
  // Back to the start of the range.
  void Restart();

 private:
  RandomAccessFile& file_;
  uint64_t offset_, size_;
  uint64_t next_;  // file offset of the next byte not yet in buf_
  uint64_t left_;  // bytes of the range not yet in buf_
  size_t piece_;
  std::string buf_;
  size_t pos_ = 0;
};

class PageStream {
 public:
  // `codec` is Parquet's CompressionCodec: 0 none, 1 snappy, 2 gzip, 6 zstd. The page body is
  // the file range [offset, offset + size); `uncompressed` is what its header claims, and more
  // output than that is refused as corrupt, as a buffer of that size would have refused it.
  static Result<std::unique_ptr<PageStream>> Open(RandomAccessFile& file, uint64_t offset,
                                                  uint64_t size, int codec, uint64_t uncompressed,
                                                  size_t piece);
  ~PageStream();
  PageStream(const PageStream&) = delete;
  PageStream& operator=(const PageStream&) = delete;

  // `n` contiguous bytes of the page, valid until the next call; nullptr when fewer than `n`
  // bytes are left in the page.
  Result<const uint8_t*> Take(size_t n);
  // Everything not yet taken.
  Result<std::string> TakeRest();

 private:
  PageStream(RandomAccessFile& file, uint64_t offset, uint64_t size, int codec,
             uint64_t uncompressed, size_t piece);
  // Decodes until `n` bytes are waiting or the page ends.
  Status Produce(size_t n);
  Status ProduceSnappy(size_t n);
  // Decodes the page again from its start, keeping all of it: a copy reached further back than
  // the window kept.
  Status RestartSnappyKeepingAll();
  Status ProduceInflate(size_t n);
  Status ProduceZstd(size_t n);
  void DropConsumed();
  size_t waiting() const { return out_.size() - out_pos_; }

  RangeReader in_;
  int codec_;
  uint64_t uncompressed_;
  std::string out_;  // decoded bytes kept: the window behind out_pos_ and what waits after it
  size_t out_pos_ = 0;
  uint64_t dropped_ = 0;  // bytes taken and then dropped from the front of out_
  uint64_t produced_ = 0;
  bool done_ = false;
  // snappy
  // Output kept behind the reader for copies to reach into. Google's compressor (parquet-mr,
  // arrow and DuckDB use it) compresses in 64 KiB fragments, so its copies never reach further;
  // the format allows more, and a stream that goes further is decoded again keeping everything.
  uint64_t window_ = 64 * 1024;
  uint64_t snappy_total_ = 0;
  bool snappy_started_ = false;
  uint64_t literal_left_ = 0;
  // gzip, zstd
  z_stream zs_{};
  bool zs_open_ = false;
  ZSTD_DStream* zstd_ = nullptr;
};

}  // namespace lakevault::parquet
