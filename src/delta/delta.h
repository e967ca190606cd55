// Reading a Delta table's transaction log (PROTOCOL.md of delta-io/delta): listing _delta_log/,
// JSON commits, classic and v2 checkpoints (Parquet through the parquet module), and resolving
// the snapshot at a version. No archive or backup code here.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/env.h"
#include "core/index_iterator.h"
#include "core/result.h"

namespace lakevault::delta {

enum class LogFileKind {
  kCommit,          // N.json
  kCheckpoint,      // N.checkpoint.parquet
  kCheckpointPart,  // N.checkpoint.P.T.parquet
  kV2Checkpoint,    // N.checkpoint.UUID.json|parquet
  kCompaction,      // N.M.compacted.json
  kChecksum,        // N.crc
  kLastCheckpoint,  // _last_checkpoint
  kSidecar,         // _sidecars/...
  kOther,           // anything else: tolerated, kept in backups
};

struct LogFile {
  std::string name;  // relative to _delta_log/, e.g. "00000000000000000003.json", "_sidecars/x"
  LogFileKind kind = LogFileKind::kOther;
  int64_t version = -1;      // the version it belongs to (-1 for _last_checkpoint and others)
  int64_t end_version = -1;  // compaction: last version covered
  int part = 0, parts = 0;   // multi-part checkpoints
  uint64_t size = 0;
};

// Classifies a name relative to _delta_log/ (e.g. "00000000000000000003.json").
LogFile ClassifyLogName(const std::string& name);

// Lists `table_dir`/_delta_log (recursing into _sidecars/). Fails when the folder is missing.
Result<std::vector<LogFile>> ListLog(const std::string& table_dir);

// The newest version with a commit or checkpoint, or -1 when the log has none.
int64_t LatestVersion(const std::vector<LogFile>& log);

// The log files a copy of the table pinned at `version` should hold: commits, checksums and
// checkpoints (with their sidecars) up to it, compactions ending at or before it, and files of
// unknown kind. _last_checkpoint is excluded: callers write one that does not point past it.
std::vector<LogFile> LogFilesUpTo(const std::vector<LogFile>& log, int64_t version);

struct DeletionVector {
  std::string storage_type;  // "u", "p" or "i"
  std::string path_or_inline;
  int64_t offset = 0;
  int64_t size = 0;
  int64_t cardinality = 0;
  std::string file;  // resolved file: relative to the table for 'u', absolute for 'p'; empty 'i'
};

// One add, remove or cdc action. Kept small: a snapshot holds one per live file, and a big table
// has hundreds of thousands of them.
struct FileAction {
  std::string path;  // decoded from the log's URL encoding
  bool absolute = false;
  int64_t size = -1;
  std::optional<int64_t> num_records;  // from stats
  // Shared and immutable: most files have none, and a pointer costs less than an empty one.
  std::shared_ptr<const DeletionVector> dv;
  int64_t version = -1;  // version of the action that last touched it
  // Sorted by column. Empty when loaded with keep_actions = false.
  std::vector<std::pair<std::string, std::string>> partition_values;
  // The action's body as the log holds it; null when loaded with keep_actions = false.
  nlohmann::json action;
};

// A live file of a light snapshot (SnapshotOptions::keep_actions = false): a view into its
// FileList, valid while the list lives and is not changed. Its fields are FileAction's.
struct LiveFile {
  std::string_view path;
  bool absolute = false;
  int64_t size = -1;
  std::optional<int64_t> num_records;
  const DeletionVector* dv = nullptr;  // null: none
  // No version of the action that last touched it: no reader of a light snapshot asks, and at
  // 300,000 files it was 2.4 MB of the list.
};

// The live files of a light snapshot. Paths are packed into shared 1 MiB blocks and each file
// takes 32 bytes besides, where a FileAction took about 200 in all: at hundreds of thousands of
// files the list is most of a check's or a backup plan's memory.
class FileList {
 public:
  FileList() = default;
  FileList(FileList&&) = default;
  FileList& operator=(FileList&&) = default;

  size_t size() const { return files_.size(); }
  bool empty() const { return files_.empty(); }
  LiveFile operator[](size_t i) const;

  // The index of the first file whose path is not before `path` (size() when none): the list is
  // in path order.
  size_t LowerBound(std::string_view path) const;

  using Iterator = IndexIterator<FileList, LiveFile>;
  Iterator begin() const { return {this, 0}; }
  Iterator end() const { return {this, files_.size()}; }

  // Building, for the log replay: slots are indices; a cleared slot is left for Set or Compact.
  uint32_t Append(const FileAction& f);
  void Set(uint32_t slot, const FileAction& f);
  void Clear(uint32_t slot);
  void MoveSlot(uint32_t from, uint32_t to);
  // Drops every slot from `n` on.
  void Resize(size_t n);
  // Reorders the files: slot i takes the file at order[i] (`order` is left as the identity).
  void Permute(std::vector<uint32_t>& order);
  // Copies the paths into fresh blocks, in list order, when removed files left more bytes unused
  // in the blocks than live paths take.
  void Repack();
  // The bytes the list holds: its path blocks, entries and deletion vectors.
  size_t MemoryBytes() const;

 private:
  static constexpr uint32_t kNoDv = UINT32_MAX;
  static constexpr uint32_t kAbsolute = 1u << 31;
  static constexpr int64_t kNoRecords = INT64_MIN;
  static constexpr size_t kBlock = 1 << 20;

  struct Packed {
    uint64_t path = 0;      // block << 32 | offset
    uint32_t path_len = 0;  // top bit: absolute
    uint32_t dv = kNoDv;    // index into dvs_
    int64_t size = -1;
    int64_t num_records = kNoRecords;
  };
  static_assert(sizeof(Packed) == 32, "at many files the entries are most of a snapshot");

