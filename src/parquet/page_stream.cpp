#include "parquet/page_stream.h"

#include <algorithm>
#include <cstring>
#include <limits>

namespace lakevault::parquet {

namespace {

constexpr uint64_t kMaxPage = 512u << 20;
// Consumed bytes are dropped from the front of the output once this many have piled up.
constexpr size_t kDropAtLeast = 64u << 10;
constexpr uint64_t kKeepAll = std::numeric_limits<uint64_t>::max();

uint32_t LittleEndian(const uint8_t* p, int bytes) {
  uint32_t v = 0;
  for (int i = 0; i < bytes; ++i) v |= static_cast<uint32_t>(p[i]) << (8 * i);
  return v;
}

// A snappy element's tag: a literal of `length` bytes, or a copy of `length` bytes from
// `offset` back. `header` bytes long, or 0 when the bytes at hand end inside the tag.
struct SnappyTag {
  bool literal = false;
  uint64_t length = 0;
  uint64_t offset = 0;
  size_t header = 0;
};

inline __attribute__((always_inline)) SnappyTag ParseTag(const uint8_t* p, size_t available) {
  SnappyTag t;
  uint8_t tag = p[0];
  switch (tag & 3) {
    case 0: {
      t.literal = true;
      uint32_t code = tag >> 2;
      if (code < 60) {
        t.length = code + 1;
        t.header = 1;
      } else {
        int extra = static_cast<int>(code) - 59;
        if (available < static_cast<size_t>(1 + extra)) return t;
        t.length = static_cast<uint64_t>(LittleEndian(p + 1, extra)) + 1;
        t.header = static_cast<size_t>(1 + extra);
      }
      return t;
    }
    case 1:
      if (available < 2) return t;
      t.length = 4 + ((tag >> 2) & 7);
      t.offset = (static_cast<uint64_t>(tag >> 5) << 8) | p[1];
      t.header = 2;
      return t;
    case 2:
      if (available < 3) return t;
      t.length = 1 + (tag >> 2);
      t.offset = LittleEndian(p + 1, 2);
      t.header = 3;
      return t;
    default:
      if (available < 5) return t;
      t.length = 1 + (tag >> 2);
      t.offset = LittleEndian(p + 1, 4);
      t.header = 5;
      return t;
  }
}

// The snappy preamble: the uncompressed length as a varint of at most 5 bytes.
bool ParsePreamble(const uint8_t* p, size_t available, uint64_t* value, size_t* used) {
  uint64_t v = 0;
  for (size_t i = 0; i < 5 && i < available; ++i) {
    v |= static_cast<uint64_t>(p[i] & 0x7f) << (7 * i);
    if (!(p[i] & 0x80)) {
      *value = v;
      *used = i + 1;
      return v <= std::numeric_limits<uint32_t>::max();
    }
  }
  return false;
}

}  // namespace

RangeReader::RangeReader(RandomAccessFile& file, uint64_t offset, uint64_t size, size_t piece)
    : file_(file),
      offset_(offset),
      size_(size),
      next_(offset),
      left_(size),
      piece_(std::max<size_t>(piece, 1)) {}

void RangeReader::Restart() {
  next_ = offset_;
  left_ = size_;
  buf_.clear();
  pos_ = 0;
}

Status RangeReader::Fill(size_t n) {
  if (available() >= n || left_ == 0) return Status::Ok();
  buf_.erase(0, pos_);
  pos_ = 0;
  while (buf_.size() < n && left_ > 0) {
    size_t want = static_cast<size_t>(std::min<uint64_t>(left_, std::max(piece_, n - buf_.size())));
    size_t old = buf_.size();
    buf_.resize(old + want);
    LV_ASSIGN_OR_RETURN(size_t got, file_.ReadAt(next_, buf_.data() + old, want));
    buf_.resize(old + got);
    if (got < want) return Error("unexpected end of file at offset " + std::to_string(next_ + got));
    next_ += got;
    left_ -= got;
  }
  return Status::Ok();
}

PageStream::PageStream(RandomAccessFile& file, uint64_t offset, uint64_t size, int codec,
                       uint64_t uncompressed, size_t piece)
    : in_(file, offset, size, piece), codec_(codec), uncompressed_(uncompressed) {}

PageStream::~PageStream() {
  if (zs_open_) inflateEnd(&zs_);
  if (zstd_) ZSTD_freeDStream(zstd_);
}

Result<std::unique_ptr<PageStream>> PageStream::Open(RandomAccessFile& file, uint64_t offset,
                                                     uint64_t size, int codec,
                                                     uint64_t uncompressed, size_t piece) {
  if (uncompressed > kMaxPage) return Error("page too large");
  std::unique_ptr<PageStream> s(new PageStream(file, offset, size, codec, uncompressed, piece));
  switch (codec) {
    case 0:
      break;
    case 1:
      break;
    case 2:
      if (inflateInit2(&s->zs_, 15 + 32) != Z_OK) return Error("zlib init failed");
      s->zs_open_ = true;
      break;
    case 6:
      s->zstd_ = ZSTD_createDStream();
      if (!s->zstd_ || ZSTD_isError(ZSTD_initDStream(s->zstd_))) return Error("zstd init failed");
      break;
    default:
      return Error("unsupported compression codec " + std::to_string(codec));
  }
  return s;
}

void PageStream::DropConsumed() {
  uint64_t keep = codec_ == 1 ? window_ : 0;
  if (keep == kKeepAll || out_pos_ <= keep) return;
  size_t drop = out_pos_ - static_cast<size_t>(keep);
  if (drop < kDropAtLeast && drop < out_.size() / 2) return;
  out_.erase(0, drop);
  out_pos_ -= drop;
  dropped_ += drop;
}

Result<const uint8_t*> PageStream::Take(size_t n) {
  if (waiting() < n) {
    DropConsumed();
    LV_RETURN_IF_ERROR(Produce(n));
    if (waiting() < n) return static_cast<const uint8_t*>(nullptr);
  }
  const auto* p = reinterpret_cast<const uint8_t*>(out_.data()) + out_pos_;
  out_pos_ += n;
  return p;
}

Result<std::string> PageStream::TakeRest() {
  DropConsumed();
  LV_RETURN_IF_ERROR(Produce(std::numeric_limits<size_t>::max()));
  std::string rest = out_.substr(out_pos_);
  out_pos_ = out_.size();
  return rest;
}

Status PageStream::Produce(size_t n) {
  switch (codec_) {
    case 1:
      return ProduceSnappy(n);
    case 2:
      return ProduceInflate(n);
    case 6:
      return ProduceZstd(n);
    default:
      while (waiting() < n && !done_) {
        LV_RETURN_IF_ERROR(in_.Fill(std::min<size_t>(n - waiting(), 1u << 20)));
        if (in_.available() == 0) {
          done_ = true;
          break;
        }
        size_t k = std::min(in_.available(), n - waiting());
        out_.append(reinterpret_cast<const char*>(in_.data()), k);
        in_.Skip(k);
        produced_ += k;
      }
      return Status::Ok();
  }
}

// The snappy format (format_description.txt in google/snappy): a varint length, then literals
// and back-references. libsnappy's own streaming interface (Source/Sink) still holds the whole
// output until the end, because a copy may reach anywhere behind it; this decoder keeps only the
// window its copies need (window_). It refuses what libsnappy refuses:
// a copy before the start, output longer than announced, input left over or cut short.
Status PageStream::ProduceSnappy(size_t n) {
  const Error corrupt("corrupt snappy page");
  if (!snappy_started_) {
    LV_RETURN_IF_ERROR(in_.Fill(5));
    size_t used = 0;
    if (!ParsePreamble(in_.data(), in_.available(), &snappy_total_, &used)) return corrupt;
    if (snappy_total_ > kMaxPage) return corrupt;
    in_.Skip(used);
    snappy_started_ = true;
  }
  while (waiting() < n && !done_) {
    if (produced_ == snappy_total_) {
      LV_RETURN_IF_ERROR(in_.Fill(1));
      if (in_.available() != 0) return corrupt;  // input left after the announced length
      done_ = true;
      break;
    }
    if (literal_left_ > 0) {
      LV_RETURN_IF_ERROR(in_.Fill(1));
      if (in_.available() == 0) return corrupt;
      size_t k = static_cast<size_t>(std::min<uint64_t>(literal_left_, in_.available()));
      out_.append(reinterpret_cast<const char*>(in_.data()), k);
      in_.Skip(k);
      literal_left_ -= k;
      produced_ += k;
      continue;
    }
    // Elements while the bytes at hand hold whole tags: most are a few bytes long. Fewer than
    // 64 KiB at hand means the page's input ends there, and a cut tag is damage.
    LV_RETURN_IF_ERROR(in_.Fill(64 * 1024));
    if (in_.available() == 0) return corrupt;
    const bool input_ends = in_.available() < 64 * 1024;
    const uint8_t* p = in_.data();
    const uint8_t* end = p + in_.available();
    // Output goes straight into a region reserved once, trimmed to what was written after. The
    // region is filled whatever `n` is: decoding ahead costs nothing, resizing for a few bytes
    // at a time would.
    constexpr size_t kRoom = 32 * 1024;
    const size_t base = out_.size();
    out_.resize(base + kRoom);
    char* const start = out_.data() + base;
    char* d = start;
    char* const limit = start + kRoom - 64;  // a copy is at most 64 bytes
    uint64_t left = snappy_total_ - produced_;
    bool restart = false;
    while (left > 0 && p < end && d < limit) {
      if (end - p < 5 && !input_ends) break;  // the tag may go on past the bytes at hand
      SnappyTag t = ParseTag(p, static_cast<size_t>(end - p));
      if (t.header == 0 || t.length > left) {
        out_.resize(base + static_cast<size_t>(d - start));
        return corrupt;
      }
      p += t.header;
      if (t.literal) {
        size_t k = static_cast<size_t>(std::min<uint64_t>(
            {t.length, static_cast<uint64_t>(end - p), static_cast<uint64_t>(start + kRoom - d)}));
        std::memcpy(d, p, k);
        p += k;
        d += k;
        left -= k;
        literal_left_ = t.length - k;
        if (literal_left_ > 0) break;
        continue;
      }
      // The offset counts back from the write position; out_ holds at least the window of it.
      size_t len = static_cast<size_t>(t.length);
      if (t.offset == 0 || t.offset > base + static_cast<size_t>(d - start)) {
        out_.resize(base + static_cast<size_t>(d - start));
        produced_ = snappy_total_ - left;
        if (t.offset == 0 || t.offset > produced_ || window_ == kKeepAll) return corrupt;
        restart = true;
        break;
      }
      const char* from = d - t.offset;
      if (t.offset >= len) {
        std::memcpy(d, from, len);
      } else {
        for (size_t i = 0; i < len; ++i) d[i] = from[i];  // overlapping: a run repeating itself
      }
      d += len;
      left -= len;
    }
    if (restart) {
      LV_RETURN_IF_ERROR(RestartSnappyKeepingAll());
      continue;
    }
    out_.resize(base + static_cast<size_t>(d - start));
    produced_ = snappy_total_ - left;
    in_.Skip(static_cast<size_t>(p - in_.data()));
  }
  return Status::Ok();
}

Status PageStream::RestartSnappyKeepingAll() {
  uint64_t taken = dropped_ + out_pos_;
  in_.Restart();
  out_.clear();
  out_pos_ = 0;
  dropped_ = 0;
  produced_ = 0;
  snappy_started_ = false;
  literal_left_ = 0;
  window_ = kKeepAll;
  LV_RETURN_IF_ERROR(ProduceSnappy(static_cast<size_t>(taken)));
  if (out_.size() < taken) return Error("corrupt snappy page");
  out_pos_ = static_cast<size_t>(taken);
  return Status::Ok();
}

Status PageStream::ProduceInflate(size_t n) {
  while (waiting() < n && !done_) {
    LV_RETURN_IF_ERROR(in_.Fill(1));
    size_t room = std::max<size_t>(64 * 1024, std::min<size_t>(n - waiting(), 1u << 20));
    size_t old = out_.size();
    out_.resize(old + room);
    zs_.next_in = const_cast<Bytef*>(in_.data());
    zs_.avail_in = static_cast<uInt>(std::min<size_t>(in_.available(), 1u << 30));
    zs_.next_out = reinterpret_cast<Bytef*>(out_.data() + old);
    zs_.avail_out = static_cast<uInt>(room);
    uInt had = zs_.avail_in;
    int rc = inflate(&zs_, Z_NO_FLUSH);
    in_.Skip(had - zs_.avail_in);
    size_t made = room - zs_.avail_out;
    out_.resize(old + made);
    produced_ += made;
    if (produced_ > uncompressed_) return Error("corrupt gzip page");
    if (rc == Z_STREAM_END) {
      done_ = true;
    } else if (rc != Z_OK || (made == 0 && had - zs_.avail_in == 0)) {
      return Error("corrupt gzip page");  // damaged, or cut short
    }
  }
  return Status::Ok();
}

Status PageStream::ProduceZstd(size_t n) {
  while (waiting() < n && !done_) {
    LV_RETURN_IF_ERROR(in_.Fill(1));
    size_t room =
        std::max<size_t>(ZSTD_DStreamOutSize(), std::min<size_t>(n - waiting(), 1u << 20));
    size_t old = out_.size();
    out_.resize(old + room);
    ZSTD_inBuffer input{in_.data(), in_.available(), 0};
    ZSTD_outBuffer output{out_.data() + old, room, 0};
    size_t rc = ZSTD_decompressStream(zstd_, &output, &input);
    in_.Skip(input.pos);
    out_.resize(old + output.pos);
    produced_ += output.pos;
    if (ZSTD_isError(rc)) return Error(std::string("corrupt zstd page: ") + ZSTD_getErrorName(rc));
    if (produced_ > uncompressed_) return Error("corrupt zstd page: more bytes than announced");
    if (rc == 0 && in_.AtEnd()) {
      done_ = true;  // the last frame decoded and flushed
    } else if (in_.AtEnd() && output.pos < room) {
      return Error("corrupt zstd page: truncated");  // all input given, a frame still open
    } else if (input.pos == 0 && output.pos == 0) {
      return Error("corrupt zstd page: no progress");
    }
  }
  return Status::Ok();
}

}  // namespace lakevault::parquet
