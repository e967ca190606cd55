// PageStream against the libraries that wrote the bytes: what libsnappy, zlib and zstd compress
// comes back byte for byte however it is taken, and damaged snappy is refused exactly when
// libsnappy refuses it.
#include "parquet/page_stream.h"

#include <gtest/gtest.h>
#include <snappy.h>
#include <zlib.h>
#include <zstd.h>

#include <random>
#include <string>

namespace lakevault::parquet {
namespace {

// Text with repeats near and far, incompressible runs and long runs of one byte: every kind of
// snappy element, and copies that overlap their own output.
std::string MixedBytes(size_t size, uint32_t seed) {
  std::mt19937 rng(seed);
  std::string out;
  const std::string words[] = {"{\"numRecords\":", "\"minValues\":{\"a\":", "part-00000-",
                               ".snappy.parquet",  "\"maxValues\"",         "2026-12-02"};
  while (out.size() < size) {
    switch (rng() % 4) {
      case 0:
        out += words[rng() % 6] + std::to_string(rng() % 100000);
        break;
      case 1:
        for (int i = 0; i < 200; ++i) out.push_back(static_cast<char>(rng()));
        break;
      case 2:
        out.append(rng() % 300, static_cast<char>('a' + rng() % 3));
        break;
      default:
        if (out.size() > 100) {
          size_t from = rng() % out.size();
          out += out.substr(from, std::min<size_t>(rng() % 100, out.size() - from));
        }
    }
  }
  out.resize(size);
  return out;
}

// Takes the whole page in pieces of random sizes (1 to `max_take` bytes), then checks the end.
Result<std::string> TakeAll(const std::string& file, int codec, uint64_t uncompressed, size_t piece,
                            size_t max_take, uint32_t seed) {
  auto source = NewMemoryFile(file, "page");
  LV_ASSIGN_OR_RETURN(auto stream,
                      PageStream::Open(*source, 0, file.size(), codec, uncompressed, piece));
  std::mt19937 rng(seed);
  std::string out;
  while (true) {
    size_t n = 1 + rng() % max_take;
    LV_ASSIGN_OR_RETURN(const uint8_t* p, stream->Take(n));
    if (!p) break;
    out.append(reinterpret_cast<const char*>(p), n);
  }
  LV_ASSIGN_OR_RETURN(std::string rest, stream->TakeRest());
  return out + rest;
}

TEST(PageStream, SnappyPagesComeBackByteForByteInAnyPieces) {
  for (size_t size : {0ul, 1ul, 5ul, 4096ul, 65536ul, 70000ul, 3ul << 20}) {
    std::string raw = MixedBytes(size, static_cast<uint32_t>(size));
    std::string compressed;
    snappy::Compress(raw.data(), raw.size(), &compressed);
    for (size_t piece : {1ul, 7ul, 4096ul, 1ul << 20}) {
      if (piece < 4096 && size > 70000) continue;  // a byte a read: minutes for nothing more
      SCOPED_TRACE("size " + std::to_string(size) + " piece " + std::to_string(piece));
      auto got = TakeAll(compressed, 1, raw.size(), piece, 300, 1);
      ASSERT_TRUE(got.ok()) << got.message();
      EXPECT_TRUE(*got == raw);
    }
  }
}

// A snappy stream may copy from further back than Google's 64 KiB fragments ever do: the
// offset scan widens the window, and the bytes still come back right.
TEST(PageStream, SnappyCopiesFromFarBackAreDecoded) {
  std::string literal = MixedBytes(200000, 7);
  std::string stream;
  uint32_t total = 200000 + 64;
  for (uint32_t v = total; v; v >>= 7)
    stream.push_back(static_cast<char>((v & 0x7f) | (v > 0x7f ? 0x80 : 0)));
  // One literal of 200,000 bytes: tag 63 << 2 says a 4-byte length-1 follows.
  stream.push_back(static_cast<char>(63 << 2));
  uint32_t len = 200000 - 1;
  stream.append(reinterpret_cast<const char*>(&len), 4);
  stream += literal;
  // A copy of 64 bytes from 150,000 back (4-byte offset form: tag 3, length-1 in the top bits).
  stream.push_back(static_cast<char>(((64 - 1) << 2) | 3));
  uint32_t offset = 150000;
  stream.append(reinterpret_cast<const char*>(&offset), 4);
  std::string expected;
  ASSERT_TRUE(snappy::Uncompress(stream.data(), stream.size(), &expected));
  ASSERT_EQ(expected.size(), total);
  auto got = TakeAll(stream, 1, total, 4096, 50, 2);
  ASSERT_TRUE(got.ok()) << got.message();
  EXPECT_TRUE(*got == expected);
}

TEST(PageStream, DamagedSnappyIsRefusedExactlyWhenLibsnappyRefusesIt) {
  std::string raw = MixedBytes(150000, 3);
  std::string compressed;
  snappy::Compress(raw.data(), raw.size(), &compressed);
  std::mt19937 rng(11);
  int refused = 0;
  for (int trial = 0; trial < 400; ++trial) {
    std::string damaged = compressed;
    if (trial % 4 == 0) {
      damaged.resize(rng() % damaged.size());  // cut short
    } else {
      damaged[rng() % damaged.size()] ^= static_cast<char>(1 + rng() % 255);
    }
    std::string expected;
    bool library_ok = snappy::Uncompress(damaged.data(), damaged.size(), &expected);
    auto got = TakeAll(damaged, 1, 256u << 20, 4096, 500, static_cast<uint32_t>(trial));
    SCOPED_TRACE("trial " + std::to_string(trial));
    ASSERT_EQ(got.ok(), library_ok) << (got.ok() ? "accepted" : got.message());
    if (library_ok) {
      EXPECT_TRUE(*got == expected);
    }
    refused += library_ok ? 0 : 1;
  }
  EXPECT_GT(refused, 100);  // the damage was real
}

TEST(PageStream, GzipAndZstdPagesComeBackByteForByte) {
  std::string raw = MixedBytes(2u << 20, 5);
  // gzip, as Parquet's GZIP codec writes it
  std::string gz(compressBound(raw.size()) + 64, '\0');
  z_stream zs{};
  ASSERT_EQ(deflateInit2(&zs, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY), Z_OK);
  zs.next_in = reinterpret_cast<Bytef*>(raw.data());
  zs.avail_in = static_cast<uInt>(raw.size());
  zs.next_out = reinterpret_cast<Bytef*>(gz.data());
  zs.avail_out = static_cast<uInt>(gz.size());
  ASSERT_EQ(deflate(&zs, Z_FINISH), Z_STREAM_END);
  gz.resize(zs.total_out);
  deflateEnd(&zs);
  std::string zst(ZSTD_compressBound(raw.size()), '\0');
  zst.resize(ZSTD_compress(zst.data(), zst.size(), raw.data(), raw.size(), 3));
  for (size_t piece : {13ul, 128ul << 10}) {
    auto g = TakeAll(gz, 2, raw.size(), piece, 5000, 3);
    ASSERT_TRUE(g.ok()) << g.message();
    EXPECT_TRUE(*g == raw);
    auto z = TakeAll(zst, 6, raw.size(), piece, 5000, 4);
    ASSERT_TRUE(z.ok()) << z.message();
    EXPECT_TRUE(*z == raw);
  }
  // More bytes than the page header announced, or a stream cut short, are refused.
  EXPECT_FALSE(TakeAll(gz, 2, raw.size() - 1, 4096, 5000, 5).ok());
  EXPECT_FALSE(TakeAll(zst, 6, raw.size() - 1, 4096, 5000, 6).ok());
  EXPECT_FALSE(TakeAll(gz.substr(0, gz.size() / 2), 2, raw.size(), 4096, 5000, 7).ok());
  EXPECT_FALSE(TakeAll(zst.substr(0, zst.size() / 2), 6, raw.size(), 4096, 5000, 8).ok());
  // Uncompressed pages are served as they are.
  auto plain = TakeAll(raw, 0, raw.size(), 4096, 5000, 9);
  ASSERT_TRUE(plain.ok()) << plain.message();
  EXPECT_TRUE(*plain == raw);
}

}  // namespace
}  // namespace lakevault::parquet