  Packed Pack(const FileAction& f);
  uint64_t Store(std::string_view path);

  std::deque<Packed> files_;
  std::vector<std::string> blocks_;  // each reserved once, never grown past its capacity
  std::vector<std::shared_ptr<const DeletionVector>> dvs_;
  uint64_t live_bytes_ = 0;
  uint64_t dead_bytes_ = 0;  // paths of cleared or overwritten files, still in their blocks
};

struct Snapshot {
  int64_t version = -1;
  int64_t checkpoint_version = -1;  // -1: replayed from commit 0
  std::vector<std::string> checkpoint_files;
  nlohmann::json protocol;
  nlohmann::json metadata;
  std::vector<std::string> partition_columns;
  std::string column_mapping_mode = "none";
  // Live add files, sorted by path then deletion vector. A deque: it grows without copying
  // itself, so a big table never holds its files twice.
  std::deque<FileAction> files;  // empty in a light snapshot: see light_files
  // The live files of a light snapshot (keep_actions = false), in the same order; empty otherwise.
  FileList light_files;
  std::vector<FileAction> tombstones;  // removes still in the log; empty without keep_actions
  std::vector<std::string> cdc_files;  // _change_data files named by the commits replayed
  std::map<std::string, int64_t> app_transactions;  // appId -> version
  std::vector<std::string> unknown_actions;         // names of actions we do not interpret
  std::vector<std::string> warnings;                // tolerated oddities, e.g. a stale hint

  // Every file (relative to the table) this version needs: live data files and their deletion
  // vector files. Absolute paths are left out (see AbsolutePaths()).
  std::vector<std::string> RequiredFiles() const;
  std::vector<std::string> AbsolutePaths() const;
  // The live files of either kind of snapshot, in order.
  size_t live_count() const { return files.size() + light_files.size(); }
  // Sum of numRecords minus deletion-vector cardinalities; nullopt if any live file lacks stats.
  std::optional<int64_t> RowsFromStats() const;
};

struct SnapshotOptions {
  // Only a restore rewrites actions verbatim; at hundreds of thousands of files their JSON is
  // most of a snapshot's memory and time, so readers that need paths, sizes and row counts drop
  // it and take the fast path: their snapshot holds its live files packed in light_files (paths,
  // sizes, row counts, deletion vectors; no partition values) and no tombstones. None of them
  // reads those, and at that size each is a large part of the memory.
  bool keep_actions = true;
  // Light snapshots only: keeps the live files whose path falls in share `part` of `parts` (a
  // power of two) by a hash of the path, every action of a path landing in the same share. A
  // table too big to hold at once is so read in several replays: see ForEachSnapshotShare.
  uint32_t part = 0;
  uint32_t parts = 1;
};

// Resolves the snapshot at `version` (latest when nullopt). An unreadable entry that the
// snapshot needs is an error naming the file.
Result<Snapshot> LoadSnapshot(Env& env, const std::string& table_dir,
                              std::optional<int64_t> version = std::nullopt,
                              const SnapshotOptions& options = {});
Result<Snapshot> LoadSnapshot(Env& env, const std::string& table_dir,
                              const std::vector<LogFile>& log, std::optional<int64_t> version,
                              const SnapshotOptions& options = {});

// Replays the table's log at `version` (latest when nullopt) into light snapshots, each holding
// at most about `max_bytes` of live files, and calls `each` with every one in turn: the whole
// table when it fits, else disjoint shares of its files (by a hash of the path) that together
// are all of them, each from a replay of its own. A share whose replay outgrows `max_bytes` is
// stopped there and split in as many as its growth up to the stop says it needs (at least two).
// So a table of any size is read in bounded memory, at the cost of one replay of the log per
// share, plus the part of one for each split. The snapshot `each`
// gets holds its share's files, sorted by path; its other fields are the whole table's. `each`
// may move from its snapshot; an error from it stops the walk and is returned.
Status ForEachSnapshotShare(
    Env& env, const std::string& table_dir, std::optional<int64_t> version, size_t max_bytes,
    const std::function<Status(Snapshot& share, uint32_t part, uint32_t parts)>& each);

// The same, replaying `log`, a listing of the table's log already taken.
Status ForEachSnapshotShare(
    Env& env, const std::string& table_dir, const std::vector<LogFile>& log,
    std::optional<int64_t> version, size_t max_bytes,
    const std::function<Status(Snapshot& share, uint32_t part, uint32_t parts)>& each);

// Which of `parts` (a power of two) shares of a table `path` (relative to the table, as the log
// names it once decoded) falls in: SnapshotOptions::part. Files found beside the snapshot's are
// so assigned to the same shares.
uint32_t ShareOf(std::string_view path, uint32_t parts);

// Parses a JSON commit (newline-delimited actions). Blank lines are skipped; any malformed line
// is an error naming its line number. Exposed for tests and fuzzing.
Result<std::vector<nlohmann::json>> ParseActions(const std::string& text);

// Percent-decoding of paths in the log; fails on a malformed escape.
Result<std::string> DecodePath(const std::string& encoded);
// Z85 (ZeroMQ) decoding used by deletion vector ids; fails on bad length or characters.
Result<std::string> DecodeZ85(const std::string& text);
// Resolves a deletion vector descriptor to its file (see DeletionVector::file).
Result<std::string> DeletionVectorFile(const std::string& storage_type,
                                       const std::string& path_or_inline);

// Whether `dir` is a Delta table (has a _delta_log folder).
bool IsTable(const std::string& dir);

}  // namespace lakevault::delta
