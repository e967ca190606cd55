#include "archive/parallel_gzip.h"

#include <libdeflate.h>
#include <pthread.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <string_view>

namespace lakevault {

namespace {

constexpr size_t kChunk = 256 * 1024;
// Above this many bits per byte (order-0 entropy) deflate cannot shrink a chunk: snappy- or
// zstd-compressed Parquet pages, encrypted data. Such chunks are stored, which costs a copy
// and a CRC instead of a futile search for matches, and comes out no larger.
constexpr double kIncompressibleBitsPerByte = 7.97;

// A chunk whose entropy is between this and kIncompressibleBitsPerByte may be a mix: with files
// smaller than a chunk (a lake of many small Parquet files), one chunk holds the end of an
// incompressible file and the start of a compressible one, and deflating the whole of it spends
// most of the block's time on bytes that are stored in the end. Such chunks are judged again in
// kSubChunk pieces. Text and JSON sit well below this (4-5.5 bits per byte).
constexpr double kMixedBitsPerByte = 6.0;
constexpr size_t kSubChunk = 32 * 1024;

// Order-0 entropy from every `stride`-th byte: a 64 KiB sample of a 256 KiB chunk estimates it
// within a few thousandths of a bit, at a quarter of the cost of counting every byte. (The
// estimate is biased low by about 255 / (2 ln 2 samples) bits: 0.003 at 64 Ki samples, 0.011 at
// the 16 Ki samples of a sub-chunk at stride 2, both well inside the threshold's margin.)
double EntropyBitsPerByte(const unsigned char* data, size_t size, size_t stride) {
  uint32_t counts[256] = {0};
  size_t samples = 0;
  for (size_t i = 0; i < size; i += stride, ++samples) counts[data[i]]++;
  double entropy = 0;
  for (uint32_t c : counts) {
    if (c == 0) continue;
    double p = static_cast<double>(c) / static_cast<double>(samples);
    entropy -= p * std::log2(p);
  }
  return entropy;
}

// A block's gzip members, built in a Buffer: a slot of the shared region (core/buffer.h) for any
// block of the usual size, grown only if a member comes out larger than that.
class Members {
 public:
  explicit Members(size_t capacity) : buffer_(capacity) {}
  size_t size() const { return size_; }
  char* At(size_t offset) { return buffer_.data() + offset; }
  // Room for `n` more bytes past size(), which Commit then counts.
  char* Room(size_t n) {
    if (size_ + n > buffer_.capacity()) {
      Buffer bigger(std::max(size_ + n, 2 * buffer_.capacity()));
      std::memcpy(bigger.data(), buffer_.data(), size_);
      buffer_ = std::move(bigger);
    }
    return buffer_.data() + size_;
  }
  void Commit(size_t n) { size_ += n; }
  void Append(const void* data, size_t n) {
    if (n == 0) return;  // `data` may be null then (an empty stream's block)
    std::memcpy(Room(n), data, n);
    size_ += n;
  }
  void PutLe16(uint32_t v) {
    const unsigned char b[2] = {static_cast<unsigned char>(v), static_cast<unsigned char>(v >> 8)};
    Append(b, 2);
  }
  void PutLe32(uint32_t v) {
    const unsigned char b[4] = {static_cast<unsigned char>(v), static_cast<unsigned char>(v >> 8),
                                static_cast<unsigned char>(v >> 16),
                                static_cast<unsigned char>(v >> 24)};
    Append(b, 4);
  }
  CompressedBlock Take() && { return {std::move(buffer_), size_}; }

