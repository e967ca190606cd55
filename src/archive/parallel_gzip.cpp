#include "archive/parallel_gzip.h"

#include <libdeflate.h>

#include <cmath>
#include <memory>

namespace lakevault {

namespace {

constexpr size_t kChunk = 256 * 1024;
// Above this many bits per byte (order-0 entropy) deflate cannot shrink a chunk: snappy- or
// zstd-compressed Parquet pages, encrypted data. Such chunks are stored, which costs a copy
// and a CRC instead of a futile search for matches, and comes out no larger.
constexpr double kIncompressibleBitsPerByte = 7.97;

double EntropyBitsPerByte(const unsigned char* data, size_t size) {
  uint32_t counts[256] = {0};
  for (size_t i = 0; i < size; ++i) counts[data[i]]++;
  double entropy = 0;
  for (uint32_t c : counts) {
    if (c == 0) continue;
    double p = static_cast<double>(c) / static_cast<double>(size);
    entropy -= p * std::log2(p);
  }
  return entropy;
}

void PutLe32(std::string& out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

// One gzip member holding `data` in deflate stored blocks (RFC 1951 section 3.2.4).
void AppendStoredMember(std::string& out, const char* data, size_t size) {
  static const unsigned char kHeader[10] = {0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff};
  out.append(reinterpret_cast<const char*>(kHeader), sizeof kHeader);
  size_t offset = 0;
  do {
    size_t n = std::min<size_t>(65535, size - offset);
    bool last = offset + n == size;
    out.push_back(static_cast<char>(last ? 1 : 0));
    out.push_back(static_cast<char>(n & 0xff));
    out.push_back(static_cast<char>(n >> 8));
    out.push_back(static_cast<char>(~n & 0xff));
    out.push_back(static_cast<char>((~n >> 8) & 0xff));
    out.append(data + offset, n);
    offset += n;
  } while (offset < size);
  PutLe32(out, libdeflate_crc32(0, data, size));
  PutLe32(out, static_cast<uint32_t>(size));
}

bool AppendCompressedMember(std::string& out, libdeflate_compressor* compressor, const char* data,
                            size_t size) {
  size_t bound = libdeflate_gzip_compress_bound(compressor, size);
  size_t start = out.size();
  out.resize(start + bound);
  size_t n = libdeflate_gzip_compress(compressor, data, size, out.data() + start, bound);
  out.resize(start + n);
  return n > 0;
}

// Compresses one block into gzip members: runs of compressible chunks through libdeflate,
// incompressible chunks stored. Returns "" on failure.
std::string CompressBlock(std::string input, int level) {
  struct Deleter {
    void operator()(libdeflate_compressor* c) const { libdeflate_free_compressor(c); }
  };
  std::unique_ptr<libdeflate_compressor, Deleter> compressor(libdeflate_alloc_compressor(level));
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
      // Two blocks per thread keep every core busy while the oldest is written, and bound memory
      // to about 4 x threads x block_size.
      max_in_flight_(static_cast<size_t>(threads > 0 ? threads : 1) * 2),
      block_size_(block_size) {
  block_.reserve(block_size_);
}

ParallelGzipSink::~ParallelGzipSink() {
  for (auto& f : in_flight_)
    if (f.valid()) f.wait();
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
  while (in_flight_.size() >= max_in_flight_) LV_RETURN_IF_ERROR(WriteOldest());
  std::string input;
  input.swap(block_);
  block_.reserve(block_size_);
  in_flight_.push_back(std::async(std::launch::async, CompressBlock, std::move(input), level_));
  wrote_any_block_ = true;
  return Status::Ok();
}

Status ParallelGzipSink::WriteOldest() {
  std::string compressed = in_flight_.front().get();
  in_flight_.pop_front();
  if (compressed.empty()) return Error("gzip compression failed (libdeflate)");
  LV_RETURN_IF_ERROR(out_.Append(compressed.data(), compressed.size()));
  if (out_hash_) out_hash_->Update(compressed.data(), compressed.size());
  bytes_out_ += static_cast<int64_t>(compressed.size());
  return Status::Ok();
}

Status ParallelGzipSink::Finish() {
  // An empty stream is still one (empty) gzip member, so the file is valid gzip.
  if (!block_.empty() || !wrote_any_block_) LV_RETURN_IF_ERROR(Dispatch());
  while (!in_flight_.empty()) LV_RETURN_IF_ERROR(WriteOldest());
  return Status::Ok();
}

}  // namespace lakevault
