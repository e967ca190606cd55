#include "crypto/encrypt.h"

#include <sodium.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <vector>

namespace lakevault {

namespace {

constexpr char kMagic[] = "LVENC1";
constexpr size_t kMagicSize = 6;
constexpr uint8_t kModeKeyFile = 0;
constexpr uint8_t kModePassphrase = 1;
constexpr size_t kChunk = 64 * 1024;
constexpr size_t kCipherChunk = kChunk + crypto_secretstream_xchacha20poly1305_ABYTES;

static_assert(sizeof(Salt) == crypto_pwhash_SALTBYTES);
static_assert(sizeof(Key::bytes) == crypto_secretstream_xchacha20poly1305_KEYBYTES);

Status InitSodium() {
  static const int rc = sodium_init();
  if (rc < 0) return Error("libsodium could not be initialised");
  return Status::Ok();
}

// Reads until `size` bytes or end of file: a SequentialFile may return short reads.
Result<size_t> ReadFull(SequentialFile& file, uint8_t* buffer, size_t size) {
  size_t total = 0;
  while (total < size) {
    LV_ASSIGN_OR_RETURN(size_t n, file.Read(buffer + total, size - total));
    if (n == 0) break;
    total += n;
  }
  return total;
}

std::string DirOf(const std::string& path) {
  std::string dir = std::filesystem::path(path).parent_path().string();
  return dir.empty() ? "." : dir;
}

std::string TempNameFor(const std::string& path) {
  std::filesystem::path p(path);
  return (p.parent_path() / ("." + p.filename().string() + ".lvtmp")).string();
}

// Output written under a temporary name and renamed into place only once complete, so a crash
// or a failed decryption never leaves a partial file under the final name.
class AtomicOutput {
 public:
  AtomicOutput(Env& env, std::string path) : env_(env), path_(std::move(path)) {}
  ~AtomicOutput() {
    if (file_ && !committed_) {
      file_->Close();
      env_.RemoveFile(file_->path());
    }
  }
  Status Open(mode_t mode) {
    std::string tmp = TempNameFor(path_);
    env_.RemoveFile(tmp);  // leftover of an interrupted earlier run
    LV_ASSIGN_OR_RETURN(file_, env_.NewWritableFile(tmp, mode));
    return Status::Ok();
  }
  Status Append(const void* data, size_t size) { return file_->Append(data, size); }
  Status Commit(bool no_replace) {
    LV_RETURN_IF_ERROR(file_->Sync());
    LV_RETURN_IF_ERROR(file_->Close());
    LV_RETURN_IF_ERROR(env_.Rename(file_->path(), path_, no_replace));
    committed_ = true;
    return env_.SyncDir(DirOf(path_));
  }