 private:
  Buffer buffer_;
  size_t size_ = 0;
};

// A gzip member header with an FEXTRA field (RFC 1952 section 2.3.1.1) whose "LV" subfield will
// hold the member's total size, as BGZF's "BC" does: readers that know it can cut the stream
// into members without inflating it, and inflate them on several cores. Other readers skip it.
size_t AppendHeader(Members& out) {
  static const unsigned char kHeader[16] = {
      0x1f, 0x8b, 8, 4 /* FEXTRA */, 0, 0, 0, 0, 0, 0xff, 8, 0, 'L',
      'V',  4,    0 /* XLEN 8, "LV", LEN 4 */};
  size_t start = out.size();
  out.Append(kHeader, sizeof kHeader);
  out.PutLe32(0);  // member size, set by FinishMember
  return start;
}

void FinishMember(Members& out, size_t start, const char* data, size_t size) {
  out.PutLe32(libdeflate_crc32(0, data, size));
  out.PutLe32(static_cast<uint32_t>(size));
  uint32_t member = static_cast<uint32_t>(out.size() - start);
  for (int i = 0; i < 4; ++i)
    *out.At(start + 16 + i) = static_cast<char>((member >> (8 * i)) & 0xff);
}

// One gzip member holding `data` in deflate stored blocks (RFC 1951 section 3.2.4).
void AppendStoredMember(Members& out, const char* data, size_t size) {
  size_t start = AppendHeader(out);
  size_t offset = 0;
  do {
    size_t n = std::min<size_t>(65535, size - offset);
    bool last = offset + n == size;
    const unsigned char flag = last ? 1 : 0;
    out.Append(&flag, 1);
    out.PutLe16(static_cast<uint32_t>(n));
    out.PutLe16(static_cast<uint32_t>(~n & 0xffff));
    out.Append(data + offset, n);
    offset += n;
  } while (offset < size);
  FinishMember(out, start, data, size);
}

bool AppendCompressedMember(Members& out, libdeflate_compressor* compressor, const char* data,
                            size_t size) {
  size_t start = AppendHeader(out);
  size_t bound = libdeflate_deflate_compress_bound(compressor, size);
  size_t n = libdeflate_deflate_compress(compressor, data, size, out.Room(bound), bound);
  if (n == 0) return false;
  out.Commit(n);
  FinishMember(out, start, data, size);
  return true;
}

// Compresses one block into gzip members: runs of compressible chunks through libdeflate at the
// level in force for their bytes (`levels`: block offset -> level from there on, starting at 0),
// incompressible chunks stored. Returns an empty block on failure.
CompressedBlock CompressBlock(Buffer input_buffer, size_t input_size,
                              std::vector<std::pair<size_t, int>> levels) {
  struct Deleter {
    void operator()(libdeflate_compressor* c) const { libdeflate_free_compressor(c); }
  };
  // One compressor per thread and level: allocating one per block costs more than small blocks.
  thread_local std::unique_ptr<libdeflate_compressor, Deleter> compressors[13];
  auto compressor = [&](int level) -> libdeflate_compressor* {
    level = std::clamp(level, 1, 12);
    if (!compressors[level]) compressors[level].reset(libdeflate_alloc_compressor(level));
    return compressors[level].get();
  };
  const std::string_view input(input_buffer.data(), input_size);
  Members output(std::max(input.size() + input.size() / 64 + 64, Buffer::kSlotBytes));
  const char* data = input.data();
  size_t run_start = 0;  // start of the pending run of compressible chunks
  size_t offset = 0;
  // A run is one member per level range it spans.
  auto flush_run = [&](size_t end) {
    size_t at = run_start;
    for (size_t i = 0; i < levels.size() && at < end; ++i) {
      size_t range_end = i + 1 < levels.size() ? levels[i + 1].first : input.size();
      if (range_end <= at) continue;
      size_t piece_end = std::min(range_end, end);
      libdeflate_compressor* c = compressor(levels[i].second);
      if (c == nullptr || !AppendCompressedMember(output, c, data + at, piece_end - at))
        return false;
      at = piece_end;
    }
    return true;
  };
  auto bytes = [&](size_t at) { return reinterpret_cast<const unsigned char*>(data + at); };
  auto store = [&](size_t at, size_t n) {
    if (!flush_run(at)) return false;
    AppendStoredMember(output, data + at, n);
    run_start = at + n;
    return true;
  };
  while (offset < input.size()) {
    size_t n = std::min(kChunk, input.size() - offset);
    double bits = EntropyBitsPerByte(bytes(offset), n, 4);
    if (bits >= kIncompressibleBitsPerByte) {
      if (!store(offset, n)) return {};
    } else if (bits >= kMixedBitsPerByte) {
      for (size_t sub = offset; sub < offset + n; sub += kSubChunk) {
        size_t m = std::min(kSubChunk, offset + n - sub);
        if (EntropyBitsPerByte(bytes(sub), m, 2) >= kIncompressibleBitsPerByte && !store(sub, m))
          return {};
      }
    }
    offset += n;
  }
  if (!flush_run(input.size())) return {};
  if (input.empty()) AppendStoredMember(output, data, 0);
  return std::move(output).Take();
}

}  // namespace

ParallelGzipSink::ParallelGzipSink(WritableFile& out, Sha256* out_hash, int level, int threads,
                                   size_t block_size)
    : out_(out),
      out_hash_(out_hash),
      level_(level),
      block_start_level_(level),
      // Three blocks per thread keep every core busy while the writer catches up, and bound
      // memory to about 6 x threads x block_size.
      max_in_flight_(static_cast<size_t>(threads > 0 ? threads : 1) * 3),
      block_size_(block_size),
      pool_(std::make_unique<WorkerPool>(threads)) {
  // Writing and hashing the output is a thread of its own, so the caller's thread only reads
  // and hashes its input: the two hashes and the compression then share the cores.
  writer_ = std::thread([this] { WriterLoop(); });
}

ParallelGzipSink::~ParallelGzipSink() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    closing_ = true;
  }
  cv_.notify_all();
  if (writer_.joinable()) writer_.join();
}

