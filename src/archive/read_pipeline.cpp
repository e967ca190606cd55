#include "archive/read_pipeline.h"

#include <libdeflate.h>
#include <pthread.h>

#include <cstring>

namespace lakevault {

namespace {

constexpr size_t kReadSize = 1 << 20;
// Pieces read or inflated ahead of the consumer: two per core keep both cores busy (8 made no
// measurable difference in speed, and held twice the memory: up to 2 MB a piece).
constexpr size_t kMaxInFlight = 4;
// No member we write is near this; a larger declared size is damage, not a reason to allocate.
constexpr uint32_t kMaxMemberBytes = 64u << 20;
constexpr size_t kMemberHeaderBytes = 20;  // 10 fixed, XLEN, "LV", LEN, size

uint32_t Le32(const unsigned char* p) {
  return static_cast<uint32_t>(p[0]) | static_cast<uint32_t>(p[1]) << 8 |
         static_cast<uint32_t>(p[2]) << 16 | static_cast<uint32_t>(p[3]) << 24;
}

// The member size from a header as ParallelGzipSink writes it, or 0 when `p` is not one.
uint32_t SizedMemberLength(const unsigned char* p) {
  static const unsigned char kFixed[4] = {0x1f, 0x8b, 8, 4};
  if (std::memcmp(p, kFixed, 4) != 0) return 0;
  if (p[10] != 8 || p[11] != 0 || p[12] != 'L' || p[13] != 'V' || p[14] != 4 || p[15] != 0)
    return 0;
  uint32_t size = Le32(p + 16);
  if (size < kMemberHeaderBytes + 8 || size > kMaxMemberBytes) return 0;
  return size;
}

ReadPipeline::Piece Inflate(ReadPipeline::Bytes member, uint64_t offset) {
  struct Deleter {
    void operator()(libdeflate_decompressor* d) const { libdeflate_free_decompressor(d); }
  };
  thread_local std::unique_ptr<libdeflate_decompressor, Deleter> decompressor(
      libdeflate_alloc_decompressor());
  ReadPipeline::Piece piece;
  auto damaged = [&] {
    piece.status = Error("archive is damaged: the gzip member at byte " + std::to_string(offset) +
                         " does not inflate to what its checksum says");
    return std::move(piece);
  };
  if (!decompressor) {
    piece.status = Error("out of memory for a gzip decompressor");
    return piece;
  }
  uint32_t isize =
      Le32(reinterpret_cast<const unsigned char*>(member.data.data() + member.size - 4));
  if (isize > kMaxMemberBytes) return damaged();
  piece.data = ReadPipeline::Bytes(isize);
  size_t in_used = 0;
  size_t out_used = 0;
  auto rc = libdeflate_gzip_decompress_ex(decompressor.get(), member.data.data(), member.size,
                                          piece.data.data.data(), isize, &in_used, &out_used);
  if (rc != LIBDEFLATE_SUCCESS || in_used != member.size || out_used != isize) return damaged();
  return piece;
}

std::future<ReadPipeline::Piece> Ready(ReadPipeline::Piece piece) {
  std::promise<ReadPipeline::Piece> promise;
  promise.set_value(std::move(piece));
  return promise.get_future();
}

}  // namespace

ReadPipeline::ReadPipeline(std::unique_ptr<SequentialFile> file, Sha256* hash)
    : file_(std::move(file)),
      hash_(hash),
      pool_(std::make_unique<WorkerPool>(WorkerPool::DefaultThreads())) {
  feeder_ = std::thread([this] { Feed(); });
}

ReadPipeline::~ReadPipeline() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    cancelled_ = true;
  }
  cv_.notify_all();
  feeder_.join();
}

bool ReadPipeline::inflating() {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [this] { return mode_ >= 0; });
  return mode_ == 1;
}

Status ReadPipeline::Push(std::future<Piece> piece) {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [this] { return queue_.size() < kMaxInFlight || cancelled_; });
  if (cancelled_) return Error("cancelled");
  queue_.push_back(std::move(piece));
  cv_.notify_all();
  return Status::Ok();
}

