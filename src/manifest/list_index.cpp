#include "manifest/list_index.h"

#include <algorithm>
#include <cstring>
#include <functional>
#include <tuple>

namespace lakevault {

PathKey PathFingerprint(std::string_view path) {
  uint64_t fnv = 1469598103934665603ull;
  for (unsigned char c : path) fnv = (fnv ^ c) * 1099511628211ull;
  return {fnv, std::hash<std::string_view>{}(path)};
}

namespace {

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

// Lowercase hex of 64 digits into 32 bytes, as lakevault writes digests; false otherwise.
bool DigestBytes(const std::string& hex, uint8_t out[32]) {
  if (hex.size() != 64) return false;
  for (size_t i = 0; i < 32; ++i) {
    int hi = HexValue(hex[2 * i]), lo = HexValue(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) return false;
    out[i] = static_cast<uint8_t>(hi << 4 | lo);
  }
  return true;
}

}  // namespace

Result<ManifestIndex> ManifestIndex::Load(Env& env, const std::string& path, size_t expected_files,
                                          const std::function<bool(std::string_view)>& keep) {
  ManifestIndex index;
  index.records_.reserve(expected_files);
  std::unordered_map<std::string, uint32_t> backup_ids;
  LV_ASSIGN_OR_RETURN(Manifest header, ReadManifestFile(env, path, [&](ManifestFile&& f) {
                        if (keep && !keep(f.path)) return Status::Ok();
                        Record r;
                        if (!f.link.empty() || !DigestBytes(f.sha256, r.sha256)) {
                          std::string key = f.path;
                          index.irregular_[key] = std::move(f);
                          return Status::Ok();
                        }
                        auto [it, added] = backup_ids.emplace(
                            f.backup, static_cast<uint32_t>(index.backups_.size()));
                        if (added) index.backups_.push_back(f.backup);
                        r.key = PathFingerprint(f.path);
                        r.size = f.size;
                        r.mtime = f.mtime;
                        r.mode = f.mode;
                        r.backup = it->second;
                        index.records_.push_back(r);
                        return Status::Ok();
                      }));
  (void)header;
  // Stable: of a path listed twice, the later entry is the one found, as a map filled in list
  // order would keep.
  std::stable_sort(index.records_.begin(), index.records_.end(),
                   [](const Record& a, const Record& b) { return a.key < b.key; });
  return index;
}

std::optional<ManifestFile> ManifestIndex::Find(const std::string& path) const {
  auto odd = irregular_.find(path);
  if (odd != irregular_.end()) return odd->second;
  const PathKey key = PathFingerprint(path);
  auto it = std::upper_bound(records_.begin(), records_.end(), key,
                             [](const PathKey& k, const Record& r) { return k < r.key; });
  if (it == records_.begin() || (--it)->key != key) return std::nullopt;
  static const char kHex[] = "0123456789abcdef";
  ManifestFile f;
  f.path = path;
  f.size = it->size;
  f.mtime = it->mtime;
  f.mode = it->mode;
  f.backup = backups_[it->backup];
  f.sha256.resize(64);
  for (size_t i = 0; i < 32; ++i) {
    f.sha256[2 * i] = kHex[it->sha256[i] >> 4];
    f.sha256[2 * i + 1] = kHex[it->sha256[i] & 15];
  }
  return f;
}

HeldFilesIndex::HeldFilesIndex(uint64_t share, uint64_t shares, size_t max_records)
    : share_(share), shares_(shares == 0 ? 1 : shares), max_records_(max_records) {}

bool HeldFilesIndex::Covers(std::string_view path) const {
  return shares_ == 1 || InShare(PathFingerprint(path));
}

Status HeldFilesIndex::Add(Env& env, const std::string& path, const std::string& id) {
  const uint32_t holder = static_cast<uint32_t>(holders_.size());
  holders_.push_back(id);
  sorted_ = false;
  auto read = ReadManifestFile(env, path, [&](ManifestFile&& f) {
    if (f.backup != id || full_) return Status::Ok();
    Record r;
    r.key = PathFingerprint(f.path);
    if (!InShare(r.key)) return Status::Ok();
    if (!f.link.empty() || !DigestBytes(f.sha256, r.sha256)) {
      irregular_[id + "/" + f.path] = std::move(f.sha256);
      return Status::Ok();
    }
    if (records_.size() == max_records_) {
      full_ = true;
      records_ = {};  // given back now: the caller starts again in smaller shares
      return Status::Ok();
    }
    r.holder = holder;
    records_.push_back(r);
    return Status::Ok();
  });
  return read.ok() ? Status::Ok() : Status(read.error());
}

bool HeldFilesIndex::Holds(const std::string& holder, const std::string& path,
                           const std::string& sha256) {
  // Links are rare: no key is built for the common lookup.
  if (!irregular_.empty()) {
    auto odd = irregular_.find(holder + "/" + path);
    if (odd != irregular_.end()) return odd->second == sha256;
  }
  auto which = std::find(holders_.begin(), holders_.end(), holder);
  if (which == holders_.end()) return false;
  const uint32_t h = static_cast<uint32_t>(which - holders_.begin());
  auto order = [](const Record& a, const Record& b) {
    return std::tie(a.key, a.holder) < std::tie(b.key, b.holder);
  };
  if (!sorted_) {
    std::sort(records_.begin(), records_.end(), order);
    sorted_ = true;
  }
  Record probe;
  probe.key = PathFingerprint(path);
  probe.holder = h;
  auto it = std::lower_bound(records_.begin(), records_.end(), probe, order);
  if (it == records_.end() || it->key != probe.key || it->holder != h) return false;
  uint8_t digest[32];
  return DigestBytes(sha256, digest) && std::memcmp(digest, it->sha256, 32) == 0;
}

}  // namespace lakevault
