// Client-side encryption of archives before they leave the machine, with libsodium's
// crypto_secretstream_xchacha20poly1305: the file is a stream of authenticated 64 KiB chunks,
// the last one tagged FINAL, so a flipped byte, a reordered chunk or a truncated file all fail
// to decrypt instead of restoring damaged data.
//
// File layout: "LVENC1", a mode byte (0 = key file, 1 = passphrase), for passphrase mode the
// Argon2id salt and limits, then the secretstream header and the chunks. The layout before the
// chunks is bound to every chunk as additional data, so it cannot be altered either.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "core/env.h"
#include "core/result.h"

namespace lakevault {

using Salt = std::array<uint8_t, 16>;  // crypto_pwhash_SALTBYTES

struct Key {
  Key() = default;
  Key(const Key&) = default;
  Key& operator=(const Key&) = default;
  // Wiped so a key does not linger in freed memory or core dumps longer than needed.
  ~Key();

  std::array<uint8_t, 32> bytes{};
  // Set for a key derived from a passphrase: EncryptFile stores it in the header so the same
  // passphrase finds the key again, and DecryptFile checks it matches.
  std::optional<Salt> salt;
};

// Encrypts a stream handed over in pieces of any size into exactly the layout EncryptFile
// writes, so an archive can be encrypted on its way to a remote without a local .enc copy.
class Encryptor {
 public:
  explicit Encryptor(const Key& key);
  ~Encryptor();
  Encryptor(const Encryptor&) = delete;
  Encryptor& operator=(const Encryptor&) = delete;
  // Appends to `out` the ciphertext of every whole chunk now available (the first call also the
  // file header); a partial chunk is held until more bytes or Final.
  void Update(const void* data, size_t size, std::string& out);
  // Appends the held bytes as the FINAL chunk (empty when the input ended on a chunk boundary).
  void Final(std::string& out);

 private:
  struct State;
  std::unique_ptr<State> state_;
};

// Encrypts `in_path` into `out_path` (written under a temporary name, fsynced, renamed).
Status EncryptFile(const std::string& in_path, const std::string& out_path, const Key& key,
                   Env& env = Env::Default());
// Decrypts and authenticates; on any failure nothing appears under `out_path`.
// A wrong key fails with "cannot decrypt IN: wrong key or damaged file".
Status DecryptFile(const std::string& in_path, const std::string& out_path, const Key& key,
                   Env& env = Env::Default());

// A key file holds 64 hex digits. It is refused unless only its owner can read it.
Result<Key> LoadKeyFile(const std::string& path);
// Writes a new random key with mode 0600; refuses to overwrite an existing file.
Status GenerateKeyFile(const std::string& path, Env& env = Env::Default());

// Argon2id with libsodium's moderate limits (about 256 MiB and a second).
Result<Key> KeyFromPassphrase(const std::string& passphrase, const Salt& salt);
Salt NewSalt();
// The salt of a file encrypted in passphrase mode; an error for key-file mode or a non-LVENC1
// file. Decrypting with a passphrase: KeyFromPassphrase(p, ReadSalt(file)) then DecryptFile.
Result<Salt> ReadSalt(const std::string& path);

// Convenience wrappers for the passphrase mode.
Status EncryptFileWithPassphrase(const std::string& in_path, const std::string& out_path,
                                 const std::string& passphrase, Env& env = Env::Default());
Status DecryptFileWithPassphrase(const std::string& in_path, const std::string& out_path,
                                 const std::string& passphrase, Env& env = Env::Default());

}  // namespace lakevault