void ParallelGzipSink::SetLevel(int level) {
  if (level == level_) return;
  level_ = level;
  if (!block_levels_.empty() && block_levels_.back().first == block_fill_)
    block_levels_.back().second = level;
  else
    block_levels_.emplace_back(block_fill_, level);
}

Status ParallelGzipSink::Write(const void* data, size_t size) {
  const char* p = static_cast<const char*>(data);
  while (size > 0) {
    // Taken when the first bytes come, not when the last block left: by then that block's
    // compression may have given its buffer back for this one.
    if (block_.capacity() == 0) block_ = Buffer(block_size_);
    size_t take = std::min(size, block_size_ - block_fill_);
    std::memcpy(block_.data() + block_fill_, p, take);
    block_fill_ += take;
    p += take;
    size -= take;
    if (block_fill_ == block_size_) LV_RETURN_IF_ERROR(Dispatch());
  }
  return Status::Ok();
}

Status ParallelGzipSink::Dispatch() {
  Buffer input = std::move(block_);
  const size_t input_size = std::exchange(block_fill_, 0);
  std::vector<std::pair<size_t, int>> levels;
  levels.swap(block_levels_);
  if (levels.empty() || levels.front().first != 0)
    levels.insert(levels.begin(), {0, block_start_level_});
  block_start_level_ = level_;
  auto future =
      pool_->Submit([input = std::move(input), input_size, levels = std::move(levels)]() mutable {
        return CompressBlock(std::move(input), input_size, std::move(levels));
      });
  wrote_any_block_ = true;
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [this] { return in_flight_.size() < max_in_flight_ || !status_.ok(); });
  if (!status_.ok()) return status_;
  in_flight_.push_back(std::move(future));
  cv_.notify_all();
  return Status::Ok();
}

void ParallelGzipSink::WriterLoop() {
  pthread_setname_np(pthread_self(), "lakevault-write");
  while (true) {
    std::future<CompressedBlock> next;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [this] { return !in_flight_.empty() || closing_; });
      if (in_flight_.empty()) return;
      next = std::move(in_flight_.front());
    }
    CompressedBlock compressed = next.get();
    Status s = compressed.size == 0 ? Status(Error("gzip compression failed (libdeflate)"))
                                    : out_.Append(compressed.data.data(), compressed.size);
    if (s.ok() && out_hash_) out_hash_->Update(compressed.data.data(), compressed.size);
    std::lock_guard<std::mutex> lock(mu_);
    in_flight_.pop_front();
    if (s.ok()) {
      bytes_out_ += static_cast<int64_t>(compressed.size);
    } else if (status_.ok()) {
      status_ = s;
      // Later blocks are dropped: nothing may be written after a failed write.
      for (auto& f : in_flight_) f.wait();
      in_flight_.clear();
    }
    cv_.notify_all();
  }
}

Status ParallelGzipSink::Finish() {
  // An empty stream is still one (empty) gzip member, so the file is valid gzip.
  if (block_fill_ > 0 || !wrote_any_block_) LV_RETURN_IF_ERROR(Dispatch());
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [this] { return in_flight_.empty(); });
  return status_;
}

}  // namespace lakevault
