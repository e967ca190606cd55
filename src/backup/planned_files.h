// One planned file, and the compact list a backup plan keeps of a table's files.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/env.h"
#include "core/index_iterator.h"
#include "core/result.h"
#include "delta/delta.h"

namespace lakevault {

struct PlannedFile {
  // Relative to the project root (BackupPlan::root), '/'-separated. The absolute path is not kept:
  // at hundreds of thousands of files it was the plan's largest part (see AbsolutePath).
  std::string relative_path;
  int64_t size = 0;
  int64_t mtime = 0;
  uint32_t mode = 0644;
  std::string link_target;  // non-empty: store as a symlink
  // Mutable files (config, logs) may grow while read; only the first `size` bytes are taken.
  bool mutable_content = false;
  // Set: the bytes to store instead of reading the file (e.g. a _last_checkpoint written
  // for the pinned version rather than the live one).
  std::optional<std::string> inline_content;
  // Not needed by the pinned Delta version (older versions' files, a writer's uncommitted data
  // file): taken when present, skipped without error if a VACUUM removes it meanwhile.
  bool may_vanish = false;
};

// The files of one table in a backup plan. A vector of PlannedFile took about 250 bytes a file
// (three strings, the path on the heap): at 300,000 files most of a backup's memory. Here a file
// takes 32 bytes besides its path; the data files' paths stay where the table's light snapshot
// packed them (its delta::FileList, kept here and read through its public interface only), other
// paths are packed into blocks, and the rare link targets and inline contents are kept apart.
// Reading a file gives a PlannedFile by value.
class PlannedFiles {
 public:
  PlannedFiles() = default;
  PlannedFiles(PlannedFiles&&) = default;
  PlannedFiles& operator=(PlannedFiles&&) = default;

  size_t size() const { return spilled_ ? spilled_count_ : entries_.size(); }
  bool empty() const { return size() == 0; }
  // Not once spilled (a programming error: it aborts rather than give nothing): see ForEach.
  PlannedFile operator[](size_t i) const;
  // The sum of the files' sizes, without building a PlannedFile for each.
  int64_t Bytes() const;

  // Writes the files, in order, to the scratch file `path` (through `env`; the caller removes it)
  // and gives their memory back. At 300,000 files the plan (the snapshot's packed paths and an
  // entry a file) was 47 MB, held through the whole archive write on top of the compressor's
  // blocks: spilled, it costs a sequential read of about 100 bytes a file instead. Afterwards
  // the files are read with ForEach; size() and Bytes() still answer.
  Status Spill(Env& env, const std::string& path);
  // Gives the files' memory back, keeping size() and Bytes() only (a dry run's table, once
  // counted); ForEach then fails.
  void KeepTotalsOnly();
  // The size of the file Spill writes.
  int64_t SpillBytes() const;
  bool spilled() const { return spilled_; }
  // Hands each file to `visit` in order, from memory or from the spill file; stops at the first
  // error, `visit`'s or the spill file's.
  Status ForEach(Env& env, const std::function<Status(const PlannedFile&)>& visit) const;

  using Iterator = IndexIterator<PlannedFiles, PlannedFile>;
  Iterator begin() const { return {this, 0}; }
  Iterator end() const { return {this, size()}; }

  // Building. Appends `file`, its path copied into the blocks.
  void Add(const PlannedFile& file);
  // Keeps `list`, the live files of a table's light snapshot, as the store of the paths AddListed
  // names: a listed path relative to the table, `table_path` + '/' + it relative to the root.
  void KeepListedPaths(delta::FileList list, const std::string& table_path);
  const delta::FileList& listed() const { return listed_; }
  // Appends `file` (stat'ed) as the listed file `index`: when its relative path is the one the
  // list composes (as it is unless the log's path is not in normal form), it is not stored again.
  void AddListed(uint32_t index, const PlannedFile& file);
  // Orders the files by relative path, as std::string compares them.
  void Sort();

 private:
  static constexpr uint32_t kNone = UINT32_MAX;
  enum Flags : uint8_t { kListed = 1, kMutable = 2, kMayVanish = 4 };

  struct Entry {
    int64_t size = 0;
    int64_t mtime = 0;
    uint32_t path = 0;  // kListed: index into listed_; else into paths_
    uint32_t mode = 0;
    uint32_t extra = kNone;  // index into extras_
    uint8_t flags = 0;
  };
  struct PathRef {
    uint32_t block = 0, offset = 0, size = 0;
  };
  struct Extra {
    std::string link_target;
    std::optional<std::string> inline_content;
  };
  // A relative path in two pieces, as the entries hold it: never concatenated to be compared.
  struct Pieces {
    std::string_view head, tail;
  };

  Pieces PathOf(const Entry& e) const;
  Entry EntryFor(const PlannedFile& file) const;
  void Append(Entry e, const PlannedFile& file);

  // A deque: it grows without copying itself, so at no time are the entries held twice.
  std::deque<Entry> entries_;
  delta::FileList listed_;
  std::string listed_prefix_;  // table_path + '/'
  std::vector<PathRef> paths_;
  std::vector<std::string> blocks_;  // each reserved once, never grown past its capacity
  std::vector<Extra> extras_;
  // Set by Spill, and by KeepTotalsOnly (with no spill_path_).
  bool spilled_ = false;
  std::string spill_path_;
  size_t spilled_count_ = 0;
  int64_t spilled_bytes_ = 0;
};

}  // namespace lakevault