 private:
  Env& env_;
  std::string path_;
  std::unique_ptr<WritableFile> file_;
  bool committed_ = false;
};

std::string FileHeader(const Key& key) {
  std::string header(kMagic, kMagicSize);
  if (key.salt) {
    header.push_back(static_cast<char>(kModePassphrase));
    header.append(reinterpret_cast<const char*>(key.salt->data()), key.salt->size());
  } else {
    header.push_back(static_cast<char>(kModeKeyFile));
  }
  return header;
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

Key::~Key() { sodium_memzero(bytes.data(), bytes.size()); }

struct Encryptor::State {
  std::string header;
  crypto_secretstream_xchacha20poly1305_state stream;
  std::string held;
  bool started = false;
  bool finished = false;
};

Encryptor::Encryptor(const Key& key) : state_(std::make_unique<State>()) {
  // sodium_init only fails when the system has no randomness source; Update would then abort
  // inside libsodium rather than encrypt with a predictable nonce.
  (void)InitSodium();
  state_->header = FileHeader(key);
  uint8_t stream_header[crypto_secretstream_xchacha20poly1305_HEADERBYTES];
  crypto_secretstream_xchacha20poly1305_init_push(&state_->stream, stream_header, key.bytes.data());
  state_->held.assign(state_->header);
  state_->held.append(reinterpret_cast<const char*>(stream_header), sizeof(stream_header));
  state_->held.reserve(state_->held.size() + kChunk);
}

Encryptor::~Encryptor() {
  sodium_memzero(&state_->stream, sizeof(state_->stream));
  if (!state_->held.empty()) sodium_memzero(state_->held.data(), state_->held.size());
}

namespace {
void PushChunk(crypto_secretstream_xchacha20poly1305_state& stream, const std::string& header,
               const uint8_t* plain, size_t n, bool last, std::string& out) {
  const size_t at = out.size();
  out.resize(at + n + crypto_secretstream_xchacha20poly1305_ABYTES);
  unsigned long long cipher_len = 0;
  crypto_secretstream_xchacha20poly1305_push(
      &stream, reinterpret_cast<uint8_t*>(out.data() + at), &cipher_len, plain, n,
      reinterpret_cast<const uint8_t*>(header.data()), header.size(),
      last ? crypto_secretstream_xchacha20poly1305_TAG_FINAL : 0);
  out.resize(at + cipher_len);
}
}  // namespace

void Encryptor::Update(const void* data, size_t size, std::string& out) {
  State& s = *state_;
  if (!s.started) {
    // The file header and the secretstream header lead the output.
    out.append(s.held);
    s.held.clear();
    s.started = true;
  }
  const auto* p = static_cast<const uint8_t*>(data);
  if (!s.held.empty()) {
    const size_t take = std::min(size, kChunk - s.held.size());
    s.held.append(reinterpret_cast<const char*>(p), take);
    p += take;
    size -= take;
    if (s.held.size() < kChunk) return;
    PushChunk(s.stream, s.header, reinterpret_cast<const uint8_t*>(s.held.data()), kChunk, false,
              out);
    s.held.clear();
  }
  // A chunk is sent as non-final as soon as it is whole: a stream that ends on a boundary gets an
  // empty FINAL chunk, as EncryptFile writes it.
  for (; size >= kChunk; p += kChunk, size -= kChunk)
    PushChunk(s.stream, s.header, p, kChunk, false, out);
  s.held.append(reinterpret_cast<const char*>(p), size);
}

void Encryptor::Final(std::string& out) {
  State& s = *state_;
  if (s.finished) return;
  Update(nullptr, 0, out);
  PushChunk(s.stream, s.header, reinterpret_cast<const uint8_t*>(s.held.data()), s.held.size(),
            true, out);
  sodium_memzero(s.held.data(), s.held.size());
  s.held.clear();
  s.finished = true;
}

Status EncryptFile(const std::string& in_path, const std::string& out_path, const Key& key,
                   Env& env) {
  LV_RETURN_IF_ERROR(InitSodium());
  LV_ASSIGN_OR_RETURN(auto in, env.NewSequentialFile(in_path));
  AtomicOutput out(env, out_path);
  LV_RETURN_IF_ERROR(out.Open(0600));
  Encryptor encryptor(key);
  std::vector<uint8_t> plain(kChunk * 16);
  std::string cipher;
  for (;;) {
    LV_ASSIGN_OR_RETURN(size_t n, in->Read(plain.data(), plain.size()));
    if (n == 0) break;
    cipher.clear();
    encryptor.Update(plain.data(), n, cipher);
    LV_RETURN_IF_ERROR(out.Append(cipher.data(), cipher.size()));
  }
  cipher.clear();
  encryptor.Final(cipher);
  LV_RETURN_IF_ERROR(out.Append(cipher.data(), cipher.size()));
  sodium_memzero(plain.data(), plain.size());
  return out.Commit(/*no_replace=*/false);
}

Status DecryptFile(const std::string& in_path, const std::string& out_path, const Key& key,
                   Env& env) {
  LV_RETURN_IF_ERROR(InitSodium());
  const std::string prefix = "cannot decrypt " + in_path;
  const Error wrong_key(prefix + ": wrong key or damaged file");
  LV_ASSIGN_OR_RETURN(auto in, env.NewSequentialFile(in_path));

  uint8_t fixed[kMagicSize + 1];
  LV_ASSIGN_OR_RETURN(size_t got, ReadFull(*in, fixed, sizeof(fixed)));
  if (got < sizeof(fixed) || std::memcmp(fixed, kMagic, kMagicSize) != 0) {
    return Error(prefix + ": not a lakevault encrypted file (no LVENC1 header)");
  }
  std::string header(reinterpret_cast<const char*>(fixed), sizeof(fixed));
  const uint8_t mode = fixed[kMagicSize];
  if (mode == kModePassphrase) {
    Salt salt;
    LV_ASSIGN_OR_RETURN(got, ReadFull(*in, salt.data(), salt.size()));
    if (got < salt.size()) return Error(prefix + ": file is truncated");
    if (!key.salt) return Error(prefix + ": it was encrypted with a passphrase, not a key file");
    // A different salt means a different derived key: report it as the wrong key it is.
    if (*key.salt != salt) return wrong_key;
    header.append(reinterpret_cast<const char*>(salt.data()), salt.size());
  } else if (mode == kModeKeyFile) {
    if (key.salt) return Error(prefix + ": it was encrypted with a key file, not a passphrase");
  } else {
    return Error(prefix + ": unknown encryption mode " + std::to_string(mode));
  }

  uint8_t stream_header[crypto_secretstream_xchacha20poly1305_HEADERBYTES];
  LV_ASSIGN_OR_RETURN(got, ReadFull(*in, stream_header, sizeof(stream_header)));
  if (got < sizeof(stream_header)) return Error(prefix + ": file is truncated");
  crypto_secretstream_xchacha20poly1305_state state;
  if (crypto_secretstream_xchacha20poly1305_init_pull(&state, stream_header, key.bytes.data()) !=
      0) {
    return wrong_key;
  }

  AtomicOutput out(env, out_path);
  LV_RETURN_IF_ERROR(out.Open(0600));
  std::vector<uint8_t> cipher(kCipherChunk);
  std::vector<uint8_t> plain(kChunk);
  const auto* ad = reinterpret_cast<const uint8_t*>(header.data());
  uint64_t offset = header.size() + sizeof(stream_header);
  for (bool first = true;; first = false) {
    LV_ASSIGN_OR_RETURN(size_t n, ReadFull(*in, cipher.data(), kCipherChunk));
    if (n < crypto_secretstream_xchacha20poly1305_ABYTES) {
      return Error(prefix + ": file is truncated (no final chunk)");
    }
    unsigned long long plain_len = 0;
    uint8_t tag = 0;
    if (crypto_secretstream_xchacha20poly1305_pull(&state, plain.data(), &plain_len, &tag,
                                                   cipher.data(), n, ad, header.size()) != 0) {
      // The first chunk is where a wrong key shows; past it the key was right, so the data
      // itself was changed.
      if (first) return wrong_key;
      return Error(prefix + ": damaged data in the chunk at byte " + std::to_string(offset));
    }
    offset += n;
    LV_RETURN_IF_ERROR(out.Append(plain.data(), plain_len));
    if (tag == crypto_secretstream_xchacha20poly1305_TAG_FINAL) {
      uint8_t extra;
      LV_ASSIGN_OR_RETURN(got, ReadFull(*in, &extra, 1));
      if (got != 0) return Error(prefix + ": unexpected data after the final chunk");
      break;
    }
    if (n < kCipherChunk) return Error(prefix + ": file is truncated (no final chunk)");
  }
  sodium_memzero(&state, sizeof(state));
  sodium_memzero(plain.data(), plain.size());
  return out.Commit(/*no_replace=*/false);
}

Result<Key> LoadKeyFile(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return ErrnoError("reading key file " + path, errno);
  // Like ssh with a private key: a key others can read is as good as leaked, so refuse it
  // rather than quietly use it.
  if ((st.st_mode & 077) != 0) {
    return Error("key file " + path + " must have mode 0600 (chmod 600 " + path + ")");
  }
  LV_ASSIGN_OR_RETURN(std::string text, ReadWholeFile(Env::Default(), path));
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r' || text.back() == ' ')) {
    text.pop_back();
  }
  Key key;
  bool valid = text.size() == key.bytes.size() * 2;
  for (size_t i = 0; valid && i < key.bytes.size(); ++i) {
    int hi = HexValue(text[2 * i]);
    int lo = HexValue(text[2 * i + 1]);
    if (hi < 0 || lo < 0)
      valid = false;
    else
      key.bytes[i] = static_cast<uint8_t>(hi * 16 + lo);
  }
  sodium_memzero(text.data(), text.size());
  if (!valid) return Error("key file " + path + " must hold 64 hex digits (a 32-byte key)");
  return key;
}

Status GenerateKeyFile(const std::string& path, Env& env) {
  LV_RETURN_IF_ERROR(InitSodium());
  struct stat st;
  if (::lstat(path.c_str(), &st) == 0) {
    return Error("key file " + path + " already exists; refusing to overwrite it");
  }
  Key key;
  randombytes_buf(key.bytes.data(), key.bytes.size());
  std::string hex(key.bytes.size() * 2 + 1, '\0');
  sodium_bin2hex(hex.data(), hex.size(), key.bytes.data(), key.bytes.size());
  hex.back() = '\n';
  AtomicOutput out(env, path);
  LV_RETURN_IF_ERROR(out.Open(0600));
  Status status = out.Append(hex.data(), hex.size());
  sodium_memzero(hex.data(), hex.size());
  LV_RETURN_IF_ERROR(status);
  // no_replace: a key created meanwhile by someone else must not be lost either.
  Status commit = out.Commit(/*no_replace=*/true);
  if (!commit.ok()) return commit.error().Context("writing key file " + path);
  return Status::Ok();
}

Result<Key> KeyFromPassphrase(const std::string& passphrase, const Salt& salt) {
  LV_RETURN_IF_ERROR(InitSodium());
  if (passphrase.empty()) return Error("the passphrase is empty");
  Key key;
  if (crypto_pwhash(key.bytes.data(), key.bytes.size(), passphrase.data(), passphrase.size(),
                    salt.data(), crypto_pwhash_OPSLIMIT_MODERATE, crypto_pwhash_MEMLIMIT_MODERATE,
                    crypto_pwhash_ALG_ARGON2ID13) != 0) {
    return Error("deriving a key from the passphrase: out of memory");
  }
  key.salt = salt;
  return key;
}

Salt NewSalt() {
  (void)InitSodium();
  Salt salt;
  randombytes_buf(salt.data(), salt.size());
  return salt;
}

Result<Salt> ReadSalt(const std::string& path) {
  LV_ASSIGN_OR_RETURN(auto in, Env::Default().NewSequentialFile(path));
  uint8_t buf[kMagicSize + 1 + sizeof(Salt)];
  LV_ASSIGN_OR_RETURN(size_t got, ReadFull(*in, buf, sizeof(buf)));
  if (got < kMagicSize + 1 || std::memcmp(buf, kMagic, kMagicSize) != 0) {
    return Error("cannot decrypt " + path + ": not a lakevault encrypted file (no LVENC1 header)");
  }
  if (buf[kMagicSize] != kModePassphrase) {
    return Error("cannot decrypt " + path + ": it was encrypted with a key file, not a passphrase");
  }
  if (got < sizeof(buf)) return Error("cannot decrypt " + path + ": file is truncated");
  Salt salt;
  std::memcpy(salt.data(), buf + kMagicSize + 1, salt.size());
  return salt;
}

Status EncryptFileWithPassphrase(const std::string& in_path, const std::string& out_path,
                                 const std::string& passphrase, Env& env) {
  LV_ASSIGN_OR_RETURN(Key key, KeyFromPassphrase(passphrase, NewSalt()));
  return EncryptFile(in_path, out_path, key, env);
}

Status DecryptFileWithPassphrase(const std::string& in_path, const std::string& out_path,
                                 const std::string& passphrase, Env& env) {
  LV_ASSIGN_OR_RETURN(Salt salt, ReadSalt(in_path));
  LV_ASSIGN_OR_RETURN(Key key, KeyFromPassphrase(passphrase, salt));
  return DecryptFile(in_path, out_path, key, env);
}

}  // namespace lakevault
