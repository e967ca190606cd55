#include "crypto/encrypt.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <random>

#include "support/test_util.h"

namespace lakevault {
namespace {

using testing::ReadFile;
using testing::TempDir;
using testing::WriteFile;

std::string RandomBytes(size_t size, uint32_t seed) {
  std::mt19937 rng(seed);
  std::string data(size, '\0');
  for (auto& c : data) c = static_cast<char>(rng());
  return data;
}

Key TestKey(const TempDir& dir, const std::string& name = "key") {
  std::string path = dir.str() + "/" + name;
  EXPECT_TRUE(GenerateKeyFile(path).ok());
  auto key = LoadKeyFile(path);
  EXPECT_TRUE(key.ok()) << key.message();
  return *key;
}

TEST(EncryptTest, RoundTripMultiMiB) {
  TempDir dir;
  // 3 MiB plus an odd tail: many full chunks and a short final one.
  const std::string data = RandomBytes(3 * 1024 * 1024 + 12345, 1);
  WriteFile(dir.path() / "plain", data);
  Key key = TestKey(dir);
  ASSERT_TRUE(EncryptFile(dir.str() + "/plain", dir.str() + "/enc", key).ok());
  std::string enc = ReadFile(dir.path() / "enc");
  EXPECT_EQ(enc.substr(0, 6), "LVENC1");
  EXPECT_EQ(enc.find(data.substr(1000, 64)), std::string::npos);
  Status st = DecryptFile(dir.str() + "/enc", dir.str() + "/out", key);
  ASSERT_TRUE(st.ok()) << st.message();
  EXPECT_TRUE(ReadFile(dir.path() / "out") == data);
  EXPECT_FALSE(std::filesystem::exists(dir.path() / ".out.lvtmp"));
}

// Pieces of awkward sizes (1 byte, across chunk boundaries, several chunks at once) must give a
// stream DecryptFile reads back exactly, as an archive encrypted on its way to S3 is.
TEST(EncryptTest, EncryptorFedInPiecesDecryptsToTheSameBytes) {
  TempDir dir;
  Key key = TestKey(dir);
  for (size_t size : {size_t{0}, size_t{1}, size_t{65536}, size_t{3 * 65536}, size_t{1000003}}) {
    const std::string data = RandomBytes(size, 7);
    Encryptor enc(key);
    std::string cipher;
    std::mt19937 rng(static_cast<uint32_t>(size));
    for (size_t at = 0; at < size;) {
      size_t piece = std::min<size_t>(size - at, rng() % 3 == 0 ? 1 : rng() % 200000);
      enc.Update(data.data() + at, piece, cipher);
      at += piece;
    }
    enc.Final(cipher);
    WriteFile(dir.path() / "enc", cipher);
    Status st = DecryptFile(dir.str() + "/enc", dir.str() + "/out", key);
    ASSERT_TRUE(st.ok()) << size << ": " << st.message();
    EXPECT_TRUE(ReadFile(dir.path() / "out") == data) << size;
    // Same layout as EncryptFile: header, then 64 KiB chunks plus one FINAL chunk.
    WriteFile(dir.path() / "plain", data);
    ASSERT_TRUE(EncryptFile(dir.str() + "/plain", dir.str() + "/enc2", key).ok());
    EXPECT_EQ(ReadFile(dir.path() / "enc2").size(), cipher.size()) << size;
  }
}

TEST(EncryptTest, ExactChunkMultipleAndEmptyFile) {
  TempDir dir;
  Key key = TestKey(dir);
  for (size_t size : {size_t{0}, size_t{65536}, size_t{2 * 65536}}) {
    const std::string data = RandomBytes(size, 2);
    WriteFile(dir.path() / "plain", data);
    ASSERT_TRUE(EncryptFile(dir.str() + "/plain", dir.str() + "/enc", key).ok());
    ASSERT_TRUE(DecryptFile(dir.str() + "/enc", dir.str() + "/out", key).ok()) << size;
    EXPECT_TRUE(ReadFile(dir.path() / "out") == data) << size;
  }
}

TEST(EncryptTest, AnyFlippedByteFails) {
  TempDir dir;
  const std::string data = RandomBytes(200 * 1024, 3);
  WriteFile(dir.path() / "plain", data);
  Key key = TestKey(dir);
  ASSERT_TRUE(EncryptFile(dir.str() + "/plain", dir.str() + "/enc", key).ok());
  const std::string enc = ReadFile(dir.path() / "enc");
  // Header bytes, the secretstream header, the first, a middle and the last chunk.
  std::vector<size_t> positions = {
      0, 3, 6, 7, 20, 40, 1000, 70000, 150000, enc.size() - 20, enc.size() - 1};
  for (size_t pos : positions) {
    std::string damaged = enc;
    damaged[pos] ^= 0x01;
    WriteFile(dir.path() / "damaged", damaged);
    Status st = DecryptFile(dir.str() + "/damaged", dir.str() + "/out", key);
    EXPECT_FALSE(st.ok()) << "flipped byte " << pos;
    EXPECT_FALSE(std::filesystem::exists(dir.path() / "out")) << pos;
  }
}

TEST(EncryptTest, TruncatedFileFails) {
  TempDir dir;
  const std::string data = RandomBytes(300 * 1024, 4);
  WriteFile(dir.path() / "plain", data);
  Key key = TestKey(dir);
  ASSERT_TRUE(EncryptFile(dir.str() + "/plain", dir.str() + "/enc", key).ok());
  const std::string enc = ReadFile(dir.path() / "enc");
  const size_t chunk = 65536 + 17;
  const size_t body = 7 + 24;
  // Cut at a chunk boundary (every remaining chunk is whole and authentic), mid-chunk, and
  // just the last byte.
  for (size_t keep :
       {body + chunk, body + 2 * chunk, body + chunk + 100, enc.size() - 1, size_t{10}, body}) {
    WriteFile(dir.path() / "cut", enc.substr(0, keep));
    Status st = DecryptFile(dir.str() + "/cut", dir.str() + "/out", key);
    ASSERT_FALSE(st.ok()) << "kept " << keep;
    EXPECT_FALSE(std::filesystem::exists(dir.path() / "out"));
  }
  WriteFile(dir.path() / "cut", enc.substr(0, body + 2 * chunk));
  Status st = DecryptFile(dir.str() + "/cut", dir.str() + "/out", key);
  EXPECT_NE(st.message().find("truncated"), std::string::npos) << st.message();
}

TEST(EncryptTest, WrongKeyGivesClearError) {
  TempDir dir;
  WriteFile(dir.path() / "plain", RandomBytes(100000, 5));
  Key key = TestKey(dir, "key1");
  Key other = TestKey(dir, "key2");
  ASSERT_TRUE(EncryptFile(dir.str() + "/plain", dir.str() + "/enc", key).ok());
  Status st = DecryptFile(dir.str() + "/enc", dir.str() + "/out", other);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.message(), "cannot decrypt " + dir.str() + "/enc: wrong key or damaged file");
  EXPECT_FALSE(std::filesystem::exists(dir.path() / "out"));
}

TEST(EncryptTest, KeyFileModeAndOverwrite) {
  TempDir dir;
  const std::string path = dir.str() + "/key";
  ASSERT_TRUE(GenerateKeyFile(path).ok());
  struct stat st;
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  const std::string before = ReadFile(path);
  EXPECT_EQ(before.size(), 65u);

  Status again = GenerateKeyFile(path);
  ASSERT_FALSE(again.ok());
  EXPECT_NE(again.message().find("already exists"), std::string::npos);
  EXPECT_EQ(ReadFile(path), before);

  ASSERT_EQ(::chmod(path.c_str(), 0644), 0);
  auto loaded = LoadKeyFile(path);
  ASSERT_FALSE(loaded.ok());
  EXPECT_NE(loaded.message().find("key file " + path + " must have mode 0600"), std::string::npos)
      << loaded.message();
  ASSERT_EQ(::chmod(path.c_str(), 0600), 0);
  EXPECT_TRUE(LoadKeyFile(path).ok());

  WriteFile(dir.path() / "bad", "not hex\n");
  ::chmod((dir.str() + "/bad").c_str(), 0600);
  EXPECT_FALSE(LoadKeyFile(dir.str() + "/bad").ok());
}

TEST(EncryptTest, PassphraseRoundTrip) {
  TempDir dir;
  const std::string data = RandomBytes(1024 * 1024 + 7, 6);
  WriteFile(dir.path() / "plain", data);
  Status st = EncryptFileWithPassphrase(dir.str() + "/plain", dir.str() + "/enc", "correct horse");
  ASSERT_TRUE(st.ok()) << st.message();
  st = DecryptFileWithPassphrase(dir.str() + "/enc", dir.str() + "/out", "correct horse");
  ASSERT_TRUE(st.ok()) << st.message();
  EXPECT_TRUE(ReadFile(dir.path() / "out") == data);

  std::filesystem::remove(dir.path() / "out");
  st = DecryptFileWithPassphrase(dir.str() + "/enc", dir.str() + "/out", "wrong horse");
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("wrong key or damaged file"), std::string::npos);
  EXPECT_FALSE(std::filesystem::exists(dir.path() / "out"));

  // A key file cannot open a passphrase file; the error says why.
  Key key = TestKey(dir);
  st = DecryptFile(dir.str() + "/enc", dir.str() + "/out", key);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("passphrase"), std::string::npos) << st.message();
}

}  // namespace
}  // namespace lakevault
