#include "crypto/sha256.h"

#include <openssl/evp.h>

#include <vector>

#include "core/buffer.h"

namespace lakevault {

struct Sha256::Impl {
  EVP_MD_CTX* ctx = nullptr;
  ~Impl() { EVP_MD_CTX_free(ctx); }
};

Sha256::Sha256() : impl_(std::make_unique<Impl>()) {
  impl_->ctx = EVP_MD_CTX_new();
  EVP_DigestInit_ex(impl_->ctx, EVP_sha256(), nullptr);
}
Sha256::~Sha256() = default;
Sha256::Sha256(Sha256&&) noexcept = default;
Sha256& Sha256::operator=(Sha256&&) noexcept = default;

void Sha256::Update(const void* data, size_t size) { EVP_DigestUpdate(impl_->ctx, data, size); }

std::string Sha256::HexDigest() {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_DigestFinal_ex(impl_->ctx, digest, &length);
  static const char kHex[] = "0123456789abcdef";
  std::string hex;
  hex.reserve(length * 2);
  for (unsigned int i = 0; i < length; ++i) {
    hex.push_back(kHex[digest[i] >> 4]);
    hex.push_back(kHex[digest[i] & 15]);
  }
  return hex;
}

std::string Sha256Hex(const std::string& data) {
  Sha256 hasher;
  hasher.Update(data.data(), data.size());
  return hasher.HexDigest();
}

Result<std::string> Sha256OfFile(Env& env, const std::string& path) {
  LV_ASSIGN_OR_RETURN(auto file, env.NewSequentialFile(path));
  Sha256 hasher;
  Buffer buffer(1 << 20);
  while (true) {
    LV_ASSIGN_OR_RETURN(size_t n, file->Read(buffer.data(), buffer.capacity()));
    if (n == 0) break;
    hasher.Update(buffer.data(), n);
  }
  return hasher.HexDigest();
}

}  // namespace lakevault
