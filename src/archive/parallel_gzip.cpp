#include "archive/parallel_gzip.h"

#include <libdeflate.h>
#include <pthread.h>

#include <cmath>
#include <memory>

namespace lakevault {

namespace {

constexpr size_t kChunk = 256 * 1024;
// Above this many bits per byte (order-0 entropy) deflate cannot shrink a chunk: snappy- or
// zstd-compressed Parquet pages, encrypted data. Such chunks are stored, which costs a copy
// and a CRC instead of a futile search for matches, and comes out no larger.
constexpr double kIncompressibleBitsPerByte = 7.97;

// Order-0 entropy from every 4th byte: a 64 KiB sample of a 256 KiB chunk estimates it within
// a few thousandths of a bit, at a quarter of the cost of counting every byte.
double EntropyBitsPerByte(const unsigned char* data, size_t size) {
  uint32_t counts[256] = {0};
  size_t samples = 0;
  for (size_t i = 0; i < size; i += 4, ++samples) counts[data[i]]++;
  double entropy = 0;
  for (uint32_t c : counts) {
    if (c == 0) continue;
    double p = static_cast<double>(c) / static_cast<double>(samples);
    entropy -= p * std::log2(p);
  }
  return entropy;
}

void PutLe16(std::string& out, uint32_t v) {
  out.push_back(static_cast<char>(v & 0xff));
  out.push_back(static_cast<char>((v >> 8) & 0xff));
}

void PutLe32(std::string& out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

// A gzip member header with an FEXTRA field (RFC 1952 section 2.3.1.1) whose "LV" subfield will
// hold the member's total size, as BGZF's "BC" does: readers that know it can cut the stream
// into members without inflating it, and inflate them on several cores. Other readers skip it.
size_t AppendHeader(std::string& out) {
  static const unsigned char kHeader[10] = {0x1f, 0x8b, 8, 4 /* FEXTRA */, 0, 0, 0, 0, 0, 0xff};
  size_t start = out.size();
  out.append(reinterpret_cast<const char*>(kHeader), sizeof kHeader);
  PutLe16(out, 8);  // XLEN
  out.push_back('L');
  out.push_back('V');
  PutLe16(out, 4);
  PutLe32(out, 0);  // member size, set by FinishMember
  return start;
}

void FinishMember(std::string& out, size_t start, const char* data, size_t size) {
  PutLe32(out, libdeflate_crc32(0, data, size));
  PutLe32(out, static_cast<uint32_t>(size));
  uint32_t member = static_cast<uint32_t>(out.size() - start);
  for (int i = 0; i < 4; ++i) out[start + 16 + i] = static_cast<char>((member >> (8 * i)) & 0xff);
}

// One gzip member holding `data` in deflate stored blocks (RFC 1951 section 3.2.4).
void AppendStoredMember(std::string& out, const char* data, size_t size) {
  size_t start = AppendHeader(out);
  size_t offset = 0;
  do {
    size_t n = std::min<size_t>(65535, size - offset);
    bool last = offset + n == size;
    out.push_back(static_cast<char>(last ? 1 : 0));
    PutLe16(out, static_cast<uint32_t>(n));
    PutLe16(out, static_cast<uint32_t>(~n & 0xffff));
    out.append(data + offset, n);
    offset += n;
  } while (offset < size);
  FinishMember(out, start, data, size);
}

bool AppendCompressedMember(std::string& out, libdeflate_compressor* compressor, const char* data,
                            size_t size) {
  size_t start = AppendHeader(out);
  size_t bound = libdeflate_deflate_compress_bound(compressor, size);
  size_t body = out.size();
  out.resize(body + bound);
  size_t n = libdeflate_deflate_compress(compressor, data, size, out.data() + body, bound);
  out.resize(body + n);
  if (n == 0) return false;
  FinishMember(out, start, data, size);
  return true;
}

// Compresses one block into gzip members: runs of compressible chunks through libdeflate,
// incompressible chunks stored. Returns "" on failure.
std::string CompressBlock(std::string input, int level) {
  struct Deleter {
    void operator()(libdeflate_compressor* c) const { libdeflate_free_compressor(c); }
  };
  // One compressor per thread and level: allocating one per block costs more than small blocks.
  thread_local std::unique_ptr<libdeflate_compressor, Deleter> compressor;
  thread_local int compressor_level = -1;
  if (!compressor || compressor_level != level) {
    compressor.reset(libdeflate_alloc_compressor(level));
    compressor_level = level;
  }
  if (!compressor) return {};
  std::string output;
  output.reserve(input.size() + input.size() / 64 + 64);
  const char* data = input.data();
  size_t run_start = 0;  // start of the pending run of compressible chunks
  size_t offset = 0;
  auto flush_run = [&](size_t end) {
    if (end > run_start &&
        !AppendCompressedMember(output, compressor.get(), data + run_start, end - run_start))
      return false;
    return true;
  };
  while (offset < input.size()) {
    size_t n = std::min(kChunk, input.size() - offset);
    if (EntropyBitsPerByte(reinterpret_cast<const unsigned char*>(data + offset), n) >=
        kIncompressibleBitsPerByte) {
      if (!flush_run(offset)) return {};
      AppendStoredMember(output, data + offset, n);
      run_start = offset + n;
    }
    offset += n;
  }
  if (!flush_run(input.size())) return {};
  if (input.empty()) AppendStoredMember(output, data, 0);
  return output;
}

}  // namespace

ParallelGzipSink::ParallelGzipSink(WritableFile& out, Sha256* out_hash, int level, int threads,
                                   size_t block_size)
    : out_(out),
      out_hash_(out_hash),
      level_(level),
      // Three blocks per thread keep every core busy while the writer catches up, and bound
      // memory to about 6 x threads x block_size.
      max_in_flight_(static_cast<size_t>(threads > 0 ? threads : 1) * 3),
      block_size_(block_size),
      pool_(std::make_unique<WorkerPool>(threads)) {
  block_.reserve(block_size_);
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

Status ParallelGzipSink::Write(const void* data, size_t size) {
  const char* p = static_cast<const char*>(data);
  while (size > 0) {
    size_t take = std::min(size, block_size_ - block_.size());
    block_.append(p, take);
    p += take;
    size -= take;
    if (block_.size() == block_size_) LV_RETURN_IF_ERROR(Dispatch());
  }
  return Status::Ok();
}

Status ParallelGzipSink::Dispatch() {
  std::string input;
  input.swap(block_);
  block_.reserve(block_size_);
  int level = level_;
  auto future = pool_->Submit([input = std::move(input), level]() mutable {
    return CompressBlock(std::move(input), level);
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
    std::future<std::string> next;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [this] { return !in_flight_.empty() || closing_; });
      if (in_flight_.empty()) return;
      next = std::move(in_flight_.front());
    }
    std::string compressed = next.get();
    Status s = compressed.empty() ? Status(Error("gzip compression failed (libdeflate)"))
                                  : out_.Append(compressed.data(), compressed.size());
    if (s.ok() && out_hash_) out_hash_->Update(compressed.data(), compressed.size());
    std::lock_guard<std::mutex> lock(mu_);
    in_flight_.pop_front();
    if (s.ok()) {
      bytes_out_ += static_cast<int64_t>(compressed.size());
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
  if (!block_.empty() || !wrote_any_block_) LV_RETURN_IF_ERROR(Dispatch());
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [this] { return in_flight_.empty(); });
  return status_;
}

}  // namespace lakevault
