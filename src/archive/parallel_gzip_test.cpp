#include "archive/parallel_gzip.h"

#include <gtest/gtest.h>
#include <zlib.h>

#include <algorithm>
#include <random>
#include <vector>

#include "support/test_util.h"

namespace lakevault {
namespace {

// Decompresses every gzip member of `data` with zlib, as `gzip -d` does.
std::string Gunzip(const std::string& data) {
  std::string out;
  z_stream z{};
  inflateInit2(&z, 16 + MAX_WBITS);
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  z.avail_in = static_cast<uInt>(data.size());
  char buf[65536];
  while (true) {
    z.next_out = reinterpret_cast<Bytef*>(buf);
    z.avail_out = sizeof buf;
    int rc = inflate(&z, Z_NO_FLUSH);
    out.append(buf, sizeof buf - z.avail_out);
    if (rc == Z_STREAM_END) {
      if (z.avail_in == 0) break;
      inflateReset(&z);  // the next member
      continue;
    }
    if (rc != Z_OK) {
      out = "<inflate error>";
      break;
    }
  }
  inflateEnd(&z);
  return out;
}

std::string Compress(const std::string& input, size_t write_size, size_t block_size = 1 << 20) {
  testing::TempDir dir;
  std::string path = dir.str() + "/out.gz";
  auto file = Env::Default().NewWritableFile(path, 0600).value();
  Sha256 hash;
  ParallelGzipSink sink(*file, &hash, 6, 2, block_size);
  for (size_t off = 0; off < input.size(); off += write_size)
    EXPECT_TRUE(sink.Write(input.data() + off, std::min(write_size, input.size() - off)).ok());
  EXPECT_TRUE(sink.Finish().ok());
  EXPECT_TRUE(file->Close().ok());
  std::string out = testing::ReadFile(path);
  EXPECT_EQ(sink.bytes_out(), static_cast<int64_t>(out.size()));
  EXPECT_EQ(hash.HexDigest(), Sha256Hex(out));
  return out;
}

TEST(ParallelGzipTest, MixedDataRoundTripsThroughZlibAndStaysSmall) {
  std::mt19937_64 rng(7);
  std::string input;
  for (int i = 0; i < 9; ++i) {
    // Alternate incompressible (random) and compressible (text) stretches of odd sizes.
    std::string random(700 * 1024 + i * 13, '\0');
    for (auto& c : random) c = static_cast<char>(rng());
    input += random;
    for (int k = 0; k < 5000 + i; ++k)
      input += "2026-01-05,SPY,450.25,call," + std::to_string(k) + "\n";
  }
  std::string gz = Compress(input, 10240);
  EXPECT_EQ(Gunzip(gz), input);
  size_t random_bytes = 0;
  for (int i = 0; i < 9; ++i) random_bytes += 700 * 1024 + i * 13;
  EXPECT_LT(gz.size(), random_bytes + (input.size() - random_bytes) / 4);
}

// Blocks and their members larger than a buffer slot (core/buffer.h) are heap buffers.
TEST(ParallelGzipTest, BlocksLargerThanABufferSlotRoundTrip) {
  std::mt19937_64 rng(11);
  std::string input(5 * Buffer::kSlotBytes + 77, '\0');
  for (size_t i = 0; i < input.size(); ++i)
    input[i] = (i / 300000) % 2 ? static_cast<char>(rng()) : static_cast<char>('a' + i % 7);
  std::string gz = Compress(input, 1 << 16, 3 * Buffer::kSlotBytes);
  EXPECT_EQ(Gunzip(gz), input);
  EXPECT_LT(gz.size(), input.size());
}

TEST(ParallelGzipTest, EmptyInputIsStillValidGzip) {
  std::string gz = Compress("", 1);
  EXPECT_FALSE(gz.empty());
  EXPECT_EQ(Gunzip(gz), "");
}

// Every member names its own total size in an "LV" FEXTRA subfield: walking the sizes must land
// exactly on each next member and on the end of the file.
TEST(ParallelGzipTest, EveryMemberCarriesItsSize) {
  std::mt19937_64 rng(3);
  std::string input;
  for (int i = 0; i < 5; ++i) {
    std::string random(300 * 1024, '\0');
    for (auto& c : random) c = static_cast<char>(rng());
    input += random + std::string(200 * 1024, 'a' + i);
  }
  std::string gz = Compress(input, 4096);
  size_t at = 0;
  int members = 0;
  while (at < gz.size()) {
    ASSERT_GE(gz.size() - at, 20u);
    const auto* p = reinterpret_cast<const unsigned char*>(gz.data() + at);
    ASSERT_EQ(p[0], 0x1f);
    ASSERT_EQ(p[1], 0x8b);
    ASSERT_EQ(p[3] & 4, 4) << "FEXTRA";
    ASSERT_EQ(p[12], 'L');
    ASSERT_EQ(p[13], 'V');
    uint32_t size = p[16] | p[17] << 8 | p[18] << 16 | static_cast<uint32_t>(p[19]) << 24;
    ASSERT_GT(size, 28u);
    at += size;
    ++members;
  }
  EXPECT_EQ(at, gz.size());
  EXPECT_GT(members, 5);
  EXPECT_EQ(Gunzip(gz), input);
}

struct Member {
  uint32_t input_size;  // ISIZE
  bool stored;          // its first deflate block is a stored one (BTYPE 00)
};

// The members of a stream ParallelGzipSink wrote, from their "LV" sizes.
std::vector<Member> Members(const std::string& gz) {
  std::vector<Member> out;
  size_t at = 0;
  while (at + 28 <= gz.size()) {
    const auto* p = reinterpret_cast<const unsigned char*>(gz.data() + at);
    uint32_t size = p[16] | p[17] << 8 | p[18] << 16 | static_cast<uint32_t>(p[19]) << 24;
    if (size < 28 || at + size > gz.size()) break;
    const auto* end = p + size;
    uint32_t isize = end[-4] | end[-3] << 8 | end[-2] << 16 | static_cast<uint32_t>(end[-1]) << 24;
    out.push_back({isize, (p[20] & 6) == 0});
    at += size;
  }
  return out;
}

std::string RandomBytes(std::mt19937_64& rng, size_t n) {
  std::string s(n, '\0');
  for (auto& c : s) c = static_cast<char>(rng());
  return s;
}

std::string Text(size_t n) {
  std::string s;
  for (int k = 0; s.size() < n; ++k) s += "2026-01-05,SPY,450.25,call," + std::to_string(k) + "\n";
  s.resize(n);
  return s;
}

// Files smaller than a 256 KiB chunk put compressible and incompressible bytes in one chunk;
// the random halves must still be stored, in 32 KiB pieces, rather than deflated with the text.
TEST(ParallelGzipTest, MixedChunksStoreTheirIncompressiblePieces) {
  std::mt19937_64 rng(11);
  std::string input;
  for (int i = 0; i < 8; ++i) input += RandomBytes(rng, 96 * 1024) + Text(32 * 1024);
  std::string gz = Compress(input, 65536);
  ASSERT_EQ(Gunzip(gz), input);
  size_t stored = 0;
  for (const auto& m : Members(gz))
    if (m.stored) stored += m.input_size;
  // Each 128 KiB file is 3 random 32 KiB pieces and one of text; pieces straddling a boundary
  // in a chunk are at worst deflated, so at least half the random bytes are stored.
  EXPECT_GE(stored, 8u * 48 * 1024);
  EXPECT_LE(stored, 8u * 96 * 1024);
}

std::string CompressWithLevels(const std::vector<std::pair<int, std::string>>& parts) {
  testing::TempDir dir;
  std::string path = dir.str() + "/out.gz";
  auto file = Env::Default().NewWritableFile(path, 0600).value();
  ParallelGzipSink sink(*file, nullptr, parts.front().first, 2, 1 << 20);
  for (const auto& [level, bytes] : parts) {
    sink.SetLevel(level);
    EXPECT_TRUE(sink.Write(bytes.data(), bytes.size()).ok());
  }
  EXPECT_TRUE(sink.Finish().ok());
  EXPECT_TRUE(file->Close().ok());
  return testing::ReadFile(path);
}

// A level set between writes applies to the bytes that follow it, also within one block, and the
// stream stays one valid gzip file.
TEST(ParallelGzipTest, LevelChangesApplyFromWhereTheyAreSet) {
  std::string a = Text(300 * 1024), b = Text(500 * 1024), c = Text(100 * 1024);
  std::string low = CompressWithLevels({{1, a}, {1, b}, {1, c}});
  std::string high = CompressWithLevels({{9, a}, {9, b}, {9, c}});
  std::string mixed = CompressWithLevels({{1, a}, {9, b}, {1, c}});
  for (const auto* gz : {&low, &high, &mixed}) EXPECT_EQ(Gunzip(*gz), a + b + c);
  EXPECT_LT(high.size(), mixed.size());
  EXPECT_LT(mixed.size(), low.size());
  // Cut at the changes: members end at 300 KiB and at 800 KiB of input.
  std::vector<uint32_t> ends;
  uint32_t total = 0;
  for (const auto& m : Members(mixed)) ends.push_back(total += m.input_size);
  EXPECT_NE(std::find(ends.begin(), ends.end(), 300u * 1024), ends.end());
  EXPECT_NE(std::find(ends.begin(), ends.end(), 800u * 1024), ends.end());
}

}  // namespace
}  // namespace lakevault
