// A manifest's file list as a compact index by path, for the lookups a backup makes in its
// parent's list (an incremental: is this file already held?) without holding the list itself.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "core/env.h"
#include "core/result.h"
#include "manifest/manifest.h"

namespace lakevault {

// A path's 128-bit fingerprint (FNV-1a and std::hash, two independent 64-bit hashes): lists of
// hundreds of thousands of paths are compared through these, 16 bytes a path instead of the path.
using PathKey = std::pair<uint64_t, uint64_t>;
PathKey PathFingerprint(std::string_view path);

class ManifestIndex {
 public:
  // Reads the list of the manifest at `path` as a stream. A record takes 72 bytes: its path's
  // fingerprint, size, mtime, mode, binary digest and which backup holds it. Entries of another
  // shape (links, a digest that is not 64 hex digits) are kept whole, apart.
  // `expected_files` (the catalogue's count of the list) reserves the records at once: grown by
  // doubling they were held twice, and more, while copied.
  // `keep`, when given, picks the entries kept by path (the others are skipped as read).
  static Result<ManifestIndex> Load(Env& env, const std::string& path, size_t expected_files = 0,
                                    const std::function<bool(std::string_view)>& keep = nullptr);
  // The entry listed at `path`, as the list has it; nullopt when there is none.
  std::optional<ManifestFile> Find(const std::string& path) const;
  size_t size() const { return records_.size() + irregular_.size(); }
  bool empty() const { return size() == 0; }

 private:
  struct Record {
    PathKey key;
    int64_t size;
    int64_t mtime;
    uint32_t mode;
    uint32_t backup;  // index into backups_
    uint8_t sha256[32];
  };
  std::vector<Record> records_;  // sorted by key
  std::vector<std::string> backups_;
  std::unordered_map<std::string, ManifestFile> irregular_;
};

// What the backups of a chain hold themselves: the entries of each one's list whose bytes are
// in its own archive. An incremental's list names, per file, the backup holding its bytes, and
// that backup must list the same bytes as its own. The chain's lists held whole, with a map
// over each, took 1.2 GB for six backups of 300,000 files; a record here is 56 bytes a held file.
// An index may keep one share of the paths only (by fingerprint), and a bounded number of
// records: a chain of any size is then checked in shares, a read of the lists each.
class HeldFilesIndex {
 public:
  // Keeps the paths of share `share` of `shares` only, and at most `max_records` records: past
  // that, full() is set and the index is no use (the caller splits the share in two: the paths
  // of share s of n are those of shares s and s + n of 2n).
  explicit HeldFilesIndex(uint64_t share = 0, uint64_t shares = 1, size_t max_records = SIZE_MAX);
  static constexpr size_t kRecordBytes = 56;
  // Room for `records` at once: grown by doubling, the records were held one and a half times
  // while copied.
  void Reserve(size_t records) { records_.reserve(records); }
  // Whether `path` is in this index's share.
  bool Covers(std::string_view path) const;
  bool full() const { return full_; }
  // Reads the list of backup `id`'s manifest at `path` as a stream, keeping its own entries.
  Status Add(Env& env, const std::string& path, const std::string& id);
  // Whether backup `holder` listed `path` as its own with the digest `sha256`. `path` must be in
  // this index's share.
  bool Holds(const std::string& holder, const std::string& path, const std::string& sha256);

 private:
  struct Record {
    PathKey key;
    uint32_t holder;
    uint8_t sha256[32];
  };
  static_assert(sizeof(Record) == kRecordBytes);
  bool InShare(const PathKey& key) const { return key.first % shares_ == share_; }

  uint64_t share_ = 0, shares_ = 1;
  size_t max_records_ = SIZE_MAX;
  bool full_ = false;
  std::vector<Record> records_;  // sorted by (key, holder) at the first Holds after an Add
  bool sorted_ = true;
  std::vector<std::string> holders_;
  // Entries of another shape (links, a digest that is not 64 hex digits): holder '/' path.
  std::unordered_map<std::string, std::string> irregular_;
};

}  // namespace lakevault