void ReadPipeline::Feed() {
  pthread_setname_np(pthread_self(), "lakevault-read");
  auto fail = [&](Status s) {
    std::lock_guard<std::mutex> lock(mu_);
    if (mode_ < 0) mode_ = 0;
    Piece piece;
    piece.status = std::move(s);
    queue_.push_back(Ready(std::move(piece)));  // past the bound: it is the last piece
    cv_.notify_all();
  };
  // Reads up to `size` bytes into `out` from `at`, hashing them; fewer only at the end of file.
  auto read_into = [&](char* out, size_t size) -> Result<size_t> {
    size_t got = 0;
    while (got < size) {
      LV_ASSIGN_OR_RETURN(size_t n, file_->Read(out + got, size - got));
      if (n == 0) break;
      got += n;
    }
    if (hash_ && got > 0) hash_->Update(out, got);
    return got;
  };
  auto cancelled = [&] {
    std::lock_guard<std::mutex> lock(mu_);
    return cancelled_;
  };

  std::string head(kMemberHeaderBytes, '\0');
  auto got = read_into(head.data(), head.size());
  if (!got.ok()) return fail(got.status());
  head.resize(*got);
  const bool members = *got == kMemberHeaderBytes &&
                       SizedMemberLength(reinterpret_cast<const unsigned char*>(head.data())) != 0;
  {
    std::lock_guard<std::mutex> lock(mu_);
    mode_ = members ? 1 : 0;
    cv_.notify_all();
  }

  if (!members) {
    size_t carried = head.size();  // the bytes read to decide, handed on first
    while (!cancelled()) {
      Piece piece;
      piece.data = Bytes(carried + kReadSize);
      std::memcpy(piece.data.data.data(), head.data(), carried);
      auto n = read_into(piece.data.data.data() + carried, kReadSize);
      if (!n.ok()) return fail(n.status());
      piece.data.size = carried + *n;
      carried = 0;
      if (piece.data.size == 0) break;
      if (!Push(Ready(std::move(piece))).ok()) return;
    }
  } else {
    // Whole members read straight into their own buffers: the only copy is the kernel's.
    uint64_t offset = 0;
    while (!cancelled()) {
      if (offset > 0) {
        auto n = read_into(head.data(), kMemberHeaderBytes);
        if (!n.ok()) return fail(n.status());
        if (*n == 0) break;
        if (*n < kMemberHeaderBytes)
          return fail(Error("archive is damaged: it ends inside the gzip member at byte " +
                            std::to_string(offset)));
      }
      uint32_t size = SizedMemberLength(reinterpret_cast<const unsigned char*>(head.data()));
      if (size == 0)
        return fail(
            Error("archive is damaged: no valid gzip member at byte " + std::to_string(offset)));
      Bytes member(size);
      std::memcpy(member.data.data(), head.data(), kMemberHeaderBytes);
      auto n = read_into(member.data.data() + kMemberHeaderBytes, size - kMemberHeaderBytes);
      if (!n.ok()) return fail(n.status());
      if (*n < size - kMemberHeaderBytes)
        return fail(Error("archive is damaged: it ends inside the gzip member at byte " +
                          std::to_string(offset)));
      uint64_t at = offset;
      if (!Push(pool_->Submit([member = std::move(member), at]() mutable {
             return Inflate(std::move(member), at);
           })).ok())
        return;
      offset += size;
    }
  }
  Piece end;
  end.end = true;
  Push(Ready(std::move(end)));
}

Result<std::string_view> ReadPipeline::Next() {
  if (finished_) return std::string_view();
  std::future<Piece> front;
  {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [this] { return !queue_.empty(); });
    front = std::move(queue_.front());
    queue_.pop_front();
    cv_.notify_all();
  }
  Piece piece = front.get();
  if (!piece.status.ok()) {
    finished_ = true;
    return piece.status.error();
  }
  if (piece.end) {
    finished_ = true;
    return std::string_view();
  }
  current_ = std::move(piece.data);
  return std::string_view(current_.data.data(), current_.size);
}

}  // namespace lakevault
