// SHA-256 through OpenSSL's EVP interface, incremental so data is hashed in the same pass
// that reads or writes it.
#pragma once

#include <cstddef>
#include <memory>
#include <string>

#include "core/env.h"
#include "core/result.h"

namespace lakevault {

class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(Sha256&&) noexcept;
  Sha256& operator=(Sha256&&) noexcept;
  void Update(const void* data, size_t size);
  // Lowercase hex digest; the hasher must not be updated afterwards.
  std::string HexDigest();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

std::string Sha256Hex(const std::string& data);
Result<std::string> Sha256OfFile(Env& env, const std::string& path);

}  // namespace lakevault
